"""Juries: several judges' scores for the images of one candidate set combined into one score per image.

Every member's scores are first put on one footing, then combined; each method gives a score per image
(higher = better) from which pairs are chosen (`mjbench.label`):

- `mean`: the mean of the members' z-scores. A member's z-score standardises its score by the mean and the
  population standard deviation of all its valid scores in the labelling run (every image of every set), so
  a judge scoring in 0..1 and one scoring in 0..1000 weigh alike; a member whose scores are all equal gets 0
  everywhere (it cannot tell images apart, so it does not move the mean).
- `vote`: majority vote per pair: a member votes for the image it scores strictly higher (equal scores:
  abstains); an image's jury score is its share of pairwise majority wins within the set (Copeland; a pair
  with tied votes gives each half a win). In [0, 1].
- `borda`: Borda count: each member gives an image one point per image of the set it scores strictly above
  (half a point per tie), scaled to [0, 1] by the number of other images; the jury score is the members'
  mean.

A member with no valid score for an image (its request failed, was refused or did not parse) leaves that
image out of its ballot; the image's jury score is built from the other members. `agreement` of a pair is
the share of the members with valid scores for both images whose own scores prefer the chosen image
strictly.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

METHODS = ("mean", "vote", "borda")

#: member -> its score per image of one set (None: no valid score)
Ballots = Mapping[str, Sequence[float | None]]


def zscore_params(values: Sequence[float]) -> tuple[float, float]:
    """Mean and population standard deviation of one member's valid scores over the whole run."""
    if not values:
        return 0.0, 0.0
    mu = sum(values) / len(values)
    return mu, math.sqrt(sum((v - mu) ** 2 for v in values) / len(values))


def zscore(value: float | None, params: tuple[float, float]) -> float | None:
    mu, sigma = params
    if value is None:
        return None
    return 0.0 if sigma == 0 else (value - mu) / sigma


def _prefers(a: float | None, b: float | None) -> int | None:
    """+1 if a is strictly higher, -1 if lower, 0 if equal, None if either is missing."""
    if a is None or b is None:
        return None
    return (a > b) - (a < b)


def jury_scores(ballots: Ballots, n: int, method: str) -> list[float | None]:
    """One jury score per image of a set of `n` images (None where no member has a valid score)."""
    if method not in METHODS:
        raise ValueError(f"jury method must be one of {', '.join(METHODS)}, not {method!r}")
    out: list[float | None] = []
    for i in range(n):
        valid = [s for s in ballots.values() if s[i] is not None]
        if not valid:
            out.append(None)
        elif method == "mean":
            out.append(sum(s[i] for s in valid) / len(valid))  # type: ignore[misc]
        elif method == "borda":
            points = []
            for s in valid:
                others = [k for k in range(n) if k != i and s[k] is not None]
                if others:
                    wins = sum({1: 1.0, 0: 0.5, -1: 0.0}[_prefers(s[i], s[k])] for k in others)  # type: ignore[index]
                    points.append(wins / len(others))
            out.append(sum(points) / len(points) if points else None)
        else:  # vote: Copeland share of pairwise majority wins
            wins = compared = 0.0
            for k in range(n):
                if k == i:
                    continue
                votes = [_prefers(s[i], s[k]) for s in ballots.values()]
                votes = [v for v in votes if v is not None]
                if not votes:
                    continue
                compared += 1
                balance = sum(votes)
                wins += 1.0 if balance > 0 else 0.5 if balance == 0 else 0.0
            out.append(wins / compared if compared else None)
    return out


def agreement(ballots: Ballots, chosen: int, rejected: int) -> tuple[float | None, int]:
    """Share of members valid on both images whose scores prefer `chosen` strictly, and how many voted."""
    votes = [_prefers(s[chosen], s[rejected]) for s in ballots.values()]
    votes = [v for v in votes if v is not None]
    if not votes:
        return None, 0
    return sum(1 for v in votes if v > 0) / len(votes), len(votes)
