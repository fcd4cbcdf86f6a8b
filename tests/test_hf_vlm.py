"""The transformers VLM judge on tiny random Llava and Qwen2-VL models built here and loaded back through
the real from_pretrained / chat template / generate path, in single and pair mode."""

from __future__ import annotations

import io
import os

import pytest
from PIL import Image

for _var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
    os.environ[_var] = "1"  # set before transformers is imported: a hub call must never be tried

pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("torchvision")  # the Qwen processors need it

import mjbench.adapters  # noqa: E402,F401  (registers the adapter table)
from mjbench.adapters.base import PairRequest, Response, ScoreRequest, create_judge  # noqa: E402
from mjbench.config import JudgeConfig  # noqa: E402
from mjbench.errors import ConfigError  # noqa: E402
from mjbench.images import ImageRef  # noqa: E402
from mjbench.parsing import PARSER_VERSION  # noqa: E402

CORPUS = ["RATING: 7", "RATING A: 3 RATING B: 9 BETTER: A TIE", "The image shows a red cube on a blue ball.",
          "You are an expert judge of images made by text-to-image models.", "Extremely Poor Poor Average Good"]

LLAVA_TEMPLATE = (
    "{% for m in messages %}{{ m['role'].upper() }}: {% if m['content'] is string %}{{ m['content'] }}"
    "{% else %}{% for c in m['content'] %}{% if c['type'] == 'image' %}<image>\n{% elif c['type'] == 'text' %}"
    "{{ c['text'] }}{% endif %}{% endfor %}{% endif %}\n{% endfor %}{% if add_generation_prompt %}ASSISTANT:{% endif %}"
)
QWEN_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{% if m['content'] is string %}{{ m['content'] }}"
    "{% else %}{% for c in m['content'] %}{% if c['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif c['type'] == 'text' %}{{ c['text'] }}{% endif %}{% endfor %}{% endif %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def _byte_bpe(special: list[str]):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tk = Tokenizer(models.BPE(unk_token=None))
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    tk.train_from_iterator(CORPUS, trainers.BpeTrainer(vocab_size=400, special_tokens=special,
                                                       initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    return tk


def build_llava(d) -> str:
    import torch
    from transformers import (
        CLIPImageProcessor,
        CLIPVisionConfig,
        LlamaConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
        PreTrainedTokenizerFast,
    )

    tok = PreTrainedTokenizerFast(tokenizer_object=_byte_bpe(["<pad>", "<s>", "</s>", "<unk>", "<image>"]),
                                  bos_token="<s>", eos_token="</s>", pad_token="<pad>", unk_token="<unk>",
                                  extra_special_tokens={"image_token": "<image>"})
    proc = LlavaProcessor(image_processor=CLIPImageProcessor(size={"shortest_edge": 32},
                                                             crop_size={"height": 32, "width": 32}),
                          tokenizer=tok, patch_size=8, vision_feature_select_strategy="default",
                          num_additional_image_tokens=1, chat_template=LLAVA_TEMPLATE)
    v = tok.get_vocab()
    cfg = LlavaConfig(
        vision_config=CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                                       image_size=32, patch_size=8),
        text_config=LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=1024,
                                bos_token_id=v["<s>"], eos_token_id=v["</s>"], pad_token_id=v["<pad>"]),
        image_token_index=v["<image>"], image_seq_length=16, vision_feature_layer=-1,
        vision_feature_select_strategy="default",
    )
    torch.manual_seed(0)
    LlavaForConditionalGeneration(cfg).save_pretrained(d)
    proc.save_pretrained(d)
    return str(d)


