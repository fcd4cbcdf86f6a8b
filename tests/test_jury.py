"""Jury methods on hand-computed ballots."""

from __future__ import annotations

import pytest

from mjbench.jury import agreement, jury_scores, zscore, zscore_params


def test_mean_of_zscores_weighs_scales_alike() -> None:
    a, b = [0.1, 0.2, 0.3], [100.0, 300.0, 200.0]
    pa, pb = zscore_params(a), zscore_params(b)
    ballots = {"a": [zscore(v, pa) for v in a], "b": [zscore(v, pb) for v in b]}
    scores = jury_scores(ballots, 3, "mean")
    assert scores[0] == pytest.approx(-1.2247449, rel=1e-6)  # both rank image 0 last: z = -sqrt(1.5)
    assert scores[1] == pytest.approx(scores[2])  # one judge each: the z-scores cancel out
    assert zscore(5.0, zscore_params([5.0, 5.0])) == 0.0  # a constant judge does not move the mean


def test_vote_borda_and_agreement() -> None:
    ballots = {"a": [3.0, 2.0, 1.0], "b": [1.0, 3.0, 2.0], "c": [3.0, 1.0, None]}
    # pairs: 0 v 1: a,c for 0, b for 1 -> 0 wins; 0 v 2: a for 0, b for 2 -> tied; 1 v 2: a, b for 1
    assert jury_scores(ballots, 3, "vote") == [0.75, 0.5, 0.25]
    # borda per judge: a [1, .5, 0], b [0, 1, .5], c [1, 0, -]; mean over the judges valid on the image
    assert jury_scores(ballots, 3, "borda") == pytest.approx([2 / 3, 0.5, 0.25])
    assert agreement(ballots, 0, 1) == (pytest.approx(2 / 3), 3)
    assert agreement(ballots, 0, 2) == (0.5, 2)  # c has no score for image 2: it does not vote
    assert jury_scores({"a": [None, None]}, 2, "mean") == [None, None]
    with pytest.raises(ValueError, match="jury method"):
        jury_scores(ballots, 3, "median")
