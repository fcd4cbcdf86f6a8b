"""Metrics for gold labels beyond 0/1: gold ties and `both_bad` (four classes), graded strength, soft labels.

Pure functions over the per-item verdict frame of `mjbench.metrics.pairwise_verdicts` (one verdict per judge x
task x scale x item, with its score gap and graded or soft gold labels); `compute_metrics` adds their rows.
Rows appear only where a task's records carry such labels (a task without gold ties has no `acc_exact`,
which would equal `acc_with_tie`). Per judge, task, scale, perspective and subcategory, and `ALL` (the task's
items pooled); an invalid verdict (error, parse error, refusal, no prediction) counts as wrong in accuracies.

Over all items, gold ties and `both_bad` included (where the task has any):
- `acc_exact`: share of items whose verdict equals the gold label (GenAI-Bench's exact match).
- `acc_half_credit`: 1 for an exact match, 0 where gold and verdict each name an image and differ, else 0.5
  (one side names an image, the other a tie or both_bad; or tie vs both_bad): Pick-a-Pic's protocol, where a
  tie against a pick earns half.
- `acc_tie_calibrated` (Deutsch et al. 2023, "Ties Matter"): for judges with scores, the verdict is re-derived
  from the score gap g = s0 - s1 as tie when |g| <= epsilon, else the higher image; epsilon is the value that
  maximises accuracy over the items it is fitted on (the smallest such; candidates 0 and every |g|). Gold
  `both_bad` counts as a tie here (a gap can say "no preference", never "both bad"). Epsilon is fitted once
  per judge x task x scale over the task's items, or on another task (`calibrate_on`, e.g. a dev split) and
  applied unchanged; a fit on the scored items themselves is optimistic and warned about.
- `tie_epsilon` (subcategory `ALL` only): that epsilon, as a raw score gap in the judge's units (not a
  fraction); `n` = the items it was fitted on.

Graded labels (`label_strength`, e.g. -3..3; negative = image0 preferred, 0 = tie), over items with gold 0/1:
- `acc_strength_<k>`: accuracy over the items with |strength| = k (one row per level present);
- `acc_strength_weighted`: sum(|strength| x correct) / sum(|strength|).

Soft labels (`label_prob` = y, the probability that image0 is preferred), over items with a valid verdict:
- the judge's probability that image0 is preferred: p = sigmoid((s0 - s1) / T) (Bradley-Terry), T > 0 fitted
  by maximum likelihood, sum of y log p + (1 - y) log(1 - p), on the judge's items of the task at that scale
  (T = inf, p = 0.5, where the gaps do not point the way of the votes); an item without a score gap uses its
  verdict: 1 (image0), 0 (image1), 0.5 (tie, both_bad).
- `brier` = mean (p - y)^2; `log_loss` = mean -(y log p + (1 - y) log(1 - p)), p clipped to [1e-15, 1 - 1e-15]
  (in nats, not a fraction); `ece`: 10 equal-width bins of p, sum over bins of (items in bin / items) x
  |mean y - mean p|;
- `acc_decisive`: accuracy on the items with |y - 0.5| >= 0.2 (gold = the majority side; all items counted);
- `bt_temperature` (`ALL` only): T, in score units (not a fraction; inf where p = 0.5); `n` = items fitted.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from mjbench.errors import DataError
from mjbench.stats import share_interval

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

#: metrics whose value is not a fraction in [0, 1]: a score gap, a temperature, nats
RAW_VALUE_METRICS = ("tie_epsilon", "bt_temperature", "log_loss")
FOUR_CLASS_METRICS = ("acc_exact", "acc_half_credit", "acc_tie_calibrated", "tie_epsilon")
STRENGTH_METRICS = ("acc_strength_weighted",)  # and acc_strength_<k> per level
PROB_METRICS = ("brier", "log_loss", "ece", "acc_decisive", "bt_temperature")
NO_PREFERENCE = ("tie", "both_bad")
ECE_BINS = 10
DECISIVE_MARGIN = 0.2
LOG_LOSS_CLIP = 1e-15
_LEVEL = ["judge", "task", "scale", "perspective"]
_NAN = float("nan")


def half_credit(label: np.ndarray, pred: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Per item: 1 exact, 0 when both name an image and differ (or the verdict is invalid), else 0.5."""
    import numpy as np

    picks = np.isin(label, ["0", "1"]) & np.isin(pred, ["0", "1"])
    credit = np.where(pred == label, 1.0, np.where(picks, 0.0, 0.5))
    return np.where(valid, credit, 0.0)


