"""Juries: several judges combined into one.

Two uses share the combination rules below:

1. `mjbench label --jury mean|vote|borda` combines the labelling judges' scores for the images of one
   candidate set into one score per image (`jury_scores`, `agreement`; see `mjbench.label`).
2. A **jury judge** (`adapter: jury` in a judge YAML, `options: {members: [...], method: mean|vote|borda}`) is
   benchmarked with `mjbench run` like any judge: it is never asked a request; after its members ran, the
   runner derives its records from theirs (`add_jury_records`, `jury_records`), so its accuracy sits on the
   leaderboard beside its members'. Members that were not asked for are run too (`expand_members`) and keep
   their own rows.

Scores are first put on one footing, then combined (higher = better):

- `mean`: the mean of the members' z-scores. A member's z-score standardises its score by the mean and the
  population standard deviation of its valid scores (labelling: over the whole run; a jury judge: over the
  task, so that a task's jury rows do not change when other tasks join the run), so a judge scoring in 0..1
  and one scoring in 0..1000 weigh alike; a member whose scores are all equal gets 0 everywhere (it cannot
  tell images apart, so it does not move the mean).
- `vote`: majority vote per pair: a member votes for the image it prefers (equal scores, or a tie verdict:
  abstains); in a set, an image's jury score is its share of pairwise majority wins (Copeland; a pair with
  tied votes gives each half a win). In [0, 1].
- `borda`: Borda count: each member gives an image one point per image of the set it scores strictly above
  (half a point per tie), scaled to [0, 1] by the number of other images; the jury score is the members'
  mean. For two images this picks the same winner as `vote`.

Labelling: a member with no valid score for an image (its request failed, was refused or did not parse)
leaves that image out of its ballot; the image's jury score is built from the other members. `agreement` of
a pair is the share of the members with valid scores for both images whose own scores prefer the chosen
image strictly.

Jury judge records (one per item, scale and candidate, `order` empty, scale `score`):

- Each member contributes its records at one scale: the one named in `members` (`gpt-4o@1-10`), else the
  first of its scales in the run's records. A pair-mode member's answer on a pair is its verdict over the
  orders it was asked (both orders agree: that image; they disagree: tie; either order invalid: invalid, as
  the metrics count it), and its scores are its win shares (1, 0 or 0.5 per image, the orders' mean).
- Pairs: `mean` gives `score_0`/`score_1` = the mean z-scores and `pred` from them (tie when they differ by
  at most the jury's `tie_threshold`, in z units); `vote` gives `score_0`/`score_1` = the share of answering
  members voting for image 0 / image 1 and `pred` = the image with more votes (a member's tie verdict
  abstains; equal votes: tie; `both_bad` where a strict majority said so); `borda` gives the members' mean
  Borda points (1 for the preferred image, 0.5 each on a tie) and the same `pred` as `vote`.
- Single images (bias rows) have nothing to vote on: every method scores them by the `mean` of z-scores.
- Groups of candidates (`candidate` rows) and `kind: candidates` sets (`mjbench label`): one jury score per
  candidate from all its members' scores over the group or set, by the method (as labelling does); a
  set's pair rows carry the two images' set-level jury scores, so an image has one jury score however many
  pairs it is in.
- A member without a valid answer on a row is left out; the jury answers when a strict majority of its
  members (those with records for the task) did. Otherwise the row has no scores and no verdict, the status
  of its worst failed member, and an `error` naming the members that failed: never a guess. A member with
  no records for a task (e.g. a pair-only judge on bias items, or none of its scales was run) does not sit
  on that task's jury (a warning says so). Members cannot be juries themselves.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from mjbench.errors import ConfigError, UnknownNameError

if TYPE_CHECKING:
    from mjbench.catalog import Catalog
    from mjbench.config import JudgeConfig
    from mjbench.records import Record

log = logging.getLogger("mjbench")

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


# ----------------------------------------------------------------------------------------------------
# jury judges: declared in YAML (`adapter: jury`), benchmarked by deriving records from the members'

JURY_ADAPTER = "jury"
#: the scale label of a jury's records (its combined scores are unbounded, like a scorer's)
JURY_SCALE = "score"
#: worst status wins (as the runner ranks them)
_STATUS_RANK = {"ok": 0, "parse_error": 1, "refused": 2, "error": 3}
_MEMBER = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._+-]*)(?:@(?P<scale>[^@\s]+))?$")
_SET_PAIR = re.compile(r"^(?P<set>.+)/(?P<i>\d+)-(?P<j>\d+)$")


class JuryOptions(BaseModel):
    """`options:` of a jury judge YAML."""

    model_config = ConfigDict(extra="forbid")

    #: member judges by name, optionally `name@scale` to pick one of a multi-scale judge's scales
    members: list[str] = Field(min_length=2)
    method: Literal["mean", "vote", "borda"] = "mean"

    @field_validator("members")
    @classmethod
    def _members(cls, v: list[str]) -> list[str]:
        for m in v:
            if not _MEMBER.match(m):
                raise ValueError(f"{m!r} is not a judge name (optionally name@scale)")
        names = [parse_member(m)[0] for m in v]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"judge {dup[0]!r} is listed twice")
        return v


def parse_member(member: str) -> tuple[str, str | None]:
    """`name` or `name@scale` -> (name, scale or None)."""
    name, _, scale = member.partition("@")
    return name, scale or None


def is_jury(cfg: JudgeConfig) -> bool:
    """Whether a judge config is a jury (its records are derived, never asked for)."""
    return cfg.adapter == JURY_ADAPTER


def jury_options(cfg: JudgeConfig) -> JuryOptions:
    """A jury's validated options; a problem is one ConfigError naming the file and field."""
    from mjbench.config import _format_validation

    try:
        return JuryOptions.model_validate(cfg.options)
    except ValidationError as exc:
        where = cfg.path or f"judge {cfg.name}"
        raise ConfigError(_format_validation(where, exc).replace(": ", ": options.", 1)) from None


