"""Feedback scales: names, bounds, Likert words and their numbers, prompt wording."""

from __future__ import annotations

import pytest

from mjbench.errors import UnknownNameError
from mjbench.scales import LIKERT_LEVELS, PROMPT_SCALES, SCALES, get_scale, scale_bounds


def test_scale_names():
    assert SCALES == ("0-1", "1-5", "1-10", "0-100", "likert-5", "likert-7", "likert-10", "score")
    assert "score" not in PROMPT_SCALES and len(PROMPT_SCALES) == 7


@pytest.mark.parametrize(
    "name, bounds",
    [("0-1", (0, 1)), ("1-5", (1, 5)), ("1-10", (1, 10)), ("0-100", (0, 100)), ("likert-5", (1, 5)),
     ("likert-7", (1, 7)), ("likert-10", (1, 10)), ("score", None)],
)
def test_bounds(name, bounds):
    assert scale_bounds(name) == bounds


def test_likert_words_exact():
    assert LIKERT_LEVELS[5] == ("Extremely Poor", "Poor", "Average", "Good", "Outstanding")
    assert LIKERT_LEVELS[7] == ("Extremely Poor", "Poor", "Below Average", "Average", "Above Average", "Good",
                                "Outstanding")
    assert LIKERT_LEVELS[10] == ("Extremely Poor", "Very Poor", "Poor", "Below Average", "Average", "Above Average",
                                 "Good", "Very Good", "Excellent", "Outstanding")


@pytest.mark.parametrize("n", [5, 7, 10])
def test_likert_level_k_maps_to_k(n):
    scale = get_scale(f"likert-{n}")
    for k, word in enumerate(LIKERT_LEVELS[n], start=1):
        assert scale.level_value(word) == k
        assert scale.level_value(word.upper()) == k
        assert scale.level_value("  " + word.lower().replace(" ", "   ")) == k
    with pytest.raises(ValueError):
        scale.level_value("Superb")


def test_level_pattern_prefers_longest():
    s7 = get_scale("likert-7")
    assert s7.level_pattern.search("it is above average").group(0) == "above average"
    assert s7.level_pattern.search("Below  Average").group(0) == "Below  Average"
    s10 = get_scale("likert-10")
    assert s10.level_pattern.search("Very Good").group(0) == "Very Good"
    assert s10.level_pattern.search("Goodness") is None  # whole words only


def test_unknown_scale_suggests():
    with pytest.raises(UnknownNameError) as info:
        get_scale("likert5")
    assert "likert-5" in str(info.value)
    with pytest.raises(UnknownNameError):
        scale_bounds("1-7")


def test_check_and_wording():
    s = get_scale("1-10")
    assert s.check(11) == "rating 11 outside 1-10"
    assert s.check(0.5) == "rating 0.5 outside 1-10"
    assert s.check(7.5) is None
    assert "1 (worst)" in s.instructions and "10 (best)" in s.instructions and "integer" in s.instructions
    assert "decimals" in get_scale("0-1").instructions
    assert s.placeholder == "<number 1-10>"
    lk = get_scale("likert-5")
    assert '"Extremely Poor", "Poor", "Average", "Good", "Outstanding"' in lk.instructions
    assert lk.placeholder == "<one of: Extremely Poor | Poor | Average | Good | Outstanding>"
    assert lk.check(6) == "rating 6 outside Extremely Poor..Outstanding"
    assert not get_scale("score").promptable
    with pytest.raises(ValueError):
        _ = get_scale("score").instructions
