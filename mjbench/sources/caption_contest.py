"""`caption_contest` source: The New Yorker cartoon caption contest, from its per-caption vote summaries.

Data
----
nextml/caption-contest-data-api (CC-BY-4.0): per contest N, the cartoon and a summary of the crowd's votes,
`<N>_summary_KLUCB.csv` with columns target_id, rank, funny, somewhat_funny, unfunny, count, score, precision,
contest, caption; `score` is the caption's mean rating on 1-3 (unfunny = 1, somewhat funny = 2, funny = 3),
`precision` its standard error, `count` its number of votes, `rank` 1 for the funniest. Two layouts are read
under `source.root`:

- flat: `<root>/<N>.jpg` beside `<root>/<N>_summary_KLUCB.csv`;
- the repository's: `<root>/contests/info/<N>/<N>.jpg` and `<root>/contests/summaries/<N>_summary_KLUCB.csv`
  (or `root` pointing at `contests/` itself: `info/<N>/<N>.jpg`, `summaries/<N>_summary_KLUCB.csv`).

`root` is relative to the task YAML's folder; the environment variable `MJBENCH_CAPTION_CONTEST_DIR`
overrides it. Nothing is ever downloaded: get the data with
`git clone https://github.com/nextml/caption-contest-data-api` and point `root` (or the variable) at it.

Options: `root`, `contests` (default: every contest found, in numeric order), `shape` (`pairs` for
`kind: caption_pair`, `group` for `kind: group`; default from the task's kind), `seed` (0), `n_pairs` (100
per contest), `min_votes` (50), `strata` ([0.01, 0.05, 0.2, 0.5, 1.0]), `within_share` (0.2), `tie_z` (1.0),
`k` (5), `prompt` (context shown to the judge; `{contest}` is replaced by the contest number).
Every item's subcategory is `contest-<N>`; the task's `subcategory:` is not used.

Construction (exact, so that anyone building from the same CSV files gets the same items)
----------------------------------------------------------------------------------------
1. Eligible captions of contest N: the CSV rows with `count >= min_votes`, sorted by (rank, target_id); a
   caption whose text (case-folded, blanks collapsed) repeats an earlier one is left out. A row whose
   target_id, rank, count, score or precision is not a number (or whose caption is empty, score outside 1-3,
   precision negative) is a problem naming the file, the row (counted from 1, header excluded) and the value,
   counted in `LoadResult.dropped`; captions under `min_votes` are simply not eligible (not counted).
2. Strata by rank: `strata` is a list of increasing fractions ending in 1.0, the upper edges of each stratum
   as a share of the L eligible captions (stratum i holds positions round(L * f_(i-1)) .. round(L * f_i) - 1
   with f_0 = 0; an empty stratum is dropped), or an integer S for S equal strata (f_i = i / S). The default
   [0.01, 0.05, 0.2, 0.5, 1.0] is: the top 1 %, 1-5 %, 5-20 %, 20-50 % and the bottom half.
3. Pairs: `rng = random.Random(f"{seed}:{N}:pairs")` (Python's `random`). n_within = round(n_pairs *
   within_share) pairs are drawn within a stratum and the rest across strata; the list of draw kinds
   (["across"] * n_across + ["within"] * n_within) is shuffled with `rng`, then for each kind: across,
   `a, b = rng.sample(range(S), 2)`, `i = rng.choice(stratum a)`, `j = rng.choice(stratum b)`; within,
   `s = rng.choice([strata with two or more captions])`, `i, j = rng.sample(stratum s, 2)`. A pair already
   drawn is drawn again (at most 100 tries, after which that draw is skipped, so a tiny contest may give fewer
   pairs). With a single stratum every draw is within it.
4. Order: in each pair let A be the caption with the higher score (equal scores: the lower rank, then the
   lower target_id) and B the other. `flags = [True] * ceil(n / 2) + [False] * floor(n / 2)`, shuffled with
   the same `rng`; pair k puts A in text0 where flags[k], else B. So A comes first in half the pairs.
5. Gold, from the means s0, s1 and their standard errors p0, p1 of text0 and text1:
   `z = (s0 - s1) / sqrt(p0**2 + p1**2)`, `label_prob = Phi(z) = (1 + erf(z / sqrt(2))) / 2` (the probability
   that text0 is the funnier under a normal model of the two means); `label = "tie"` when `|z| <= tie_z`
   (the means differ by at most tie_z standard errors of their difference; with tie_z = 1 exactly when
   Phi(-1) = 0.159 <= label_prob <= 0.841), else `"0"` if s0 > s1 and `"1"` if s0 < s1. Where both precisions
   are 0, z is +inf, -inf or 0 by the sign of s0 - s1.
6. `item_id = f"contest-{N}-{lo}-{hi}"` with lo < hi the two target_ids (independent of the order and seed);
   `meta` keeps the contest, target_ids, ranks, scores, precisions, counts, vote counts, the strata, the draw
   kind and z.

Group (`kind: group`, `shape: group`): one item per contest, `item_id = contest-<N>`: the first k and the last k
eligible captions (by rank; all of them where there are fewer than 2k), as `candidate_texts` in an order
shuffled with `random.Random(f"{seed}:{N}:group")`, `candidate_ids` = their target_ids, `gold_scores` = their
mean scores, `image` = the cartoon; meta keeps their ranks, counts, precisions and which end (top / bottom)
each came from.
"""

