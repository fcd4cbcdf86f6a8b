"""Plots of a run as SVG text, drawn with matplotlib (imported lazily, no pyplot: a bare `Figure` renders
through the Agg/SVG canvases without touching global backend state).

Every SVG is deterministic: the same data give the same bytes. Ids are hashed from a fixed salt
(`svg.hashsalt`) and prefixed with the plot's name (two plots inlined in one page never share an id), the metadata block is left out (no
date, no matplotlib version), the font is the DejaVu Sans that ships with matplotlib, and text stays text
(`svg.fonttype: none`: small, selectable, escaped by matplotlib's XML writer). Dataset strings are never
parsed as mathtext (`text.parse_math: False`), so a judge called `$x$` is drawn as it is spelled.

Each builder returns None where its plot does not apply (e.g. no pair-mode judge): a page shows only the
plots that say something.
"""

from __future__ import annotations

import io
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mjbench.metrics import ALL, ALL_MACRO, BIAS, BIAS_GROUP_METRICS, OVERALL, derive_pred, pairwise_verdicts
from mjbench.report.tables import missing, perspective_rank

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure

#: the tie-threshold grid: these quantiles of a judge's score gaps (plus 0)
THRESHOLD_QUANTILES = 20
CALIBRATION_BINS = 10
_RC = {
    "svg.fonttype": "none",
    "font.family": "DejaVu Sans",
    "font.size": 9.0,
    "text.parse_math": False,
    "text.usetex": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "figure.dpi": 72,
}
_NO_METADATA = {"Date": None, "Creator": None, "Format": None, "Type": None}
_COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
           "#bcbd22", "#17becf")
_ROW_IN = 0.22  # inches per horizontal bar or dot row


@dataclass
class Plot:
    """One rendered plot: `name` is its file name stem under reports/plots/ (safe characters only)."""

    name: str
    title: str
    caption: str
    svg: str


def color(i: int) -> str:
    return _COLORS[i % len(_COLORS)]


def _figure(width: float, height: float) -> Figure:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, max(height, 1.6)), layout="constrained")


def to_svg(fig: Figure, name: str) -> str:
    """The figure as standalone SVG text, without the XML prolog, DOCTYPE and metadata."""
    import matplotlib

    buf = io.StringIO()
    with matplotlib.rc_context({**_RC, "svg.hashsalt": "mjbench"}):
        fig.savefig(buf, format="svg", metadata=_NO_METADATA)
    text = buf.getvalue()
    text = text[text.index("<svg"):]
    text = re.sub(r"\s*<metadata>.*?</metadata>", "", text, flags=re.S)
    # ids unique within a page that inlines several plots: every id and local reference gets the plot's name
    text = re.sub(r'\bid="', f'id="{name}-', text)
    return re.sub(r'(url\(#|href="#)', rf"\g<1>{name}-", text).rstrip()


def _render(name: str, title: str, caption: str, draw: Callable[[], Figure]) -> Plot:
    import matplotlib

    with matplotlib.rc_context(_RC):  # layout (text extents) is computed with the same fonts as the output
        fig = draw()
        svg = to_svg(fig, name)
    return Plot(name, title, caption, svg)


def _series_label(judge: str, scale: str, task: str | None = None) -> str:
    return f"{judge} ({scale})" + (f" [{task}]" if task else "")


def _pct_axis(ax: Any, axis: str = "x") -> None:
    (ax.set_xlim if axis == "x" else ax.set_ylim)(0, 100)
    (ax.set_xlabel if axis == "x" else ax.set_ylabel)("%")


def _legend(fig: Figure, ax: Any, n: int) -> None:
    if n > 1:
        ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncols=min(n, 3), frameon=False, fontsize=8)


# --- overview -----------------------------------------------------------------------------------------


