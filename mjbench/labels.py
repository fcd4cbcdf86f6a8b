"""The one label normaliser: gold labels and predictions from every reader go through `gold_label`.

Documented spellings only, so that a file coded 0/1/2 cannot silently turn its "2" items into ties:
0 and 1 (int, integral float, or text "0", "1", "0.0", "1.0", "image0", "image_0", ...), "tie" (both equally
good) and "both_bad" (both images bad, e.g. GenAI-Arena's `bothbad_vote`); case and surrounding blanks do not matter. Missing: None, NaN, "", "none", "null", "nan". Anything else is a
`LabelError` naming the value, unless the task's `label_map` translates it. A new gold label (e.g.
`both_bad`) is one more entry in `Label` and `SPELLINGS`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Literal, get_args

from mjbench.errors import ItemError

Label = Literal["0", "1", "tie", "both_bad"]
LABELS: tuple[str, ...] = get_args(Label)

#: accepted text (lower case, stripped) -> label
SPELLINGS: dict[str, str] = {
    "0": "0", "0.0": "0", "image0": "0", "image_0": "0",
    "1": "1", "1.0": "1", "image1": "1", "image_1": "1",
    "tie": "tie",
    "both_bad": "both_bad",
}
MISSING = frozenset({"", "none", "null", "nan"})


class LabelError(ItemError, ValueError):
    """A label or prediction that is none of the documented spellings (a ValueError, so that pydantic
    validators report it as a validation error)."""


def _expected() -> str:
    # the pairwise labels first (what most data uses), then the rarer classes, so messages read naturally
    return "0, 1 or tie" + "".join(f" (or {label})" for label in LABELS[3:])


def _is_missing(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    return isinstance(value, str) and value.strip().lower() in MISSING


def map_key(value: Any) -> str:
    """How a raw value is looked up in a `label_map`: its plain text, so 2, 2.0, "2" and " 2.0 " all
    match the key "2"; text compares case-insensitively."""
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):  # a numpy scalar
        value = value.item()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    text = str(value).strip().lower()
    try:
        number = float(text)
    except ValueError:
        return text
    return str(int(number)) if number.is_integer() else text


def gold_label(value: Any, label_map: Mapping[str, str] | None = None, what: str = "label") -> str | None:
    """"0", "1", "tie", "both_bad" or None (missing) for `value`; `label_map` (raw value -> label) is applied first.
    Raises LabelError naming `what` and the value for anything else (2, "0.5", "equal", True, ...)."""
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):  # a numpy scalar from pandas/pyarrow
        value = value.item()
    if _is_missing(value):
        return None
    if label_map:
        mapped = {map_key(k): v for k, v in label_map.items()}.get(map_key(value))
        if mapped is not None:
            try:
                return gold_label(mapped, what=what)
            except LabelError:
                raise LabelError(
                    f"label_map maps {value!r} to {mapped!r}, which is not {_expected()}"
                ) from None
    if isinstance(value, bool):
        raise LabelError(f"{what} {value!r} is ambiguous; use {_expected()}")
    if isinstance(value, (int, float)):
        if value in (0, 1):
            return str(int(value))
        raise LabelError(f"{what} {value!r} is not {_expected()}")
    if isinstance(value, str):
        label = SPELLINGS.get(value.strip().lower())
        if label is not None:
            return label
    raise LabelError(f"{what} {value!r} is not {_expected()}")