from __future__ import annotations

import math
import os
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator

from mjbench.config import TaskConfig
from mjbench.errors import ConfigError, DataError
from mjbench.images import ImageRef
from mjbench.items import CaptionPairItem, GroupItem, Item
from mjbench.sources.base import LoadResult, Source, SourceOptions

ENV = "MJBENCH_CAPTION_CONTEST_DIR"
SUMMARY = "_summary_KLUCB.csv"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
HOW_TO_GET = ("get it with `git clone https://github.com/nextml/caption-contest-data-api` (CC-BY-4.0) and set "
              f"source.root or {ENV} to that folder")
#: summary columns read as numbers, and the caption column
NUMBER_COLUMNS = ("target_id", "rank", "count", "score", "precision")
VOTE_COLUMNS = ("funny", "somewhat_funny", "unfunny")
DEFAULT_PROMPT = "A cartoon from The New Yorker cartoon caption contest (contest {contest})."


class CaptionContestOptions(SourceOptions):
    #: the data folder (relative to the task YAML's folder); $MJBENCH_CAPTION_CONTEST_DIR overrides it
    root: str | None = None
    #: contest numbers; default: every contest found
    contests: list[int | str] | None = None
    #: pairs (kind caption_pair) or group (kind group); default: from the task's kind
    shape: Literal["pairs", "group"] | None = None
    seed: int = 0
    n_pairs: int = Field(default=100, ge=1)
    min_votes: int = Field(default=50, ge=0)
    strata: int | list[float] = Field(default_factory=lambda: [0.01, 0.05, 0.2, 0.5, 1.0])
    within_share: float = Field(default=0.2, ge=0.0, le=1.0)
    tie_z: float = Field(default=1.0, ge=0.0)
    k: int = Field(default=5, ge=1)
    prompt: str = DEFAULT_PROMPT

    @field_validator("strata")
    @classmethod
    def _strata(cls, v: int | list[float]) -> int | list[float]:
        if isinstance(v, int):
            if v < 1:
                raise ValueError(f"an integer number of equal strata must be at least 1, got {v}")
            return v
        if not v or any(not 0 < f <= 1 for f in v) or any(b <= a for a, b in zip(v, v[1:], strict=False)) \
                or v[-1] != 1:
            raise ValueError(f"expected increasing fractions in (0, 1] ending in 1.0 (or an integer), got {v}")
        return v

    @field_validator("contests")
    @classmethod
    def _contests(cls, v: list[int | str] | None) -> list[int | str] | None:
        if v is not None and not v:
            raise ValueError("an empty list; leave it out for every contest found")
        return v


@dataclass
class Caption:
    target_id: int
    rank: float
    count: float
    score: float
    precision: float
    text: str
    votes: dict[str, float] = field(default_factory=dict)
    row: int = 0  # counted from 1, header excluded


@dataclass
class Contest:
    name: str  # the contest number as text
    summary: Path
    image: Path | None