def overview_plot(board: pd.DataFrame) -> Plot | None:
    """Grouped bars: each judge x scale across the perspectives (accuracy with ties; bias: ACC)."""
    cols = [(c.removesuffix("_acc_with_tie"), c) for c in board.columns if c.endswith("_acc_with_tie")]
    if "bias_acc" in board.columns:
        cols.append((BIAS, "bias_acc"))
    cols.sort(key=lambda pc: perspective_rank(pc[0]))
    if not cols or board.empty:
        return None
    rows = [(str(r["judge"]), str(r["scale"]), [r[c] for _, c in cols]) for r in board.to_dict("records")]
    labels = [p if p != BIAS else "bias (ACC)" for p, _ in cols]

    def draw() -> Figure:
        import numpy as np

        fig = _figure(max(5.0, 1.1 * len(cols) + 0.2 * len(rows) * len(cols)), 3.4)
        ax = fig.add_subplot()
        width = 0.8 / len(rows)
        x = np.arange(len(cols))
        for i, (judge, scale, values) in enumerate(rows):
            v = [float("nan") if missing(a) else 100 * float(a) for a in values]
            ax.bar(x - 0.4 + width * (i + 0.5), v, width, color=color(i), label=_series_label(judge, scale))
        ax.set_xticks(x, labels)
        _pct_axis(ax, "y")
        _legend(fig, ax, len(rows))
        return fig

    return _render("overview", "Judges across perspectives",
                   "Accuracy with ties (%) per perspective, item-weighted over its tasks; bias: ACC (%). "
                   "A missing bar is n/a (see the leaderboard's note).", draw)


def scale_study_frame(metrics: Any) -> pd.DataFrame:
    """Accuracy with ties per judge, perspective and scale for the judges run at several scales:
    `MetricsResult.scale_study` (pooled over tasks) where the metrics have it, else the per-task rows of
    metrics.csv (perspective shown as `perspective [task]` where a perspective has several tasks)."""
    study = getattr(metrics, "scale_study", None)
    if study is not None:
        return study
    m = metrics.metrics
    acc = m[(m["metric"] == "acc_with_tie") & (m["subcategory"] == ALL) & (m["perspective"] != BIAS)]
    several = acc.groupby(["judge", "perspective"])["scale"].transform("nunique") > 1
    acc = acc[several]
    multi = acc.groupby("perspective")["task"].transform("nunique") > 1
    panel = acc["perspective"].astype(str).where(~multi, acc["perspective"].astype(str) + " [" + acc["task"] + "]")
    return acc.assign(perspective=panel, acc_with_tie=acc["value"])[
        ["judge", "perspective", "scale", "acc_with_tie", "ci_low", "ci_high", "n"]]


def scale_study_plot(metrics: Any, interval_method: str) -> Plot | None:
    """Accuracy with ties per feedback scale, with intervals, for judges that ran at several scales."""
    study = scale_study_frame(metrics)
    if study is None or study.empty:
        return None
    judges = sorted(set(study["judge"].astype(str)))
    panels = sorted(set(study["perspective"].astype(str)), key=perspective_rank)
    scale_names = _scale_order(set(study["scale"].astype(str)))

    def draw() -> Figure:
        ncols = min(3, len(panels))
        nrows = math.ceil(len(panels) / ncols)
        fig = _figure(3.3 * ncols, 2.6 * nrows + 0.4)
        for k, p in enumerate(panels):
            ax = fig.add_subplot(nrows, ncols, k + 1)
            for i, judge in enumerate(judges):
                sub = study[(study["judge"].astype(str) == judge) & (study["perspective"].astype(str) == p)]
                pts = sorted(((scale_names.index(str(r.scale)), r) for r in sub.itertuples(index=False)), key=lambda t: t[0])
                if not pts:
                    continue
                y = [float("nan") if missing(r.acc_with_tie) else 100 * float(r.acc_with_tie) for _, r in pts]
                err = _err(y, [r.ci_low for _, r in pts], [r.ci_high for _, r in pts])
                ax.errorbar([x for x, _ in pts], y, yerr=err, marker="o", capsize=3, color=color(i), label=judge)
            ax.set_xticks(range(len(scale_names)), scale_names)
            ax.set_title(p, fontsize=9)
            _pct_axis(ax, "y")
            if k == 0:
                ax.legend(fontsize=7, frameon=False)
        return fig

    return _render("scale-study", "Accuracy per feedback scale",
                   f"Accuracy with ties (%) of each judge that ran at several scales; bars: {interval_method}.",
                   draw)