def _gap_outcomes(gap: np.ndarray, label: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(finite gap, right when the gap decides, right when it is a tie): gold both_bad counts as a tie."""
    import numpy as np

    finite = np.isfinite(gap)
    with np.errstate(invalid="ignore"):
        sign_ok = finite & (((gap > 0) & (label == "0")) | ((gap < 0) & (label == "1")))
    tie_ok = finite & np.isin(label, NO_PREFERENCE)
    return finite, sign_ok, tie_ok


def tie_calibrated_correct(gap: np.ndarray, label: np.ndarray, epsilon: float) -> np.ndarray:
    """Per item: is the verdict re-derived at `epsilon` (tie when |gap| <= epsilon) right? No gap: wrong."""
    import numpy as np

    finite, sign_ok, tie_ok = _gap_outcomes(gap, label)
    with np.errstate(invalid="ignore"):
        tie = finite & (np.abs(gap) <= epsilon)
    return np.where(tie, tie_ok, sign_ok)


def fit_tie_epsilon(gap: np.ndarray, label: np.ndarray) -> tuple[float, float] | None:
    """(epsilon, accuracy at it) maximising accuracy over all items (an item without a gap is wrong);
    the smallest such epsilon among 0 and every |gap|. None where no item has a gap."""
    import numpy as np

    finite, sign_ok, tie_ok = _gap_outcomes(gap, label)
    if not finite.any():
        return None
    size = np.abs(gap[finite])
    order = np.argsort(size, kind="stable")
    size, sign_ok, tie_ok = size[order], sign_ok[finite][order], tie_ok[finite][order]
    candidates = np.unique(np.concatenate([[0.0], size]))
    ties = np.searchsorted(size, candidates, side="right")  # items with |gap| <= epsilon
    tie_right = np.concatenate([[0], np.cumsum(tie_ok)])
    sign_right = np.concatenate([[0], np.cumsum(sign_ok)])
    correct = tie_right[ties] + (sign_right[-1] - sign_right[ties])
    best = int(np.argmax(correct))  # the first maximum: the smallest epsilon
    return float(candidates[best]), float(correct[best]) / len(gap)


def fit_temperature(gap: np.ndarray, prob: np.ndarray) -> float:
    """T > 0 maximising sum y log p + (1 - y) log(1 - p), p = sigmoid(gap / T), over finite pairs; inf where
    the best slope 1/T is 0 (the gaps do not point the way of the votes) or no gap is non-zero."""
    import numpy as np
    from scipy.optimize import minimize_scalar

    ok = np.isfinite(gap) & np.isfinite(prob)
    g, y = gap[ok], prob[ok]
    top = float(np.max(np.abs(g))) if len(g) else 0.0
    if top == 0.0 or float(np.sum(g * (y - 0.5))) <= 0.0:  # the likelihood's slope at 1/T = 0 is not upward
        return math.inf

    def nll(beta: float) -> float:  # -log sigmoid(x) = logaddexp(0, -x)
        return float(np.sum(y * np.logaddexp(0.0, -beta * g) + (1.0 - y) * np.logaddexp(0.0, beta * g)))

    high = 50.0 / top  # sigmoid(50) is 1 to 22 digits: steeper changes nothing
    beta = minimize_scalar(nll, bounds=(0.0, high), method="bounded", options={"xatol": high * 1e-12}).x
    return math.inf if beta <= 0 else 1.0 / float(beta)


def bt_probability(gap: np.ndarray, temperature: float) -> np.ndarray:
    """sigmoid(gap / T); 0.5 everywhere for T = inf."""
    import numpy as np

    if math.isinf(temperature):
        return np.where(np.isfinite(gap), 0.5, np.nan)
    return 0.5 * (1.0 + np.tanh(gap / (2.0 * temperature)))  # sigmoid, without overflow


def expected_calibration_error(p: np.ndarray, y: np.ndarray, bins: int = ECE_BINS) -> float:
    """sum over equal-width bins of p of (items in bin / items) x |mean y - mean p| (p = 1 in the last bin)."""
    import numpy as np

    if not len(p):
        return _NAN
    idx = np.minimum((p * bins).astype(int), bins - 1)
    total = 0.0
    for b in np.unique(idx):
        inside = idx == b
        total += inside.sum() / len(p) * abs(float(y[inside].mean()) - float(p[inside].mean()))
    return total


def _row(where: dict[str, Any], subcategory: str, metric: str, value: float, n: int,
         ci: tuple[float, float] = (_NAN, _NAN)) -> dict[str, Any]:
    return {**where, "subcategory": subcategory, "metric": metric, "value": float(value), "n": int(n),
            "ci_low": ci[0], "ci_high": ci[1]}


def _subsets(g: pd.DataFrame) -> list[tuple[str, Any]]:
    """(subcategory name, row mask) for each subcategory of a task's verdicts, then ALL."""
    import numpy as np

    sub = g["subcategory"].to_numpy()
    return [(str(s), sub == s) for s in sorted(set(sub))] + [("ALL", np.ones(len(g), bool))]


def _calibration_source(calibrate_on: Mapping[str, str], task: str, tasks: set[str]) -> str:
    dev = calibrate_on.get(task, calibrate_on.get("*", task))
    if dev not in tasks:
        raise DataError(f"--calibrate-on: task {dev!r} is not in the records (tasks: {', '.join(sorted(tasks))})")
    return dev


def gold_label_rows(verdicts: pd.DataFrame, calibrate_on: Mapping[str, str] | None = None,
                    intervals: bool = False, seed: int = 0, resamples: int = 0,
                    warnings: list[str] | None = None) -> list[dict[str, Any]]:
    """The rows of this module's metrics (see the module docstring) from the verdict frame (with `gap`,
    `label_strength`, `label_prob`). `calibrate_on`: task -> the task whose items fit its tie epsilon
    (key "*": every task); default: each task's own items, with a warning. `intervals`: clustered 95 %
    intervals on acc_exact."""
    import numpy as np

    warnings = warnings if warnings is not None else []
    calibrate_on = dict(calibrate_on or {})
    rows: list[dict[str, Any]] = []
    if verdicts.empty:
        return rows
    tasks = set(verdicts["task"].astype(str))
    in_sample: dict[tuple[str, str], int] = {}
    for key, g in verdicts.groupby(_LEVEL, sort=True):
        where = dict(zip(_LEVEL, key, strict=True))
        g = g.sort_values("item_id", kind="stable").reset_index(drop=True)  # sums in the same order: same bits
        label, pred = g["label"].to_numpy(object), g["pred"].to_numpy(object)
        valid = g["valid"].to_numpy(bool)
        gap = g["gap"].to_numpy(float)
        if np.isin(label, NO_PREFERENCE).any():
            dev = _calibration_source(calibrate_on, where["task"], tasks)
            fit_on = g if dev == where["task"] else verdicts[(verdicts["task"] == dev)
                                                            & (verdicts["judge"] == where["judge"])
                                                            & (verdicts["scale"] == where["scale"])]
            fit = fit_tie_epsilon(fit_on["gap"].to_numpy(float), fit_on["label"].to_numpy(object))
            if fit is None and np.isfinite(gap).any():
                warnings.append(f"{where['perspective']}: judge {where['judge']!r}, task {where['task']!r}, "
                                f"scale {where['scale']!r}: no score gap in calibration task {dev!r}; "
                                "no acc_tie_calibrated")
            if dev == where["task"] and fit is not None:
                in_sample[(where["perspective"], where["task"])] = in_sample.get(
                    (where["perspective"], where["task"]), 0) + 1
            exact = valid & (pred == label)
            credit = half_credit(label, pred, valid)
            calibrated = tie_calibrated_correct(gap, label, fit[0]) if fit is not None else None
            for name, mask in _subsets(g):
                n = int(mask.sum())
                answered = bool(valid[mask].any())
                ci = (share_interval(exact[mask], g["cluster"].to_numpy()[mask], seed=seed,
                                     key=f"{'|'.join(map(str, key))}|{name}|acc_exact", resamples=resamples)
                      if intervals and answered else (_NAN, _NAN))
                rows.append(_row(where, name, "acc_exact", exact[mask].mean() if answered else _NAN, n, ci))
                rows.append(_row(where, name, "acc_half_credit", credit[mask].mean() if answered else _NAN, n))
                if calibrated is not None:
                    rows.append(_row(where, name, "acc_tie_calibrated", calibrated[mask].mean(), n))
            if fit is not None:
                rows.append(_row(where, "ALL", "tie_epsilon", fit[0], len(fit_on)))
        strength = g["label_strength"].to_numpy(float)
        if np.isfinite(strength).any():
            rows += _strength_rows(where, g, strength, label, pred, valid, warnings)
        prob = g["label_prob"].to_numpy(float)
        if np.isfinite(prob).any():
            rows += _prob_rows(where, g, prob, gap, pred, valid)
    for (perspective, task), judges in sorted(in_sample.items()):
        warnings.append(f"{perspective}: task {task!r}: tie_epsilon fitted on the items it scores ({judges} judge "
                        "x scale), so acc_tie_calibrated is optimistic; fit it on a dev split with "
                        f"--calibrate-on {task}=DEV_TASK")
    return rows


def _strength_rows(where: dict[str, Any], g: pd.DataFrame, strength: np.ndarray, label: np.ndarray,
                   pred: np.ndarray, valid: np.ndarray, warnings: list[str]) -> list[dict[str, Any]]:
    import numpy as np

    with np.errstate(invalid="ignore"):
        side = np.where(strength < 0, "0", np.where(strength > 0, "1", "tie"))
    known = np.isfinite(strength)
    clash = known & np.isin(label, ["0", "1"]) & (side != label)
    if clash.any():
        warnings.append(f"{where['perspective']}: judge {where['judge']!r}, task {where['task']!r}: "
                        f"{int(clash.sum())} item(s) whose label_strength sign disagrees with the label "
                        "(negative = image0 preferred); the label is scored")
    level = np.abs(strength)
    used = known & np.isin(label, ["0", "1"]) & (level > 0)
    correct = valid & (pred == label)
    rows = []
    for name, mask in _subsets(g):
        m = mask & used
        if not m.any():
            continue
        for k in sorted(set(level[m])):
            at = m & (level == k)
            rows.append(_row(where, name, f"acc_strength_{k:g}", correct[at].mean(), int(at.sum())))
        rows.append(_row(where, name, "acc_strength_weighted",
                         float((level[m] * correct[m]).sum() / level[m].sum()), int(m.sum())))
    return rows


def _prob_rows(where: dict[str, Any], g: pd.DataFrame, prob: np.ndarray, gap: np.ndarray, pred: np.ndarray,
               valid: np.ndarray) -> list[dict[str, Any]]:
    import numpy as np

    known = np.isfinite(prob)
    scored_gap = known & valid & np.isfinite(gap)
    temperature = fit_temperature(gap[scored_gap], prob[scored_gap]) if scored_gap.any() else None
    from_verdict = np.select([pred == "0", pred == "1"], [1.0, 0.0], 0.5)
    p = np.where(scored_gap, bt_probability(gap, temperature) if temperature is not None else np.nan,
                 from_verdict)
    usable = known & valid
    margin = np.abs(prob - 0.5)
    decisive = known & ((margin >= DECISIVE_MARGIN) | np.isclose(margin, DECISIVE_MARGIN, rtol=0, atol=1e-9))
    majority = np.where(prob > 0.5, "0", "1")
    rows = []
    for name, mask in _subsets(g):
        m = mask & usable
        if (mask & known).any():
            pc = np.clip(p[m], LOG_LOSS_CLIP, 1 - LOG_LOSS_CLIP)
            y = prob[m]
            n = int(m.sum())
            rows.append(_row(where, name, "brier", float(np.mean((p[m] - y) ** 2)) if n else _NAN, n))
            rows.append(_row(where, name, "log_loss",
                             float(-np.mean(y * np.log(pc) + (1 - y) * np.log(1 - pc))) if n else _NAN, n))
            rows.append(_row(where, name, "ece", expected_calibration_error(p[m], y), n))
        d = mask & decisive
        if d.any():
            answered = bool(valid[d].any())
            rows.append(_row(where, name, "acc_decisive",
                             float((valid[d] & (pred[d] == majority[d])).mean()) if answered else _NAN,
                             int(d.sum())))
    if temperature is not None:
        rows.append(_row(where, "ALL", "bt_temperature", temperature, int(scored_gap.sum())))
    return rows