class CaptionContestSource(Source):
    Options: ClassVar[type[SourceOptions]] = CaptionContestOptions

    @property
    def opts(self) -> CaptionContestOptions:
        return self.options  # type: ignore[return-value]

    def __init__(self, task: TaskConfig):
        super().__init__(task)
        want = {"caption_pair": "pairs", "group": "group"}.get(task.kind)
        if want is None:
            raise ConfigError(f"{self.where}: kind: caption_contest items are caption pairs (kind: caption_pair) "
                              f"or groups (kind: group), not {task.kind}")
        if self.opts.shape is not None and self.opts.shape != want:
            raise ConfigError(f"{self.where}: source.shape: {self.opts.shape} does not match kind: {task.kind} "
                              f"(use shape: {want})")
        if task.kind == "group" and task.candidates not in (None, "texts"):
            raise ConfigError(f"{self.where}: candidates: caption contest groups are texts, not {task.candidates}")
        self.shape = want

    # -- where the data is -------------------------------------------------------------------------
    def root(self) -> Path:
        env = os.environ.get(ENV, "").strip()
        if env:
            root, why = Path(env).expanduser(), f"from {ENV}"
        elif self.opts.root:
            root, why = self.resolve(self.opts.root), "source.root"
        else:
            raise ConfigError(f"{self.where}: source.root: not set and {ENV} is empty; {HOW_TO_GET}")
        if not root.is_dir():
            raise DataError(f"{self.where}: {why}: caption-contest data folder not found: {root}; {HOW_TO_GET}")
        return root

    def contests(self) -> list[Contest]:
        root = self.root()
        found: dict[str, Contest] = {}
        for summaries, info in ((root, None), (root / "contests" / "summaries", root / "contests" / "info"),
                                (root / "summaries", root / "info")):
            if not summaries.is_dir():
                continue
            for csv_path in sorted(summaries.glob(f"*{SUMMARY}")):
                name = csv_path.name[: -len(SUMMARY)]
                if name in found:
                    continue
                folder = summaries if info is None else info / name
                image = next((folder / f"{name}{s}" for s in IMAGE_SUFFIXES if (folder / f"{name}{s}").is_file()),
                             None)
                found[name] = Contest(name, csv_path, image)
        if not found:
            raise DataError(
                f"{self.where}: no caption-contest data in {root} (looked for <N>{SUMMARY} beside <N>.jpg, and "
                f"contests/summaries/<N>{SUMMARY} with contests/info/<N>/<N>.jpg); {HOW_TO_GET}")
        if self.opts.contests is None:
            return [found[n] for n in sorted(found, key=_contest_key)]
        out = []
        for raw in self.opts.contests:
            name = str(raw).strip()
            if name not in found:
                listed = ", ".join(sorted(found, key=_contest_key))
                raise DataError(f"{self.where}: source.contests: contest {name} not found in {root}; "
                                f"contests there: {listed}")
            out.append(found[name])
        return out

    # -- items ---------------------------------------------------------------------------------------
    def load(self) -> LoadResult:
        items: list[Item] = []
        problems: list[str] = []
        dropped: dict[str, int] = {}
        explicit = self.opts.contests is not None

        def problem(line: str, reason: str) -> None:
            problems.append(f"{self.where}: {line}")
            dropped[reason] = dropped.get(reason, 0) + 1

        for contest in self.contests():
            if contest.image is None:
                line = f"contest {contest.name}: no cartoon image beside {contest.summary} ({contest.name}.jpg)"
                if explicit:
                    raise DataError(f"{self.where}: {line}")
                problem(line + "; contest left out", "contest without its cartoon image")
                continue
            try:
                captions = read_summary(contest.summary, problem)
            except DataError as exc:
                if explicit:
                    raise
                problem(f"contest {contest.name}: {exc}; contest left out", "contest summary unreadable")
                continue
            eligible = eligible_captions(captions, self.opts.min_votes)
            if len(eligible) < 2:
                line = (f"contest {contest.name}: {len(eligible)} caption(s) with at least {self.opts.min_votes} "
                        "votes; no item")
                problem(line, "contest with fewer than two eligible captions")
                continue
            image = ImageRef(path=contest.image, origin=str(contest.image))
            prompt = self.opts.prompt.replace("{contest}", contest.name)
            if self.shape == "pairs":
                items.extend(self._pairs(contest, eligible, image, prompt))
            else:
                items.append(self._group(contest, eligible, image, prompt))
        return LoadResult(items=items, problems=problems, dropped=dropped)

    def count(self) -> int | None:
        return len(self.load().items)

    def _common(self, contest: Contest, prompt: str) -> dict[str, Any]:
        return {"task": self.task.name, "perspective": self.task.perspective,
                "subcategory": f"contest-{contest.name}", "prompt": prompt}

    def _pairs(self, contest: Contest, eligible: list[Caption], image: ImageRef, prompt: str) -> list[CaptionPairItem]:
        o = self.opts
        strata = split_strata(len(eligible), o.strata)
        drawn = draw_pairs(strata, o.n_pairs, o.within_share, random.Random(f"{o.seed}:{contest.name}:pairs"))
        stratum_of = {m: s for s, members in enumerate(strata) for m in members}
        items = []
        for (i, j, kind), first in drawn:
            better, worse = (i, j) if _better(eligible[i], eligible[j]) else (j, i)
            p0, p1 = (better, worse) if first else (worse, better)
            c0, c1 = eligible[p0], eligible[p1]
            z, prob, label = pair_gold(c0.score, c0.precision, c1.score, c1.precision, o.tie_z)
            lo, hi = sorted((c0.target_id, c1.target_id))
            meta = {
                "contest": contest.name, "target_ids": [c0.target_id, c1.target_id], "ranks": [c0.rank, c1.rank],
                "scores": [c0.score, c1.score], "precisions": [c0.precision, c1.precision],
                "counts": [c0.count, c1.count], "votes": [c0.votes, c1.votes],
                "strata": [stratum_of[p0], stratum_of[p1]], "draw": kind, "z": z if math.isfinite(z) else None,
                "source": str(contest.summary),
            }
            items.append(CaptionPairItem(
                item_id=f"contest-{contest.name}-{lo}-{hi}", **self._common(contest, prompt), image=image,
                text0=c0.text, text1=c1.text, label=label, label_prob=prob, meta=meta))
        return items

    def _group(self, contest: Contest, eligible: list[Caption], image: ImageRef, prompt: str) -> GroupItem:
        k = self.opts.k
        chosen = [(c, "top") for c in eligible[:k]] + [(c, "bottom") for c in eligible[k:][-k:]]
        random.Random(f"{self.opts.seed}:{contest.name}:group").shuffle(chosen)
        meta = {"contest": contest.name, "ranks": [c.rank for c, _ in chosen],
                "counts": [c.count for c, _ in chosen], "precisions": [c.precision for c, _ in chosen],
                "ends": [end for _, end in chosen], "source": str(contest.summary)}
        return GroupItem(
            item_id=f"contest-{contest.name}", **self._common(contest, prompt), image=image,
            candidate_texts=[c.text for c, _ in chosen], candidate_ids=[str(c.target_id) for c, _ in chosen],
            gold_scores=[c.score for c, _ in chosen], meta=meta)


