"""The one label normaliser: documented spellings only, everything else an error naming the value.
Core-only (no torch, no transformers): also run under pandas 2 in the light CI leg."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mjbench.errors import ItemError
from mjbench.labels import LABELS, LabelError, gold_label


@pytest.mark.parametrize(
    "raw,expected",
    [(0, "0"), (1, "1"), (0.0, "0"), (1.0, "1"), ("0", "0"), ("1", "1"), ("0.0", "0"), ("1.0", "1"),
     ("image0", "0"), ("Image1", "1"), ("image_0", "0"), (" IMAGE_1 ", "1"), ("tie", "tie"), ("TIE ", "tie"),
     (np.int64(1), "1"), (np.float64(0.0), "0")],
)
def test_documented_spellings(raw, expected):
    assert gold_label(raw) == expected


@pytest.mark.parametrize("raw", [None, math.nan, np.float64("nan"), "", "  ", "none", "NULL", "nan"])
def test_missing_values(raw):
    assert gold_label(raw) is None


@pytest.mark.parametrize("raw", [2, "2", 2.0, 0.5, "0.5", "equal", "draw", "both", True, False, -1, "01",
                                 "yes"])
def test_everything_else_is_an_error_naming_the_value(raw):
    # "2", "0.5", "equal" and "draw" used to become silent ties, dropping the item from accuracy
    with pytest.raises(LabelError, match="label " + repr(raw).replace(".", r"\.")):
        gold_label(raw)


def test_label_error_is_a_value_error_and_an_item_error():
    with pytest.raises(LabelError) as info:
        gold_label("2")
    assert isinstance(info.value, ValueError) and isinstance(info.value, ItemError)
    with pytest.raises(LabelError, match="pred 'equal' is not 0, 1 or tie"):
        gold_label("equal", what="pred")


@pytest.mark.parametrize("raw", [2, "2", 2.0, "2.0", " 2 ", np.int64(2)])
def test_label_map_keys_match_the_plain_value(raw):
    assert gold_label(raw, {"2": "tie"}) == "tie"


def test_label_map_comes_first_and_is_checked():
    swap = {"1": "0", "0": "1"}
    assert [gold_label(v, swap) for v in (0, "1", 1.0, "tie", None)] == ["1", "0", "0", "tie", None]
    assert gold_label("Equal", {"equal": "tie"}) == "tie"  # text keys compare case-insensitively
    with pytest.raises(LabelError, match="label_map maps 2 to 'draw', which is not 0, 1 or tie"):
        gold_label(2, {"2": "draw"})
    with pytest.raises(LabelError, match="label 3 is not"):
        gold_label(3, {"2": "tie"})


def test_labels_are_the_documented_set():
    assert LABELS == ("0", "1", "tie", "both_bad")
