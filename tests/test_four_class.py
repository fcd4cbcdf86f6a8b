"""Four-class tasks (GenAI-Bench: left, right, tie, both bad): the pair prompt offers BOTH_BAD and the cache
key of such a request differs from the three-class one, while three-class keys stay as they were."""

from __future__ import annotations

import io

from PIL import Image

from mjbench.adapters.base import create_judge
from mjbench.config import JudgeConfig
from mjbench.images import ImageRef
from mjbench.items import PairItem
from mjbench.prompts import PromptBook
from mjbench.responses import PairRequest
from mjbench.runner import _plan_judge

FOUR = ("0", "1", "tie", "both_bad")


def _ref(level: int) -> ImageRef:
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (level, level, level)).save(buf, format="PNG")
    return ImageRef(data=buf.getvalue())


def _judge() -> JudgeConfig:
    return JudgeConfig(name="vlm", adapter="openai", model="m", base_url="http://127.0.0.1:9", mode="pair",
                       scales=["1-10"])


def test_pair_prompt_offers_both_bad_only_where_the_task_declares_it():
    book = PromptBook(_judge())
    req = PairRequest(images=(_ref(1), _ref(2)), prompt="a cat", scale="1-10", perspective="alignment")
    _, plain, _ = book.for_request(req)
    _, four, _ = book.for_request(PairRequest(**{**req.__dict__, "labels": FOUR}))
    assert "BOTH_BAD" not in plain
    assert "BOTH_BAD" in four


def test_four_class_requests_have_their_own_keys_and_three_class_keys_do_not_move():
    judge = create_judge(_judge())
    item = PairItem(item_id="i", prompt="a cat", task="t", perspective="alignment", subcategory="s",
                    image0=_ref(10), image1=_ref(20), label="both_bad")
    items = {"t": [item]}
    plain, _ = _plan_judge(judge, "id", items, ["1-10"])
    three, _ = _plan_judge(judge, "id", items, ["1-10"], task_labels={"t": ("0", "1", "tie")})
    four, _ = _plan_judge(judge, "id", items, ["1-10"], task_labels={"t": FOUR})
    assert set(three) == set(plain)
    assert not set(four) & set(plain)
    assert all(u.request.labels == FOUR for u in four.values())
