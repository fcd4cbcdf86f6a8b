"""The data report of `mjbench label`: `preferences.md` and `preferences.html` beside the export.

Both are rendered from one summary (`summarize`): the pairs kept and dropped by each filter, the filters,
the distributions of the chosen score, rejected score, margin and agreement, how many kept pairs have a score
in each judge column (`chosen_score__<name>` / `rejected_score__<name>`, whatever the names: a judge, a
`judge@scale`, later a `judge:aspect`), and the judges' measured accuracy where `--benchmark` gave it. The
page adds plots (inline SVG from `mjbench.report.plots`' deterministic renderer) and a gallery of the kept
pairs with the lowest agreement: chosen and rejected image side by side (JPEG thumbnails as data URIs, as the
failure gallery makes them), the prompt, the jury's and each judge's scores, margin and agreement.

The page is self-contained (nothing is fetched) and deterministic (the same export gives the same bytes). It is
rendered by jinja2 with autoescape on, so every dataset string (prompts, paths, judge names) is shown as text.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mjbench.errors import ItemError
from mjbench.report.gallery import Thumb, _text, thumbnail
from mjbench.report.plots import Plot, _figure, _render, color
from mjbench.report.tables import Table, md_block, md_cell, missing

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure

    from mjbench.images import ImageRef

#: kept pairs shown in the gallery (those with the lowest agreement)
GALLERY_MAX = 16
REPORT_NAMES = ("preferences.md", "preferences.html")
#: the distribution rows of the summary, in this order
DISTRIBUTION_COLUMNS = ("chosen_score", "rejected_score", "margin", "agreement")
CHOSEN_PREFIX, REJECTED_PREFIX = "chosen_score__", "rejected_score__"
HIST_BINS = 20


@dataclass
class PreferenceSummary:
    """What both reports say: a one-line description and the tables (Markdown and HTML render the same)."""

    intro: str
    kept: int
    considered: int
    dropped: dict[str, int]
    tables: list[Table] = field(default_factory=list)


def _num(v: Any, digits: int = 3) -> str:
    return "n/a" if missing(v) else f"{float(v):.{digits}g}"


def _share(n: int, total: int) -> str:
    return "n/a" if total == 0 else f"{100 * n / total:.1f} %"


def score_columns(frame: pd.DataFrame) -> list[str]:
    """The names of the per-judge score columns (`chosen_score__<name>`), in the export's order."""
    return [c.removeprefix(CHOSEN_PREFIX) for c in frame.columns if c.startswith(CHOSEN_PREFIX)]