def _scale_order(names: set[str]) -> list[str]:
    """Known scales in mjbench.scales' order, then the others alphabetically."""
    from mjbench.scales import SCALES

    known = [s for s in SCALES if s in names]
    return known + sorted(names - set(known))


def _err(y: Sequence[float], lo: Sequence[Any], hi: Sequence[Any]) -> list[list[float]]:
    """Error bar lengths below and above each value (0 where the interval is missing)."""
    below = [0.0 if missing(a) or math.isnan(v) else max(0.0, v - 100 * float(a)) for v, a in zip(y, lo, strict=True)]
    above = [0.0 if missing(b) or math.isnan(v) else max(0.0, 100 * float(b) - v) for v, b in zip(y, hi, strict=True)]
    return [below, above]


# --- per perspective ----------------------------------------------------------------------------------


def _series(frame: pd.DataFrame) -> list[tuple[str, str]]:
    return sorted({(str(j), str(s)) for j, s in zip(frame["judge"], frame["scale"], strict=True)})


def subcategory_plot(m: pd.DataFrame, p: str, slug: str, interval_method: str) -> Plot | None:
    """Dot plot: accuracy with ties and its interval per subcategory (and all items), one dot per judge."""
    acc = m[(m["perspective"] == p) & (m["metric"] == "acc_with_tie") & (m["subcategory"] != ALL_MACRO)]
    if acc.empty:
        return None
    series = _series(acc)
    tasks = sorted(set(acc["task"].astype(str)))
    rows = sorted({(str(t), str(s)) for t, s in zip(acc["task"], acc["subcategory"], strict=True)},
                  key=lambda ts: (ts[0], ts[1] != ALL, ts[1]))
    cells = {(str(r.task), str(r.subcategory), str(r.judge), str(r.scale)): r for r in acc.itertuples(index=False)}

    def draw() -> Figure:
        band = max(1, len(series))
        fig = _figure(6.5, 0.6 + _ROW_IN * 0.9 * len(rows) * band ** 0.5 * 1.6)
        ax = fig.add_subplot()
        for i, (judge, scale) in enumerate(series):
            xs, ys, lo, hi = [], [], [], []
            for k, (task, sub) in enumerate(rows):
                r = cells.get((task, sub, judge, scale))
                if r is None or missing(r.value):
                    continue
                xs.append(100 * float(r.value))
                ys.append(len(rows) - 1 - k + 0.35 - 0.7 * (i + 0.5) / band)
                lo.append(r.ci_low)
                hi.append(r.ci_high)
            ax.errorbar(xs, ys, xerr=_err(xs, lo, hi), fmt="o", markersize=4, capsize=2, color=color(i),
                        label=_series_label(judge, scale))
        names = [("all items" if sub == ALL else sub) + (f" [{task}]" if len(tasks) > 1 else "")
                 for task, sub in rows]
        ax.set_yticks(range(len(rows)), names[::-1])
        ax.set_ylim(-0.6, len(rows) - 0.4)
        ax.grid(axis="y", visible=False)
        _pct_axis(ax, "x")
        _legend(fig, ax, len(series))
        return fig

    return _render(f"{slug}-subcategories", "Accuracy per subcategory",
                   f"Accuracy with ties (%) per subcategory, one dot per judge and scale; bars: {interval_method}. "
                   "A judge without a valid verdict in a subcategory has no dot (n/a in the table).", draw)


ORDER_METRICS = (("acc_with_tie_order01", "acc w/ tie, order 01"), ("acc_with_tie_order10", "acc w/ tie, order 10"),
                 ("consistency", "consistency"))


