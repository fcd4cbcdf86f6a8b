"""The failure gallery: per perspective, judge and scale, the items the judge got wrong or could not judge,
with thumbnails of the images, the prompt, gold label, verdict (both orders where asked), scores and the
judge's raw output.

Records hold no pixels: images come from an `ImageLookup` (task, item_id) -> the item's `ImageRef`s, which
the runner builds from its loaded items and `rebuild_reports` from the run's task configs. Thumbnails are
small JPEG data URIs (THUMB_SIDE pixels on the long side), so a page stays self-contained and small; an
image that cannot be read is shown as "image unavailable". Each subcategory shows at most `cap` items
(the first by task and item id, so the same run gives the same page) and says how many there are.

Which items are shown comes from `mjbench.metrics.pairwise_verdicts`, the verdicts every accuracy counts:
an item whose verdict is not correct (wrong, a tie, or invalid: in pair mode the two orders combined,
agreement else tie, invalid if either is). Items with a gold tie are not scored and not shown. Bias items
have no gold label: only those without a valid score are shown.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import groupby
from typing import TYPE_CHECKING, Any

from mjbench.errors import ItemError
from mjbench.metrics import BIAS, pairwise_verdicts
from mjbench.report.tables import missing

if TYPE_CHECKING:
    import pandas as pd

    from mjbench.images import ImageRef

ImageLookup = Callable[[str, str], "tuple[ImageRef, ...] | None"]
DEFAULT_GALLERY_MAX = 12
THUMB_SIDE = 96
JPEG_QUALITY = 65
RAW_OUTPUT_CHARS = 4000


@dataclass
class Thumb:
    """A thumbnail: `css` names the page style rule that holds its data URI (one rule per distinct image, so
    an item shown for several judges is embedded once per page); None where the image is unavailable."""

    caption: str
    css: str | None
    uri: str = ""
    width: int = 0
    height: int = 0
    why: str = ""


@dataclass
class Verdict:
    """One record's answer: the order it was asked in (`-` when single), prediction, scores, status."""

    order: str
    pred: str
    score_0: str
    score_1: str
    status: str
    raw_output: str
    error: str


@dataclass
class Entry:
    task: str
    item_id: str
    prompt: str
    label: str
    verdict: str  # the combined verdict, or `invalid`
    thumbs: list[Thumb]
    answers: list[Verdict]
    texts: list[str] = field(default_factory=list)  # a caption pair's text0 and text1 (score 0 is text0's)


@dataclass
class SubGallery:
    subcategory: str
    total: int
    entries: list[Entry]


@dataclass
class JudgeGallery:
    judge: str
    scale: str
    total: int
    subs: list[SubGallery] = field(default_factory=list)


class Thumbnails:
    """Thumbnail data URIs per (task, item_id), made once however many judges show the item."""

    def __init__(self, images: ImageLookup | None):
        self.images = images
        self.cache: dict[tuple[str, str], list[Thumb]] = {}
        self.names: dict[str, str] = {}  # data URI -> css class, numbered in order of first use

    def get(self, task: str, item_id: str, captions: tuple[str, ...]) -> list[Thumb]:
        key = (task, item_id)
        if key not in self.cache:
            self.cache[key] = self._make(task, item_id, captions)
        return self.cache[key]

    def _make(self, task: str, item_id: str, captions: tuple[str, ...]) -> list[Thumb]:
        refs = self.images(task, item_id) if self.images is not None else None
        if refs is None:
            why = "no images given to the report" if self.images is None else "item not found"
            return [Thumb(c, None, why=why) for c in captions]
        out = []
        for ref, caption in zip(refs, captions, strict=False):
            try:
                uri, (w, h) = thumbnail(ref)
            except ItemError as exc:
                out.append(Thumb(caption, None, why=str(exc)))
                continue
            css = self.names.setdefault(uri, f"t{len(self.names)}")
            out.append(Thumb(caption, css, uri, w, h))
        return out


def thumbnail(ref: ImageRef) -> tuple[str, tuple[int, int]]:
    """A small JPEG data URI of the image and its size; ItemError where the image cannot be read."""
    im = ref.load(max_side=THUMB_SIDE)
    buf = io.BytesIO()
    im.save(buf, format="JPEG", quality=JPEG_QUALITY, optimize=True)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii"), im.size