def build_qwen2_vl(d, version: str = "2") -> str:
    """Tiny Qwen2-VL (version "2") or Qwen2.5-VL ("2.5", windowed vision attention) model and processor."""
    import torch
    import transformers
    from transformers import PreTrainedTokenizerFast, Qwen2VLImageProcessor, Qwen2VLVideoProcessor

    prefix = "Qwen2VL" if version == "2" else "Qwen2_5_VL"
    Config, Model, Processor = (getattr(transformers, prefix + suffix)
                                for suffix in ("Config", "ForConditionalGeneration", "Processor"))

    special = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>", "<|image_pad|>",
               "<|video_pad|>"]
    tok = PreTrainedTokenizerFast(
        tokenizer_object=_byte_bpe(special), eos_token="<|im_end|>", pad_token="<|endoftext|>",
        extra_special_tokens={"image_token": "<|image_pad|>", "video_token": "<|video_pad|>",
                              "vision_bos_token": "<|vision_start|>", "vision_eos_token": "<|vision_end|>"},
    )
    kw = dict(size={"shortest_edge": 56 * 56, "longest_edge": 112 * 112}, patch_size=14, merge_size=2,
              temporal_patch_size=2)
    proc = Processor(image_processor=Qwen2VLImageProcessor(**kw), tokenizer=tok,
                            video_processor=Qwen2VLVideoProcessor(**kw), chat_template=QWEN_TEMPLATE)
    v = tok.get_vocab()
    vision = dict(depth=2, embed_dim=32, hidden_size=32, num_heads=2, mlp_ratio=2, patch_size=14,
                  spatial_merge_size=2, temporal_patch_size=2)
    if version == "2.5":
        vision = dict(depth=2, hidden_size=32, intermediate_size=64, out_hidden_size=32, num_heads=2, patch_size=14,
                      spatial_merge_size=2, temporal_patch_size=2, window_size=56, fullatt_block_indexes=[1])
    cfg = Config(
        text_config=dict(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=1024,
                         rope_parameters={"rope_type": "default", "mrope_section": [2, 3, 3], "rope_theta": 10000.0},
                         bos_token_id=v["<|im_start|>"], eos_token_id=v["<|im_end|>"], pad_token_id=v["<|endoftext|>"],
                         initializer_range=0.2),  # larger weights: answers that depend on the input
        vision_config=vision,
        image_token_id=v["<|image_pad|>"], video_token_id=v["<|video_pad|>"],
        vision_start_token_id=v["<|vision_start|>"], vision_end_token_id=v["<|vision_end|>"],
    )
    torch.manual_seed(0)
    Model(cfg).save_pretrained(d)
    proc.save_pretrained(d)
    return str(d)


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("tiny-vlms")
    return {"llava": build_llava(root / "llava"), "qwen2-vl": build_qwen2_vl(root / "qwen2-vl"),
            "qwen2.5-vl": build_qwen2_vl(root / "qwen2.5-vl", version="2.5")}


def png(color: str, size=(40, 30)) -> ImageRef:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, "PNG")
    return ImageRef(data=buf.getvalue(), origin=f"{color}.png")


CAPTIONS = ["a cat", "a red cube on a blue ball next to a very long wooden table in a sunny kitchen", "x"]
COLORS = ["red", "green", "blue"]


def make_judge(model_dir: str, mode: str, **kw):
    cfg = JudgeConfig(name="tiny", adapter="hf_vlm", model=model_dir, mode=mode, scales=["1-10", "likert-5"],
                      device="cpu", batch_size=4, **{"options": {"max_new_tokens": 10}, **kw})
    judge = create_judge(cfg)
    judge.setup()
    return judge


def requests_for(mode: str):
    if mode == "single":
        return [ScoreRequest(image=png(c), prompt=cap, scale="1-10", perspective="alignment")
                for c, cap in zip(COLORS, CAPTIONS, strict=True)]
    return [PairRequest(images=(png("white"), png(c, (50, 60))), prompt=cap, scale="likert-5",
                        perspective="quality") for c, cap in zip(COLORS, CAPTIONS, strict=True)]


@pytest.mark.parametrize("family", ["llava", "qwen2-vl", "qwen2.5-vl"])
@pytest.mark.parametrize("mode", ["single", "pair"])
def test_generation_batched_equals_unbatched(models, family, mode):
    judge = make_judge(models[family], mode)
    assert judge.processor.tokenizer.padding_side == "left"
    run = judge.score if mode == "single" else judge.compare
    reqs = requests_for(mode)
    batched = run(reqs)  # captions of very different lengths: left padding matters
    alone = [run([r])[0] for r in reqs]
    for b, a in zip(batched, alone, strict=True):
        # random weights write garbage: the honest result is parse_error with the raw text kept
        assert b.status == "parse_error" and b.error and b.raw_output is not None
        assert b.raw_output == a.raw_output  # greedy decoding: padding changes nothing
        assert 1 <= b.output_tokens <= 10 and b.input_tokens == a.input_tokens > 50
        assert b.score is None and b.scores is None and b.verdict is None
    assert len({r.input_tokens for r in batched}) == 3  # the rows really had different lengths