def _contest_key(name: str) -> tuple[int, int | str]:
    return (0, int(name)) if name.isdigit() else (1, name)


def read_summary(path: Path, problem: Any) -> list[Caption]:
    """The captions of one `<N>_summary_KLUCB.csv`; a bad row is passed to `problem(line, reason)` and left
    out. A missing column is a DataError naming the file and the columns there."""
    import csv
    import io

    from mjbench.records import read_text

    reader = csv.DictReader(io.StringIO(read_text(path), newline=""))
    columns = list(reader.fieldnames or [])
    missing = [c for c in (*NUMBER_COLUMNS, "caption") if c not in columns]
    if missing:
        raise DataError(f"{path}: column {missing[0]!r} not found (a caption-contest summary needs "
                        f"{', '.join((*NUMBER_COLUMNS, 'caption'))}); columns are: {', '.join(columns) or 'none'}")
    out = []
    for index, row in enumerate(reader, start=1):
        where = f"{path} row {index}"
        values: dict[str, float] = {}
        bad = None
        for col in NUMBER_COLUMNS:
            try:
                values[col] = float(row[col])
            except (TypeError, ValueError):
                values[col] = math.nan
            if not math.isfinite(values[col]):
                bad = (f"{where}: column {col!r}: {row[col]!r} is not a number", f"summary row: {col} not a number")
                break
        text = re.sub(r"\s+", " ", row.get("caption") or "").strip()
        if bad is None and not text:
            bad = (f"{where}: empty caption", "summary row: empty caption")
        elif bad is None and not 1 <= values["score"] <= 3:
            bad = (f"{where}: column 'score': {row['score']!r} is not a mean rating in 1-3",
                   "summary row: score outside 1-3")
        elif bad is None and values["precision"] < 0:
            bad = (f"{where}: column 'precision': {row['precision']!r} is negative", "summary row: negative precision")
        elif bad is None and not values["target_id"].is_integer():
            bad = (f"{where}: column 'target_id': {row['target_id']!r} is not an integer",
                   "summary row: target_id not an integer")
        if bad is not None:
            problem(*bad)
            continue
        votes = {}
        for col in VOTE_COLUMNS:
            try:
                votes[col] = float(row[col]) if col in row else math.nan
            except (TypeError, ValueError):
                votes[col] = math.nan
        out.append(Caption(target_id=int(values["target_id"]), rank=values["rank"], count=values["count"],
                           score=values["score"], precision=values["precision"], text=text,
                           votes={c: v for c, v in votes.items() if math.isfinite(v)}, row=index))
    return out


