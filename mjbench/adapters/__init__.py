"""Judge adapters. Each module registers its classes in `ADAPTERS`; heavy imports stay inside them.

The lazy table below lets `mjbench judges list` name every adapter without importing torch.
"""

from mjbench.adapters.base import ADAPTERS

_LAZY = {
    "open_clip": "mjbench.adapters.open_clip_scorer:OpenClipScorer",
    "hf_clip": "mjbench.adapters.hf_clip:HFClipScorer",
    "aesthetic": "mjbench.adapters.aesthetic:AestheticScorer",
    "image_reward": "mjbench.adapters.image_reward:ImageRewardScorer",
    "blip_itm": "mjbench.adapters.blip_itm:BlipItmScorer",
    "random": "mjbench.adapters.heuristics:RandomJudge",
    "sharpness": "mjbench.adapters.heuristics:SharpnessJudge",
    "brisque": "mjbench.adapters.heuristics:BrisqueJudge",
    "precomputed": "mjbench.adapters.precomputed:PrecomputedJudge",
    "hf_vlm": "mjbench.adapters.hf_vlm:HFVLMJudge",
    "openai": "mjbench.adapters.api:OpenAIJudge",
    "anthropic": "mjbench.adapters.api:AnthropicJudge",
    "gemini": "mjbench.adapters.api:GeminiJudge",
    "jury": "mjbench.adapters.jury:JuryJudge",
}
for _name, _target in _LAZY.items():
    ADAPTERS.add_lazy(_name, _target)

__all__ = ["ADAPTERS"]