def page_styles(gallery: list[JudgeGallery]) -> list[tuple[str, str]]:
    """(css class, data URI) of every distinct thumbnail a page's gallery shows, in order of first use."""
    seen: dict[str, str] = {}
    for g in gallery:
        for sub in g.subs:
            for e in sub.entries:
                for t in e.thumbs:
                    if t.css is not None:
                        seen.setdefault(t.css, t.uri)
    return list(seen.items())


def _text(v: Any) -> str:
    return "" if missing(v) else str(v)


def _score(v: Any) -> str:
    return "" if missing(v) else f"{float(v):.4g}"


def _status(r: dict[str, Any]) -> str:
    return _text(r.get("status")) or "ok"


def _answer(r: dict[str, Any]) -> Verdict:
    raw = _text(r.get("raw_output"))
    if len(raw) > RAW_OUTPUT_CHARS:
        raw = raw[:RAW_OUTPUT_CHARS] + f"... ({len(raw) - RAW_OUTPUT_CHARS} more characters in the records)"
    return Verdict(_text(r.get("order")) or "-", _text(r.get("pred")), _score(r.get("score_0")),
                   _score(r.get("score_1")), _status(r), raw, _text(r.get("error")))


def _failing(records: pd.DataFrame, tie_threshold: float) -> list[tuple[str, ...]]:
    """(judge, scale, subcategory, task, item_id, verdict, label) of every item to show, sorted: pairwise
    items whose verdict (`pairwise_verdicts`, as the tables count it) is not correct, and bias records
    without a valid score."""
    import pandas as pd

    out = []
    verdicts, _ = pairwise_verdicts(records, tie_threshold)
    bad = verdicts[~(verdicts["valid"] & (verdicts["pred"] == verdicts["label"]))]  # gold ties included
    for v in bad.to_dict("records"):
        out.append((v["judge"], v["scale"], v["subcategory"], v["task"], v["item_id"],
                    v["pred"] if v["valid"] else "invalid", _text(v["label"])))
    bias = records[(records["perspective"].astype(str) == BIAS) & records["label"].isna()]
    if len(bias):
        status = bias["status"].where(bias["status"].notna(), "ok").astype(str)
        invalid = bias[(status != "ok") | pd.to_numeric(bias["score_0"], errors="coerce").isna()]
        for r in invalid.to_dict("records"):
            out.append((str(r["judge"]), str(r["scale"]), str(r["subcategory"]), str(r["task"]), str(r["item_id"]),
                        "invalid", ""))
    return sorted(set(out))


def build_gallery(records: pd.DataFrame | None, perspective: str, thumbs: Thumbnails, cap: int,
                  tie_threshold: float = 0.0) -> list[JudgeGallery]:
    """The gallery of one perspective: per judge x scale, per subcategory, the items to show (the first
    `cap` of each by task and item id) and their total. `tie_threshold` is the one the metrics used."""
    if records is None or records.empty:
        return []
    r = records[records["perspective"].astype(str) == perspective]
    if r.empty:
        return []
    answers: dict[tuple[str, str, str, str], list[dict[str, Any]]] = {}
    for row in r.to_dict("records"):
        row = {k: (None if missing(v) else v) for k, v in row.items()}
        answers.setdefault((str(row["judge"]), str(row["scale"]), str(row["task"]), str(row["item_id"])),
                           []).append(row)
    out: list[JudgeGallery] = []
    for (judge, scale), jitems in groupby(_failing(r, tie_threshold), key=lambda f: f[:2]):
        jg = JudgeGallery(judge, scale, 0)
        for sub, sitems in groupby(jitems, key=lambda f: f[2]):
            items = list(sitems)
            shown = []
            for _, _, _, task, item_id, verdict, label in items[:cap]:
                rows = sorted(answers[(judge, scale, task, item_id)], key=lambda x: _text(x.get("order")))
                texts = [_text(rows[0].get("text0")), _text(rows[0].get("text1"))]
                single = (perspective == BIAS and rows[0].get("label") is None) or any(texts)
                captions = ("image",) if single else ("image0", "image1")
                prompt = next((_text(x.get("prompt")) for x in rows if _text(x.get("prompt"))), "")
                shown.append(Entry(task, item_id, prompt, label, verdict, thumbs.get(task, item_id, captions),
                                   [_answer(x) for x in rows], texts if any(texts) else []))
            jg.subs.append(SubGallery(sub, len(items), shown))
            jg.total += len(items)
        out.append(jg)
    return out