def test_pair_mode_puts_both_images_in_one_prompt(models, monkeypatch):
    judge = make_judge(models["qwen2-vl"], "pair")
    seen = {}
    original = judge.processor.apply_chat_template

    def spy(conversations, **kw):
        seen["images"] = [[c for c in conv[-1]["content"] if c["type"] == "image"] for conv in conversations]
        seen["text"] = conversations[0][-1]["content"][-1]["text"]
        return original(conversations, **kw)

    monkeypatch.setattr(judge.processor, "apply_chat_template", spy)
    judge.compare(requests_for("pair")[:2])
    assert [len(imgs) for imgs in seen["images"]] == [2, 2]
    assert seen["images"][0][1]["image"].size == (50, 60)  # shown order: A first, B second
    assert "RATING A:" in seen["text"] and "Extremely Poor" in seen["text"]


def test_parsed_answers_flow_into_responses(models, monkeypatch):
    """The generation output goes through the parser: a well-formed answer is `ok` with its score."""
    judge = make_judge(models["llava"], "single", options={"max_new_tokens": 10, "image_max_side": 16})
    answers = iter(["Looks right.\nRATING: 8", "I'm sorry, but I can't help with that."])

    def fake_generate(batch):
        assert all(max(im.size) <= 16 for images, _ in batch for im in images)  # image_max_side applied
        return [(next(answers), 100, 5, 0.01) for _ in batch]

    monkeypatch.setattr(judge, "_generate", fake_generate)
    ok, refused = judge.score(requests_for("single")[:2])
    assert (ok.status, ok.score, ok.extra["parse"], ok.input_tokens) == ("ok", 8, "strict", 100)
    assert refused.status == "refused"


def test_unreadable_image_fails_only_its_request(models):
    judge = make_judge(models["llava"], "single")
    broken = ScoreRequest(image=ImageRef(data=b"not an image", origin="broken.png"), prompt="a cat", scale="1-10",
                          perspective="alignment")
    buf = io.BytesIO()
    Image.effect_noise((64, 64), 40).convert("RGB").save(buf, "PNG")
    cut = ScoreRequest(image=ImageRef(data=buf.getvalue()[:600], origin="truncated.png"), prompt="a cat",
                       scale="1-10", perspective="alignment")
    bad, truncated, good = judge.score([broken, cut, requests_for("single")[0]])
    assert bad.status == "error" and "broken.png" in bad.error
    assert truncated.status == "error" and "truncated.png: image file is truncated" in truncated.error
    assert good.status == "parse_error" and good.raw_output is not None
    assert good.extra["parser"] == PARSER_VERSION


def test_refresh_reparses_stored_answers_without_generating(models, monkeypatch):
    """A stored answer read by an older parser is read again by the current one; the model is not called."""
    judge = make_judge(models["llava"], "pair")
    monkeypatch.setattr(judge, "_generate", lambda batch: pytest.fail("the model was asked"))
    stored = Response(status="parse_error", raw_output="I prefer Image B\nRATING A: Good\nRATING B: Poor",
                      error="rating A and the verdict are missing", input_tokens=300, output_tokens=12,
                      latency_s=0.4, extra={"parse": "lenient"})  # as parser 1 read it (likert-5)
    new = judge.refresh(requests_for("pair")[0], stored)
    assert (new.status, new.scores, new.verdict, new.error) == ("ok", (4, 2), None, None)
    assert new.extra == {"parse": "lenient", "parser": PARSER_VERSION}
    assert (new.input_tokens, new.output_tokens, new.latency_s) == (300, 12, 0.4)


def test_config_checks(models):
    with pytest.raises(ConfigError, match="multi_image"):
        create_judge(JudgeConfig(name="t", adapter="hf_vlm", model=models["llava"], mode="pair",
                                 scales=["1-10"], options={"multi_image": False}))
    with pytest.raises(ConfigError, match="options.max_new_tokens"):
        create_judge(JudgeConfig(name="t", adapter="hf_vlm", model=models["llava"], scales=["1-10"],
                                 options={"max_new_tokens": 0}))
    cfg = JudgeConfig(name="t", adapter="hf_vlm", model="nobody/not-cached-vlm", scales=["1-10"])
    assert "not in the local Hugging Face cache" in create_judge(cfg).check_available(cfg)
    local = JudgeConfig(name="t", adapter="hf_vlm", model=models["llava"], scales=["1-10"])
    assert create_judge(local).check_available(local) is None