def summarize(frame: pd.DataFrame, info: dict[str, Any]) -> PreferenceSummary:
    """The one summary both reports render. `frame` is the export, `info` run.json's `label` section."""
    import pandas as pd

    kept, dropped = int(info["kept"]), {str(k): int(v) for k, v in info["dropped"].items()}
    considered = kept + sum(dropped.values())
    intro = (f"Jury {info['jury']} of {', '.join(info['judges']) or 'no judge'}; policy {info['policy']}; "
             f"{info['sets']} candidate sets; {considered} pairs considered.")
    tables = [Table("Pairs", ["pairs", "count", "share"],
                    [["kept", str(kept), _share(kept, considered)]]
                    + [[f"dropped: {reason}", str(n), _share(n, considered)] for reason, n in dropped.items()],
                    note="Each dropped pair is counted under the first rule it fails, in this order.",
                    legend="judge_invalid: a judge gave no valid score to one of the two images; tie: the jury "
                           "scores are equal (margin 0); min_margin, min_agreement, min_chosen_score: the filters "
                           "below.")]
    tables.append(Table("Filters", ["filter", "value"],
                        [[k, "none" if info.get(k) is None else f"{info[k]:g}"]
                         for k in ("min_margin", "min_agreement", "min_chosen_score")]))
    rows = []
    for col in DISTRIBUTION_COLUMNS:
        v = pd.to_numeric(frame[col], errors="coerce").dropna() if col in frame.columns else pd.Series([], dtype=float)
        if v.empty:
            rows.append([col, "0"] + ["n/a"] * 6)
            continue
        q = v.quantile([0.0, 0.25, 0.5, 0.75, 1.0]).tolist()
        rows.append([col, str(len(v))] + [_num(x) for x in [v.mean(), *q]])
    tables.append(Table("Distributions of the kept pairs",
                        ["column", "n", "mean", "min", "p25", "median", "p75", "max"], rows,
                        note="Jury scores (see the jury method); margin = chosen_score - rejected_score; agreement "
                             "= share of the judges valid on both images that prefer the chosen one."))
    if kept and "agreement" in frame.columns:
        counts = pd.to_numeric(frame["agreement"], errors="coerce").round(3).value_counts(dropna=False).sort_index()
        tables.append(Table("Agreement", ["agreement", "pairs", "share"],
                            [[_num(value), str(int(n)), _share(int(n), kept)] for value, n in counts.items()]))
    coverage = []
    for name in score_columns(frame):
        c = frame[CHOSEN_PREFIX + name].notna()
        r = frame[REJECTED_PREFIX + name].notna() if REJECTED_PREFIX + name in frame.columns else c & False
        coverage.append([name, str(int(c.sum())), str(int(r.sum())), str(int((c & r).sum())),
                         _share(int((c & r).sum()), len(frame))])
    if coverage:
        tables.append(Table("Score coverage", ["score column", "chosen scored", "rejected scored", "both",
                                               "share of kept pairs"], coverage,
                            note="Per judge score column (chosen_score__<name>, rejected_score__<name>): how many "
                                 "kept pairs carry a score for the chosen and the rejected image."))
    if info.get("judge_accuracy"):
        tables.append(Table("Judges' measured accuracy", ["judge", "perspective", "acc_with_tie"],
                            [[judge, p, f"{float(a):.3f}"] for judge, per in info["judge_accuracy"].items()
                             for p, a in per.items()],
                            note=f"Accuracy with ties from the benchmark run {info['benchmark']} (its "
                                 "leaderboard), as the export's judge_accuracy column carries it."))
    return PreferenceSummary(intro, kept, considered, dropped, tables)


def preferences_md(summary: PreferenceSummary) -> str:
    return "# Preference data\n\n" + md_cell(summary.intro) + "\n\n" + "\n".join(
        md_block(t, level="##") for t in summary.tables)


# --- plots --------------------------------------------------------------------------------------------


def _values(frame: pd.DataFrame, col: str) -> list[float]:
    import pandas as pd

    if col not in frame.columns:
        return []
    return [float(x) for x in pd.to_numeric(frame[col], errors="coerce").dropna() if math.isfinite(float(x))]


def _count_axis(ax: Any, axis: str) -> None:
    """Pair counts: whole-number ticks only."""
    from matplotlib.ticker import MaxNLocator

    (ax.xaxis if axis == "x" else ax.yaxis).set_major_locator(MaxNLocator(integer=True))
    (ax.set_xlabel if axis == "x" else ax.set_ylabel)("pairs")


def pairs_plot(summary: PreferenceSummary) -> Plot | None:
    if summary.considered == 0:
        return None
    labels = ["kept", *(f"dropped: {r}" for r in summary.dropped)]
    values = [summary.kept, *summary.dropped.values()]

    def draw() -> Figure:
        fig = _figure(6.0, 0.6 + 0.28 * len(labels))
        ax = fig.add_subplot()
        ys = list(range(len(labels)))[::-1]
        ax.barh(ys, values, color=[color(2)] + [color(3)] * (len(values) - 1))
        ax.set_yticks(ys, labels)
        _count_axis(ax, "x")
        ax.grid(axis="y", visible=False)
        return fig

    return _render("pref-pairs", "Kept and dropped pairs",
                   "Pairs the policy proposed: kept, or dropped under the first rule they fail.", draw)