def order_plot(m: pd.DataFrame, p: str, slug: str) -> Plot | None:
    """Pair-mode judges: accuracy in each image order and consistency, side by side (position bias)."""
    sub = m[(m["perspective"] == p) & (m["subcategory"] == ALL) & m["metric"].isin([k for k, _ in ORDER_METRICS])]
    if sub.empty:
        return None
    keys = sorted({(str(j), str(s), str(t)) for j, s, t in zip(sub["judge"], sub["scale"], sub["task"], strict=True)})
    one_task = len({t for _, _, t in keys}) == 1
    values = {(str(r.judge), str(r.scale), str(r.task), str(r.metric)): r.value for r in sub.itertuples(index=False)}

    def draw() -> Figure:
        fig = _figure(6.5, 0.8 + _ROW_IN * 3 * len(keys))
        ax = fig.add_subplot()
        h = 0.8 / len(ORDER_METRICS)
        for i, (metric, label) in enumerate(ORDER_METRICS):
            ys = [len(keys) - 1 - k + 0.4 - h * (i + 0.5) for k in range(len(keys))]
            v = [values.get((*key, metric), float("nan")) for key in keys]
            ax.barh(ys, [float("nan") if missing(a) else 100 * float(a) for a in v], h, color=color(i),
                    label=label)
        ax.set_yticks(range(len(keys)), [_series_label(j, s, None if one_task else t) for j, s, t in keys][::-1])
        ax.grid(axis="y", visible=False)
        _pct_axis(ax, "x")
        _legend(fig, ax, len(ORDER_METRICS))
        return fig

    return _render(f"{slug}-orders", "Pair mode: image order and consistency",
                   "Per pair-mode judge: accuracy with ties (%) when the preferred image is shown first or second, "
                   "and the share of items whose two verdicts agree. A judge with a position bias has uneven "
                   "order bars and low consistency.", draw)


def _score_rows(records: pd.DataFrame | None, p: str) -> pd.DataFrame | None:
    """The records of perspective p that a threshold can turn into a verdict: single-image ratings (no
    order), gold label 0 or 1, from judge x scale series that have scores at all."""
    import pandas as pd

    if records is None or records.empty or p == BIAS:
        return None
    r = records[(records["perspective"].astype(str) == p) & records["label"].isin(["0", "1"])]
    if "order" in r.columns:
        r = r[r["order"].isna()]
    s0 = pd.to_numeric(r["score_0"], errors="coerce")
    s1 = pd.to_numeric(r["score_1"], errors="coerce")
    r = r.assign(_s0=s0, _s1=s1)
    scored = r.assign(_both=s0.notna() & s1.notna()).groupby(["judge", "scale"])["_both"].transform("any")
    r = r[scored.astype(bool)]
    return r if len(r) else None


def threshold_curves(rows: pd.DataFrame, quantiles: int = THRESHOLD_QUANTILES
                     ) -> list[tuple[float, float, float, float]]:
    """(threshold, acc with ties, acc without ties, tie rate) over a grid of thresholds: 0 and the
    quantiles of the valid score gaps. A record whose status is not ok or that has no verdict counts as
    wrong, as in metrics.csv; verdicts come from `derive_pred`, the rule metrics use."""
    import numpy as np

    ok = (rows["status"].fillna("ok").astype(str) == "ok").to_numpy()
    s0, s1, labels = rows["_s0"].to_numpy(float), rows["_s1"].to_numpy(float), rows["label"].astype(str).to_numpy()
    gaps = np.abs(s0 - s1)[ok & np.isfinite(s0) & np.isfinite(s1)]
    if not len(gaps):
        return []
    grid = sorted({0.0, *(float(q) for q in np.quantile(gaps, np.linspace(0, 1, quantiles + 1)))})
    out = []
    for t in grid:
        preds = [derive_pred(a, b, t) if good else None for a, b, good in zip(s0, s1, ok, strict=True)]
        correct = sum(pr == lab for pr, lab in zip(preds, labels, strict=True))
        decided = sum(pr in ("0", "1") for pr in preds)
        ties = sum(pr == "tie" for pr in preds)
        n = len(preds)
        out.append((t, correct / n, correct / decided if decided else float("nan"), ties / n))
    return out


