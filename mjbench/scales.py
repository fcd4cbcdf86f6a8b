"""Feedback scales: how a VLM judge is asked to rate, and how its answer maps to a number.

Numeric scales (`0-1`, `1-5`, `1-10`, `0-100`) take a number inside their bounds. Likert scales
(`likert-5`, `likert-7`, `likert-10`) take one of their level words; level k (1-based, worst first)
maps to the number k. The pseudo-scale `score` is a scorer's raw output: no bounds, no words, and
it cannot be asked for in a prompt.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property
from typing import Literal

from mjbench.errors import UnknownNameError

LIKERT_LEVELS: dict[int, tuple[str, ...]] = {
    5: ("Extremely Poor", "Poor", "Average", "Good", "Outstanding"),
    7: ("Extremely Poor", "Poor", "Below Average", "Average", "Above Average", "Good", "Outstanding"),
    10: (
        "Extremely Poor", "Very Poor", "Poor", "Below Average", "Average", "Above Average", "Good",
        "Very Good", "Excellent", "Outstanding",
    ),
}

#: what could be a number as models write it: 7, 7.5, .5, -1, 7,5, 1,000, 1e1 (a sign is kept so "-1" is out of
#: range, not 1). Deliberately wider than what is accepted: `mjbench.parsing` reads the whole token and rejects
#: the doubtful ones (`1,000`, `1e1`, `1.2.3`) instead of reading their first digits.
NUMBER = r"[-+]?(?:\d+(?:[.,]\d+)*|\.\d+)(?:[eE][-+]?\d+)?"


@dataclass(frozen=True)
class Scale:
    name: str
    kind: Literal["numeric", "likert", "score"]
    low: float | None = None
    high: float | None = None
    levels: tuple[str, ...] = ()

    @property
    def bounds(self) -> tuple[float, float] | None:
        return None if self.low is None or self.high is None else (self.low, self.high)

    @property
    def promptable(self) -> bool:
        """Whether a judge can be asked for this scale in words (every scale but `score`)."""
        return self.kind != "score"

    @property
    def range_text(self) -> str:
        """The range as error messages and prompts name it: `1-10`, `Extremely Poor..Outstanding`."""
        if self.kind == "likert":
            return f"{self.levels[0]}..{self.levels[-1]}"
        if self.kind == "numeric":
            return f"{_num(self.low)}-{_num(self.high)}"
        return "unbounded"

    @property
    def instructions(self) -> str:
        """One sentence for prompts that states what a valid rating is, worst to best."""
        if self.kind == "likert":
            words = ", ".join(f'"{w}"' for w in self.levels)
            return f"Use exactly one of these {len(self.levels)} levels, from worst to best: {words}."
        if self.kind == "numeric":
            lo, hi = _num(self.low), _num(self.high)
            kind = "a number (decimals allowed)" if self.high == 1 else "an integer"
            return f"Give {kind} from {lo} (worst) to {hi} (best)."
        raise ValueError(f"scale {self.name!r} cannot be asked for in a prompt")

    @property
    def placeholder(self) -> str:
        """What goes after `RATING:` in the template's example final line."""
        if self.kind == "likert":
            return "<one of: " + " | ".join(self.levels) + ">"
        return f"<number {self.range_text}>"

    @cached_property
    def level_pattern(self) -> re.Pattern[str]:
        """Level words, longest first so "Above Average" wins over "Average", "Very Good" over "Good". The words
        of one level may be spaced freely but never across a line break."""
        words = sorted(self.levels, key=len, reverse=True)
        alternatives = "|".join(r"[ \t]+".join(map(re.escape, w.split())) for w in words)
        return re.compile(rf"(?<![A-Za-z])(?:{alternatives})(?![A-Za-z])", re.IGNORECASE)

    def level_value(self, word: str) -> float:
        """Likert level word (any case and spacing) -> its 1-based position."""
        key = " ".join(word.split()).lower()
        for k, level in enumerate(self.levels, start=1):
            if level.lower() == key:
                return float(k)
        raise ValueError(f"{word!r} is not a level of {self.name}")

    def check(self, value: float) -> str | None:
        """Why `value` is not a valid rating on this scale, or None."""
        if self.bounds is None:
            return None
        lo, hi = self.bounds
        if not lo <= value <= hi:
            return f"rating {_num(value)} outside {self.range_text}"
        return None


def _num(x: float | None) -> str:
    if x is None:
        return "?"
    return str(int(x)) if float(x).is_integer() else str(x)


_SCALES: dict[str, Scale] = {
    "0-1": Scale("0-1", "numeric", 0.0, 1.0),
    "1-5": Scale("1-5", "numeric", 1.0, 5.0),
    "1-10": Scale("1-10", "numeric", 1.0, 10.0),
    "0-100": Scale("0-100", "numeric", 0.0, 100.0),
    **{f"likert-{n}": Scale(f"likert-{n}", "likert", 1.0, float(n), levels) for n, levels in LIKERT_LEVELS.items()},
    "score": Scale("score", "score"),
}

#: every scale name, numeric first, then Likert, then `score`
SCALES: tuple[str, ...] = tuple(_SCALES)
#: the scales a VLM judge can be asked for
PROMPT_SCALES: tuple[str, ...] = tuple(n for n, s in _SCALES.items() if s.promptable)


def get_scale(name: str) -> Scale:
    try:
        return _SCALES[name]
    except KeyError:
        raise UnknownNameError("scale", name, SCALES) from None


def scale_bounds(name: str) -> tuple[float, float] | None:
    """The (low, high) a rating on this scale can take, or None for `score` (used to normalise metrics)."""
    return get_scale(name).bounds