def _edges(values: list[float]) -> list[float]:
    import numpy as np

    lo, hi = min(values), max(values)
    if lo == hi:
        lo, hi = lo - 0.5, hi + 0.5
    return [float(x) for x in np.linspace(lo, hi, HIST_BINS + 1)]


def scores_plot(frame: pd.DataFrame) -> Plot | None:
    chosen, rejected = _values(frame, "chosen_score"), _values(frame, "rejected_score")
    if not chosen and not rejected:
        return None

    def draw() -> Figure:
        fig = _figure(6.0, 2.8)
        ax = fig.add_subplot()
        bins = _edges(chosen + rejected)
        for i, (name, v) in enumerate((("chosen", chosen), ("rejected", rejected))):
            if v:
                ax.hist(v, bins=bins, histtype="stepfilled", alpha=0.45, color=color(i), label=name)
        ax.set_xlabel("jury score")
        _count_axis(ax, "y")
        ax.legend(frameon=False, fontsize=8)
        return fig

    return _render("pref-scores", "Chosen and rejected scores",
                   "Histogram of the jury score of the chosen and of the rejected image of each kept pair.", draw)


def margin_plot(frame: pd.DataFrame) -> Plot | None:
    margins = _values(frame, "margin")
    if not margins:
        return None

    def draw() -> Figure:
        fig = _figure(6.0, 2.6)
        ax = fig.add_subplot()
        ax.hist(margins, bins=_edges(margins), color=color(0))
        ax.set_xlabel("margin (chosen - rejected jury score)")
        _count_axis(ax, "y")
        return fig

    return _render("pref-margin", "Margins", "Histogram of the margins of the kept pairs.", draw)


def agreement_plot(frame: pd.DataFrame) -> Plot | None:
    values = _values(frame, "agreement")
    if not values:
        return None
    counts: dict[float, int] = {}
    for v in values:
        counts[round(v, 3)] = counts.get(round(v, 3), 0) + 1
    keys = sorted(counts)

    def draw() -> Figure:
        fig = _figure(max(4.0, 0.5 * len(keys) + 2), 2.6)
        ax = fig.add_subplot()
        ax.bar(range(len(keys)), [counts[k] for k in keys], color=color(4))
        ax.set_xticks(range(len(keys)), [f"{k:g}" for k in keys])
        ax.set_xlabel("agreement")
        _count_axis(ax, "y")
        ax.grid(axis="x", visible=False)
        return fig

    return _render("pref-agreement", "Agreement", "Kept pairs per agreement value (share of the judges that "
                   "prefer the chosen image).", draw)


# --- gallery ------------------------------------------------------------------------------------------


@dataclass
class PairCard:
    prompt: str
    where: str  # task / set id
    chosen: Thumb
    rejected: Thumb
    chosen_score: str
    rejected_score: str
    margin: str
    agreement: str
    voters: str
    judges: list[tuple[str, str, str]]  # name, chosen score, rejected score


class _Thumbs:
    """Thumbnails by image hash, one css class per distinct data URI (an image shown twice is embedded once)."""

    def __init__(self, folder: Path, images: Mapping[str, ImageRef] | None):
        self.folder, self.images = folder, images or {}
        self.styles: dict[str, str] = {}  # data URI -> css class
        self.cache: dict[str, Thumb] = {}

    def _ref(self, digest: str, reference: str) -> ImageRef | None:
        from mjbench.fetch import is_url
        from mjbench.images import ImageRef

        if digest in self.images:
            return self.images[digest]
        if not reference or is_url(reference):
            return None  # the report never fetches
        path = Path(reference)
        return ImageRef(path=path if path.is_absolute() else self.folder / path)

    def get(self, digest: str, reference: str, caption: str) -> Thumb:
        if digest not in self.cache:
            ref = self._ref(digest, reference)
            if ref is None:
                self.cache[digest] = Thumb(caption, None, why="not fetched for the report: " + reference)
            else:
                try:
                    uri, (w, h) = thumbnail(ref)
                except ItemError as exc:
                    self.cache[digest] = Thumb(caption, None, why=str(exc))
                else:
                    css = self.styles.setdefault(uri, f"p{len(self.styles)}")
                    self.cache[digest] = Thumb(caption, css, uri, w, h)
        t = self.cache[digest]
        return Thumb(caption, t.css, t.uri, t.width, t.height, t.why)