def eligible_captions(captions: Sequence[Caption], min_votes: int) -> list[Caption]:
    """Captions with at least `min_votes` votes, by (rank, target_id), repeated texts left out (the first kept)."""
    seen: set[str] = set()
    out = []
    for c in sorted(captions, key=lambda c: (c.rank, c.target_id)):
        key = c.text.casefold()
        if c.count < min_votes or key in seen:
            continue
        seen.add(key)
        out.append(c)
    return out


def split_strata(n: int, strata: int | list[float]) -> list[list[int]]:
    """Positions 0..n-1 (by rank) split into strata (see the module docstring, step 2); empty strata dropped."""
    fractions = [i / strata for i in range(1, strata + 1)] if isinstance(strata, int) else list(strata)
    edges = [0] + [round(n * f) for f in fractions]
    edges[-1] = n
    out = [list(range(lo, hi)) for lo, hi in zip(edges, edges[1:], strict=False) if hi > lo]
    return out


def draw_pairs(strata: list[list[int]], n_pairs: int, within_share: float,
               rng: random.Random) -> list[tuple[tuple[int, int, str], bool]]:
    """Seeded pairs of positions (module docstring, steps 3 and 4): ((i, j, draw kind), better-first flag)."""
    n_within = round(n_pairs * within_share)
    kinds = ["across"] * (n_pairs - n_within) + ["within"] * n_within
    rng.shuffle(kinds)
    roomy = [s for s in strata if len(s) >= 2]
    used: set[frozenset[int]] = set()
    pairs: list[tuple[int, int, str]] = []
    for kind in kinds:
        if kind == "across" and len(strata) < 2:
            kind = "within"
        for _ in range(100):
            if kind == "across":
                a, b = rng.sample(range(len(strata)), 2)
                i, j = rng.choice(strata[a]), rng.choice(strata[b])
            elif roomy:
                i, j = rng.sample(rng.choice(roomy), 2)
            else:
                break
            if frozenset((i, j)) not in used:
                used.add(frozenset((i, j)))
                pairs.append((i, j, kind))
                break
    n = len(pairs)
    flags = [True] * ((n + 1) // 2) + [False] * (n // 2)
    rng.shuffle(flags)
    return list(zip(pairs, flags, strict=True))


def _better(a: Caption, b: Caption) -> bool:
    """Whether `a` is the better of the two: the higher score, then the lower rank, then the lower target_id."""
    return (-a.score, a.rank, a.target_id) < (-b.score, b.rank, b.target_id)


def pair_gold(s0: float, p0: float, s1: float, p1: float, tie_z: float = 1.0) -> tuple[float, float, str]:
    """(z, label_prob, label) for two captions' mean scores and standard errors (module docstring, step 5)."""
    se = math.sqrt(p0 * p0 + p1 * p1)
    diff = s0 - s1
    if se > 0:
        z = diff / se
    else:
        z = math.inf if diff > 0 else -math.inf if diff < 0 else 0.0
    prob = 0.5 * (1.0 + math.erf(z / math.sqrt(2.0))) if math.isfinite(z) else (1.0 if z > 0 else 0.0)
    label = "tie" if abs(z) <= tie_z else ("0" if diff > 0 else "1")
    return z, prob, label