def _member_configs(cfg: JudgeConfig, catalog: Catalog) -> list[tuple[JudgeConfig, str | None]]:
    """The jury's members resolved in `catalog`: unknown names, juries as members and scales the member
    does not have are ConfigErrors naming the jury's file."""
    where = cfg.path or f"judge {cfg.name}"
    out = []
    for member in jury_options(cfg).members:
        name, scale = parse_member(member)
        try:
            mcfg = catalog.judge(name)
        except UnknownNameError as exc:
            raise ConfigError(f"{where}: options.members: {exc}") from None
        if is_jury(mcfg):
            raise ConfigError(f"{where}: options.members: {name!r} is a jury; a jury's members must be judges")
        if scale is not None and scale not in mcfg.scales:
            raise ConfigError(f"{where}: options.members: judge {name!r} has no scale {scale!r} "
                              f"(its scales: {', '.join(mcfg.scales)})")
        out.append((mcfg, scale))
    return out


def expand_members(names: Sequence[str], catalog: Catalog) -> list[str]:
    """The judges a run must execute for the requested `names` (names or YAML paths): each jury's members that
    were not asked for are inserted just before it (in the jury's order), so they run first and their rows stay
    in the records beside the jury's. Unknown or nested members fail here, before anything is judged."""
    requested = {catalog.judge(n).name for n in names}
    out: list[str] = []
    for n in names:
        cfg = catalog.judge(n)
        if is_jury(cfg):
            for mcfg, _ in _member_configs(cfg, catalog):
                if mcfg.name not in requested:
                    requested.add(mcfg.name)
                    out.append(mcfg.name)
        out.append(n)
    return out


def jury_problems(cfg: JudgeConfig, catalog: Catalog) -> str | None:
    """Why a jury cannot run here (one line naming the member(s)), or None: an unknown member, a jury as a
    member, or a member whose adapter reports it unavailable."""
    from mjbench.adapters.base import ADAPTERS
    from mjbench.errors import MjbenchError

    try:
        members = _member_configs(cfg, catalog)
    except MjbenchError as exc:
        return str(exc)
    why = []
    for mcfg, _ in members:
        try:
            reason = ADAPTERS.get(mcfg.adapter).check_available(mcfg)
        except MjbenchError as exc:
            reason = str(exc)
        if reason:
            why.append(f"member {mcfg.name}: {reason}")
    return "; ".join(why) or None


def jury_identity(cfg: JudgeConfig, catalog: Catalog) -> dict[str, Any]:
    """What determines a jury's answers: its own fields (members and method among its options) and each
    member's identity (so a retrained member makes a new jury)."""
    from mjbench.adapters.base import create_judge

    identity: dict[str, Any] = dict(cfg.identity())
    identity["members"] = {mcfg.name: {"scale": scale, **create_judge(mcfg).identity()}
                           for mcfg, scale in _member_configs(cfg, catalog)}
    return identity