def lowest_agreement(frame: pd.DataFrame, cap: int) -> pd.DataFrame:
    """The `cap` kept pairs with the lowest agreement (then the smallest margin; then task, set and
    positions, so the same export shows the same pairs)."""
    if frame.empty or cap <= 0:
        return frame.iloc[:0]
    keys = [c for c in ("agreement", "margin", "task", "set_id", "chosen_index", "rejected_index", "chosen_hash",
                        "rejected_hash") if c in frame.columns]
    return frame.sort_values(keys, kind="mergesort", na_position="first").head(cap)


def build_cards(frame: pd.DataFrame, thumbs: _Thumbs, cap: int) -> list[PairCard]:
    names = score_columns(frame)
    cards = []
    for row in lowest_agreement(frame, cap).to_dict("records"):
        voters = row.get("n_voters")
        cards.append(PairCard(
            prompt=_text(row.get("prompt")),
            where=" / ".join(_text(row.get(k)) for k in ("task", "set_id") if _text(row.get(k))),
            chosen=thumbs.get(_text(row.get("chosen_hash")), _text(row.get("chosen")), "chosen"),
            rejected=thumbs.get(_text(row.get("rejected_hash")), _text(row.get("rejected")), "rejected"),
            chosen_score=_num(row.get("chosen_score"), 4), rejected_score=_num(row.get("rejected_score"), 4),
            margin=_num(row.get("margin")), agreement=_num(row.get("agreement")),
            voters="" if missing(voters) else str(int(voters)),
            judges=[(n, _num(row.get(CHOSEN_PREFIX + n), 4), _num(row.get(REJECTED_PREFIX + n), 4))
                    for n in names]))
    return cards


# --- writers ------------------------------------------------------------------------------------------


def preferences_html(summary: PreferenceSummary, frame: pd.DataFrame, folder: Path,
                     images: Mapping[str, ImageRef] | None = None, gallery_max: int = GALLERY_MAX) -> str:
    import jinja2

    env = jinja2.Environment(loader=jinja2.PackageLoader("mjbench.report", "templates"), autoescape=True,
                             undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    figures = [p for p in (pairs_plot(summary), scores_plot(frame), margin_plot(frame), agreement_plot(frame))
               if p is not None]
    thumbs = _Thumbs(folder, images)
    cards = build_cards(frame, thumbs, gallery_max)
    return env.get_template("preferences.html.j2").render(
        title="mjbench: preference data", summary=summary, plots=figures, cards=cards,
        thumb_styles=[(css, uri) for uri, css in thumbs.styles.items()], gallery_max=gallery_max)


def write_preference_reports(folder: Path, frame: pd.DataFrame, info: dict[str, Any],
                             images: Mapping[str, ImageRef] | None = None,
                             gallery_max: int = GALLERY_MAX) -> list[Path]:
    """preferences.md and preferences.html from one summary of the export `frame` and run.json's `label`
    section `info`; `images` (image hash -> ImageRef) gives the gallery its pixels, else the export's paths
    (relative ones from `folder`) are read. Returns the paths written."""
    summary = summarize(frame, info)
    out = []
    for name, text in (("preferences.md", preferences_md(summary)),
                       ("preferences.html", preferences_html(summary, frame, folder, images, gallery_max))):
        path = folder / name
        path.write_text(text, encoding="utf-8", newline="\n")
        out.append(path)
    return out