def tie_threshold_plot(records: pd.DataFrame | None, p: str, slug: str,
                       thresholds: Callable[[str], float]) -> Plot | None:
    """Score judges: accuracy with and without ties, and the tie rate, as the tie threshold grows."""
    rows = _score_rows(records, p)
    if rows is None:
        return None
    series = _series(rows)
    curves = {(j, s): threshold_curves(rows[(rows["judge"].astype(str) == j) & (rows["scale"].astype(str) == s)])
              for j, s in series}
    series = [k for k in series if curves[k]]
    if not series:
        return None

    def draw() -> Figure:
        ncols = min(3, len(series))
        nrows = math.ceil(len(series) / ncols)
        fig = _figure(3.2 * ncols, 2.5 * nrows + 0.3)
        for k, (judge, scale) in enumerate(series):
            ax = fig.add_subplot(nrows, ncols, k + 1)
            c = curves[(judge, scale)]
            t = [x[0] for x in c]
            for i, label in enumerate(("acc w/ tie", "acc w/o tie", "tie rate")):
                ax.plot(t, [100 * x[i + 1] for x in c], marker=".", markersize=3, color=color(i), label=label)
            ax.axvline(thresholds(judge), color="#555", linestyle="--", linewidth=0.8)
            ax.set_title(_series_label(judge, scale), fontsize=9)
            ax.set_xlabel("tie threshold (score units)")
            ax.set_ylim(0, 100)
            if k == 0:
                ax.set_ylabel("%")
                ax.legend(fontsize=7, frameon=False)
        return fig

    return _render(f"{slug}-tie-threshold", "Score judges: accuracy against the tie threshold",
                   "Verdicts recomputed from each judge's scores: a tie where |score0 - score1| is at most the "
                   "threshold (grid: 0 and the 5 % quantiles of the judge's score gaps). Dashed line: the "
                   "threshold this run used. Invalid records count as wrong.", draw)


def calibration_plot(records: pd.DataFrame | None, p: str, slug: str, tie_threshold: float = 0.0) -> Plot | None:
    """Where gold soft labels exist (`label_prob`, the share preferring image0): per bin of label_prob, the
    share of the judge's valid verdicts (one per item, `pairwise_verdicts`) that chose image0 (a tie counts
    one half)."""
    import numpy as np
    import pandas as pd

    if records is None or "label_prob" not in records.columns:
        return None
    here = records[(records["perspective"].astype(str) == p) & records["label_prob"].notna()]
    if here.empty:
        return None
    verdicts, _ = pairwise_verdicts(here, tie_threshold)  # carries each item's label_prob
    r = verdicts[verdicts["valid"]]
    r = r.assign(_prob=pd.to_numeric(r["label_prob"], errors="coerce"))
    r = r[r["_prob"].notna()]
    if r.empty:
        return None
    series = _series(r)
    edges = np.linspace(0, 1, CALIBRATION_BINS + 1)

    def draw() -> Figure:
        fig = _figure(4.6, 4.0)
        ax = fig.add_subplot()
        ax.plot([0, 100], [0, 100], color="#999", linestyle="--", linewidth=0.8, label="perfect")
        for i, (judge, scale) in enumerate(series):
            g = r[(r["judge"].astype(str) == judge) & (r["scale"].astype(str) == scale)]
            chose0 = g["pred"].map({"0": 1.0, "1": 0.0, "tie": 0.5, "both_bad": 0.5}).to_numpy(float)
            bins = np.clip(np.digitize(g["_prob"].to_numpy(float), edges[1:-1]), 0, CALIBRATION_BINS - 1)
            xs, ys, ns = [], [], []
            for b in range(CALIBRATION_BINS):
                sel = bins == b
                if sel.any():
                    xs.append(100 * float(g["_prob"].to_numpy(float)[sel].mean()))
                    ys.append(100 * float(chose0[sel].mean()))
                    ns.append(int(sel.sum()))
            ax.plot(xs, ys, marker="o", color=color(i), label=_series_label(judge, scale))
        ax.set_xlim(0, 100)
        ax.set_ylim(0, 100)
        ax.set_xlabel("gold share preferring image0 (%)")
        ax.set_ylabel("judge verdicts for image0 (%)")
        ax.legend(fontsize=7, frameon=False)
        return fig

    return _render(f"{slug}-calibration", "Soft labels: reliability",
                   f"Items binned by their gold soft label (label_prob, {CALIBRATION_BINS} equal bins; each point at "
                   "the bin's mean): the share of the judge's valid verdicts that chose image0 (a tie counts "
                   "one half). A judge that follows the voters lies on the diagonal.", draw)