# -- records -----------------------------------------------------------------------------------------


@dataclass
class _Answer:
    """One member's answer on one jury row: the candidates' values (None where invalid) and, for a pair,
    its verdict; `status`/`error` describe why it is invalid."""

    values: list[float | None]
    verdict: str | None = None
    status: str = "ok"
    error: str | None = None


@dataclass
class _Unit:
    """What one jury decision covers: a pair item, a bias item, a group (its candidate rows) or a candidate
    set (its pair rows), with the members' records on it."""

    kind: str  # pair, bias, group, set
    task: str
    rows: dict[str, list[Record]] = field(default_factory=dict)  # member -> its records in this unit


def _worst(statuses: Sequence[str]) -> str:
    return max(statuses, key=lambda s: _STATUS_RANK.get(s, 3)) if statuses else "ok"


def _failure(rows: Sequence[Record]) -> tuple[str, str | None]:
    """Worst non-ok status of some records (ok records without an answer count as errors) and their errors."""
    bad = [r for r in rows if r.status != "ok"]
    status = _worst([r.status for r in bad]) if bad else "error"
    errors = [r.error for r in bad if r.error]
    return status, "; ".join(dict.fromkeys(errors)) or None


def _why_none(rows: Sequence[Record], ok_but_empty: str) -> str | None:
    """Why a member has no answer where its records say nothing: no record at all, or an ok record without
    the score or verdict needed (a failed record without an error message stays without one)."""
    if not rows:
        return "no record"
    return ok_but_empty if all(r.status == "ok" for r in rows) else None


def _share(pred: str | None) -> tuple[float, float]:
    return {"0": (1.0, 0.0), "1": (0.0, 1.0)}.get(pred or "", (0.5, 0.5))


def _pair_answer(rows: Sequence[Record]) -> _Answer:
    """A member's answer on a pair: single mode (one row, no order) its scores and verdict; pair mode its
    orders' combined verdict (agreement, else tie) and its win shares."""
    from mjbench.metrics import derive_pred

    ordered = [r for r in rows if r.order is not None]
    use = ordered or list(rows[-1:])
    preds = [r.pred if r.pred is not None else derive_pred(r.score_0, r.score_1) for r in use]
    if not use or any(r.status != "ok" for r in use) or any(p is None for p in preds):
        status, error = _failure(use)
        return _Answer([None, None], None, status, error or _why_none(use, "no valid verdict"))
    if not ordered:
        r = use[0]
        if r.score_0 is None or r.score_1 is None:
            s0, s1 = _share(preds[0])
        else:
            s0, s1 = float(r.score_0), float(r.score_1)
        return _Answer([s0, s1], preds[0])
    shares = [_share(p) for p in preds]
    verdict = preds[0] if len(set(preds)) == 1 else "tie"
    return _Answer([sum(s[0] for s in shares) / len(shares), sum(s[1] for s in shares) / len(shares)], verdict)


def _one_answer(rows: Sequence[Record]) -> _Answer:
    """A member's answer on one single-image row (bias item, or one candidate of a group)."""
    r = rows[-1] if rows else None
    if r is None or r.status != "ok" or r.score_0 is None or not math.isfinite(r.score_0):
        status, error = _failure(rows)
        return _Answer([None], None, status, error or _why_none(rows, "no valid score"))
    return _Answer([float(r.score_0)])


def _set_answers(rows: Sequence[Record], n: int) -> list[_Answer]:
    """A member's answer per image of a candidate set (as `mjbench.label` reads it): single mode the image's
    own score, pair mode its share of wins over every comparison it was in (None if any failed)."""
    out = []
    scores: dict[int, list[Record]] = {}
    for r in rows:
        m = _SET_PAIR.match(r.item_id)
        if m:
            for k in (int(m["i"]), int(m["j"])):
                scores.setdefault(k, []).append(r)
    for k in range(n):
        mine = scores.get(k, [])
        if not mine:
            out.append(_Answer([None], None, "error", "no record"))
            continue
        if all(r.order is None for r in mine):  # single mode: the image's own score in any of its pairs
            vals = [r.score_0 if int(_SET_PAIR.match(r.item_id)["i"]) == k else r.score_1  # type: ignore[index]
                    for r in mine]
            vals = [v for v in vals if v is not None and math.isfinite(v)]
            if vals:
                out.append(_Answer([float(vals[0])]))
            else:
                status, error = _failure(mine)
                out.append(_Answer([None], None, status, error))
            continue
        if any(r.status != "ok" or r.pred is None for r in mine):
            status, error = _failure(mine)
            out.append(_Answer([None], None, status, error or _why_none(mine, "no valid verdict")))
            continue
        wins = [_share(r.pred)[0 if int(_SET_PAIR.match(r.item_id)["i"]) == k else 1] for r in mine]  # type: ignore[index]
        out.append(_Answer([sum(wins) / len(wins)]))
    return out