def bias_heatmap(groups: pd.DataFrame | None, slug: str) -> Plot | None:
    """Mean normalised score per group (columns) for each judge x scale (rows): a fair judge is flat."""
    import numpy as np

    if groups is None or groups.empty:
        return None
    tasks = sorted(set(groups["task"].astype(str)))
    cols = sorted({(str(t), str(g)) for t, g in zip(groups["task"], groups["group"], strict=True)})
    rows = _series(groups)
    grid = np.full((len(rows), len(cols)), np.nan)
    for r in groups.itertuples(index=False):
        grid[rows.index((str(r.judge), str(r.scale))), cols.index((str(r.task), str(r.group)))] = r.mean_score
    names = [g + (f" [{t}]" if len(tasks) > 1 else "") for t, g in cols]

    def draw() -> Figure:
        fig = _figure(min(16.0, 2.5 + 0.32 * len(cols)), 1.4 + 0.35 * len(rows) + 0.06 * max(map(len, names)))
        ax = fig.add_subplot()
        im = ax.imshow(grid, cmap="viridis", vmin=0.0, vmax=1.0, aspect="auto")
        ax.set_xticks(range(len(cols)), names, rotation=90)
        ax.set_yticks(range(len(rows)), [_series_label(j, s) for j, s in rows])
        ax.grid(False)
        if grid.size <= 300:
            for (i, k), v in np.ndenumerate(grid):
                if not np.isnan(v):
                    ax.text(k, i, f"{100 * v:.0f}", ha="center", va="center", fontsize=7,
                            color="white" if v < 0.6 else "black")
        fig.colorbar(im, ax=ax, label="mean normalised score", shrink=0.8)
        return fig

    return _render(f"{slug}-groups", "Bias: mean normalised score per group",
                   "Each cell: a judge's mean normalised score (x 100) over a group's images. A fair judge's row "
                   "is one flat colour; a blank cell is a group without valid scores.", draw)


def bias_axes_plot(m: pd.DataFrame, slug: str) -> Plot | None:
    """ACC, NDS and GES per axis (and overall), one bar per judge x scale."""
    b = m[(m["perspective"] == BIAS) & m["metric"].isin(BIAS_GROUP_METRICS)]
    if b.empty:
        return None
    series = _series(b)
    axes = sorted(set(b["subcategory"].astype(str)), key=lambda a: (a != OVERALL, a))
    cells: dict[tuple[str, str, str, str], list[tuple[float, int]]] = {}
    for r in b.itertuples(index=False):
        if not missing(r.value) and r.n:
            cells.setdefault((str(r.judge), str(r.scale), str(r.subcategory), str(r.metric)), []).append(
                (float(r.value), int(r.n)))

    def pooled(key: tuple[str, str, str, str]) -> float:
        """Item-weighted over tasks; NaN where no task has a value."""
        parts = cells.get(key, [])
        return sum(v * n for v, n in parts) / sum(n for _, n in parts) if parts else float("nan")

    def draw() -> Figure:
        import numpy as np

        fig = _figure(3.0 * len(BIAS_GROUP_METRICS) + 0.4, 1.2 + 0.5 * len(axes) + 0.15 * len(axes) * len(series))
        x = np.arange(len(axes))
        h = 0.8 / len(series)
        for k, metric in enumerate(BIAS_GROUP_METRICS):
            ax = fig.add_subplot(1, len(BIAS_GROUP_METRICS), k + 1)
            for i, (judge, scale) in enumerate(series):
                v = [100 * pooled((judge, scale, a, metric)) for a in axes]
                ax.barh(len(axes) - 1 - x + 0.4 - h * (i + 0.5), v, h, color=color(i),
                        label=_series_label(judge, scale))
            ax.set_yticks(range(len(axes)), axes[::-1] if k == 0 else [""] * len(axes))
            ax.set_title(metric.removeprefix("bias_").upper(), fontsize=9)
            ax.grid(axis="y", visible=False)
            _pct_axis(ax, "x")
            if k == 0 and len(series) > 1:
                ax.legend(fontsize=7, frameon=False, loc="lower left", bbox_to_anchor=(0.0, 1.05))
        return fig

    return _render(f"{slug}-axes", "Bias: ACC, NDS and GES per axis",
                   "Per axis (and overall): the bias metrics (%) of each judge, item-weighted over tasks. Higher "
                   "is fairer; see the bias table for undefined values.", draw)