def _kind(r: Record, set_tasks: Collection[str]) -> str:
    if r.task in set_tasks and _SET_PAIR.match(r.item_id):
        return "set"
    if r.candidate is not None:
        return "group"
    if r.perspective == "bias" and r.label is None and r.score_1 is None and r.pred is None:
        return "bias"
    return "pair"


def _unit_key(r: Record, kind: str) -> tuple[str, str, str]:
    if kind == "set":
        return (kind, r.task, _SET_PAIR.match(r.item_id)["set"])  # type: ignore[index]
    return (kind, r.task, r.item_id)


def _member_scale(rows: Sequence[Record], scale: str | None) -> str | None:
    if scale is not None:
        return scale
    return rows[0].scale if rows else None


_TEMPLATE_FIELDS = (
    "task", "perspective", "subcategory", "item_id", "label", "label_strength", "label_prob", "group",
    "demographic", "axes", "prompt", "image0_url", "image1_url", "text0", "text1", "candidate", "gold_score",
    "gold_rank", "gold_best",
)


def _fmt(v: float | None) -> str:
    return "-" if v is None else f"{v:.4g}"


def jury_records(name: str, members: Sequence[str], method: str, records: Sequence[Record], *,
                 tie_threshold: float = 0.0, set_tasks: Collection[str] = (), scale: str = JURY_SCALE,
                 ) -> list[Record]:
    """The records of jury `name` derived from its `members`' records (names, or `name@scale`), one per item,
    candidate and (set) pair, with no order; see the module docstring for the definitions. `set_tasks`: the
    tasks of `kind: candidates` (pairs named `<set>/<i>-<j>`), judged set by set. Pure: reads `records`,
    returns new ones."""
    from mjbench.metrics import derive_pred
    from mjbench.records import Record

    if method not in METHODS:
        raise ValueError(f"jury method must be one of {', '.join(METHODS)}, not {method!r}")
    specs = [parse_member(m) for m in members]
    names = [n for n, _ in specs]
    # each member's rows at its one scale
    by_member: dict[str, list[Record]] = {n: [] for n in names}
    for r in records:
        if r.judge in by_member:
            by_member[r.judge].append(r)
    for (n, sc) in specs:
        chosen = _member_scale(by_member[n], sc)
        by_member[n] = [r for r in by_member[n] if r.scale == chosen]
        if not by_member[n]:
            log.warning("jury %s: member %s has no records%s; the jury is judged by the other members",
                        name, n, f" at scale {sc}" if sc else "")
    # units, in the order the members' records list them
    units: dict[tuple[str, str, str], _Unit] = {}
    for n in names:
        for r in by_member[n]:
            kind = _kind(r, set_tasks)
            unit = units.setdefault(_unit_key(r, kind), _Unit(kind, r.task))
            unit.rows.setdefault(n, []).append(r)
    seated: dict[str, list[str]] = {}  # task -> the members with records on it
    for n in names:
        for task in dict.fromkeys(r.task for r in by_member[n]):
            seated.setdefault(task, []).append(n)
    for task, present in seated.items():
        absent = [n for n in names if n not in present]
        if absent:
            log.warning("jury %s: member(s) %s have no records for task %s; the jury there is judged by %s",
                        name, ", ".join(absent), task, ", ".join(present))

    # every member's answers per unit: a list of candidate rows, each with its answer per member
    answers: dict[tuple[str, str, str], list[tuple[Record, dict[str, _Answer]]]] = {}
    for key, unit in units.items():
        present = seated[unit.task]
        if unit.kind == "pair":
            template = next(iter(unit.rows.values()))[0]
            answers[key] = [(template, {n: _pair_answer(unit.rows.get(n, [])) for n in present})]
        elif unit.kind == "bias":
            template = next(iter(unit.rows.values()))[0]
            answers[key] = [(template, {n: _one_answer(unit.rows.get(n, [])) for n in present})]
        elif unit.kind == "group":
            cands: dict[str, Record] = {}
            for rows in unit.rows.values():
                for r in rows:
                    cands.setdefault(r.candidate or "", r)
            answers[key] = [(tmpl, {n: _one_answer([r for r in unit.rows.get(n, []) if r.candidate == c])
                                    for n in present}) for c, tmpl in cands.items()]
        else:  # set: one answer per image; rows are made per pair below
            size = 1 + max(max(int(_SET_PAIR.match(r.item_id)[g]) for g in ("i", "j"))  # type: ignore[index]
                           for rows in unit.rows.values() for r in rows)
            per_member = {n: _set_answers(unit.rows.get(n, []), size) for n in present}
            templates = [Record.model_construct(task=unit.task, item_id=str(k)) for k in range(size)]
            answers[key] = [(templates[k], {n: per_member[n][k] for n in present}) for k in range(size)]

    # z-score parameters per member and task (mean, and single images under every method)
    values: dict[tuple[str, str], list[float]] = {}
    for key, cand_rows in answers.items():
        for _, per in cand_rows:
            for n, a in per.items():
                values.setdefault((n, units[key].task), []).extend(v for v in a.values if v is not None)
    params = {k: zscore_params(v) for k, v in values.items()}

    def z(n: str, task: str, v: float | None) -> float | None:
        return zscore(v, params.get((n, task), (0.0, 0.0)))

    out: list[Record] = []

    def emit(template: Record, s0: float | None, s1: float | None, pred: str | None, ok: bool,
             per: Mapping[str, _Answer], valid: Sequence[str], describe: Mapping[str, str]) -> None:
        """One jury record: ok with the scores and verdict, or invalid naming the members that failed (scores
        kept only where they are the images' own set-level scores)."""
        base = {f: getattr(template, f, None) for f in _TEMPLATE_FIELDS}
        present = list(per)
        raw = f"jury {method} of {len(present)}: " + "; ".join(
            f"{n}: {describe[n] if n in describe else per[n].status}" for n in present)
        if ok:
            out.append(Record(**base, judge=name, scale=scale, order=None, score_0=s0, score_1=s1, pred=pred,
                              status="ok", raw_output=raw))
            return
        failed = [n for n in present if n not in valid]
        why = ", ".join(f"{n} ({per[n].status}" + (f": {per[n].error[:120]}" if per[n].error else "") + ")"
                        for n in failed)
        out.append(Record(**base, judge=name, scale=scale, order=None, score_0=s0, score_1=s1, pred=None,
                          status=_worst([per[n].status for n in failed]) if failed else "error", raw_output=raw,
                          error=f"jury {name}: {len(valid)} of {len(present)} members answered, a majority "
                          f"({len(present) // 2 + 1}) is needed; no valid answer from {why or 'any member'}"))

    for key, cand_rows in answers.items():
        unit = units[key]
        task = unit.task
        present = list(cand_rows[0][1]) if cand_rows else []
        need = len(present) // 2 + 1
        if unit.kind == "pair":
            template, per = cand_rows[0]
            valid = [n for n in present if per[n].verdict is not None]
            ok = len(valid) >= need
            if method == "mean":
                z0 = [z(n, task, per[n].values[0]) for n in valid]
                z1 = [z(n, task, per[n].values[1]) for n in valid]
                s0 = sum(z0) / len(z0) if ok else None  # type: ignore[arg-type]
                s1 = sum(z1) / len(z1) if ok else None  # type: ignore[arg-type]
                pred = derive_pred(s0, s1, tie_threshold)
                describe = {n: f"z {_fmt(a)} vs {_fmt(b)}" for n, a, b in zip(valid, z0, z1, strict=True)}
            else:
                votes = [per[n].verdict for n in valid]
                k = len(votes) or 1
                n0, n1 = votes.count("0"), votes.count("1")
                half = (len(votes) - n0 - n1) * 0.5  # tie and both_bad verdicts: half a Borda point each
                s0, s1 = (n0 / k, n1 / k) if method == "vote" else ((n0 + half) / k, (n1 + half) / k)
                pred = "0" if n0 > n1 else "1" if n1 > n0 else (
                    "both_bad" if 2 * votes.count("both_bad") > len(votes) else "tie")
                describe = {n: f"votes {per[n].verdict}" for n in valid}
                if not ok:
                    s0 = s1 = None
            emit(template, s0, s1, pred, ok, per, valid, describe)
        elif unit.kind == "bias":
            template, per = cand_rows[0]
            valid = [n for n in present if per[n].values[0] is not None]
            zs = [z(n, task, per[n].values[0]) for n in valid]
            ok = len(valid) >= need
            s = sum(zs) / len(zs) if ok else None  # type: ignore[arg-type]
            emit(template, s, None, None, ok, per, valid,
                 {n: f"z {_fmt(v)}" for n, v in zip(valid, zs, strict=True)})
        else:  # group or set: scores over all candidates, by the method
            ballots = {n: [(z(n, task, per[n].values[0]) if method == "mean" else per[n].values[0])
                           for _, per in cand_rows] for n in present}
            scores = jury_scores(ballots, len(cand_rows), method)
            valid_on = [[n for n in present if per[n].values[0] is not None] for _, per in cand_rows]
            final = [s if len(v) >= need else None for s, v in zip(scores, valid_on, strict=True)]
            if unit.kind == "group":
                for c, (template, per) in enumerate(cand_rows):
                    emit(template, final[c], None, None, final[c] is not None, per, valid_on[c],
                         {n: _fmt(ballots[n][c]) for n in valid_on[c]})
                continue
            # set: each pair row of the members gets its two images' set-level jury scores
            pair_rows: dict[str, Record] = {}
            for rows in unit.rows.values():
                for r in rows:
                    pair_rows.setdefault(r.item_id, r)
            for item_id, template in pair_rows.items():
                m = _SET_PAIR.match(item_id)
                i, j = int(m["i"]), int(m["j"])  # type: ignore[index]
                per_i, per_j = cand_rows[i][1], cand_rows[j][1]
                merged = {n: per_i[n] if per_i[n].values[0] is None else per_j[n] for n in present}
                valid = [n for n in valid_on[i] if n in valid_on[j]]
                si, sj = final[i], final[j]
                ok = si is not None and sj is not None
                emit(template, si, sj, derive_pred(si, sj, tie_threshold) if ok else None, ok, merged, valid,
                     {n: f"{_fmt(ballots[n][i])} vs {_fmt(ballots[n][j])}" for n in valid})
    return out


def add_jury_records(judge_configs: Sequence[JudgeConfig], records: Sequence[Record], *,
                     tie_threshold: float | None = None, set_tasks: Collection[str] = ()) -> list[Record]:
    """The runner's hook, called once every judge ran and before metrics: `records` plus the derived records of
    every jury among `judge_configs` (in their order). `tie_threshold` (the run's --tie-threshold) overrides each
    jury's own; `set_tasks`: the run's `kind: candidates` tasks."""
    out = list(records)
    ran = {c.name for c in judge_configs if not is_jury(c)}
    for cfg in judge_configs:
        if not is_jury(cfg):
            continue
        opts = jury_options(cfg)
        missing = [m for m in opts.members if parse_member(m)[0] not in ran]
        if missing:
            log.warning("jury %s: member(s) %s were not run (see mjbench.jury.expand_members)",
                        cfg.name, ", ".join(missing))
        threshold = cfg.tie_threshold if tie_threshold is None else tie_threshold
        out.extend(jury_records(cfg.name, opts.members, opts.method, records, tie_threshold=threshold,
                                set_tasks=set_tasks, scale=cfg.scales[0] if cfg.scales else JURY_SCALE))
    return out


def catalog_for(cfg: JudgeConfig) -> Catalog:
    """A catalog in which a jury's members are looked up when no run's catalog is at hand (`check_available`,
    `identity`): the packaged and plugin judges, MJBENCH_INCLUDE_PATH, and the folder holding the jury's own
    `judges/` folder."""
    from mjbench.catalog import Catalog, packaged_config_root

    roots: list[Path] = []
    if cfg.path is not None:
        folder = Path(cfg.path).resolve().parent
        root = folder.parent if folder.name == "judges" else None
        if root is not None and root != packaged_config_root().resolve():
            roots.append(root)
    return Catalog(roots)
