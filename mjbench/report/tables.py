"""Table and section shapes shared by every writer, and the cell formatting (percentages, escaping)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from mjbench import PERSPECTIVES


@dataclass
class Table:
    """A titled table of text cells; `note` is printed above it, `legend` below."""

    title: str
    headers: list[str]
    rows: list[list[str]]
    note: str = ""
    legend: str = ""


@dataclass
class Section:
    """One perspective's report: rendered as reports/<slug>.md and as a section of index.html."""

    perspective: str
    slug: str
    tables: list[Table] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def perspective_rank(p: str) -> tuple[int, str]:
    """MJ-Bench order first, then other names alphabetically."""
    return (PERSPECTIVES.index(p) if p in PERSPECTIVES else len(PERSPECTIVES), p)


def missing(v: Any) -> bool:
    """None, NaN or pandas' NA: a value that must print as `n/a` (or nothing), never as a number."""
    import pandas as pd

    if isinstance(v, str):
        return False
    try:
        return bool(pd.isna(v))
    except (TypeError, ValueError):  # a list or an array: not a missing scalar
        return False


def pct(v: Any) -> str:
    return "n/a" if missing(v) else f"{float(v) * 100:.1f}"


def ci(lo: Any, hi: Any) -> str:
    return "" if missing(lo) or missing(hi) else f"{float(lo) * 100:.1f}-{float(hi) * 100:.1f}"


def shorten(text: str, limit: int = 80) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3].rstrip() + "..."


def md_cell(text: str) -> str:
    text = " ".join(str(text).splitlines())
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")


def md_table(t: Table) -> str:
    lines = ["| " + " | ".join(md_cell(h) for h in t.headers) + " |",
             "|" + "|".join("---" for _ in t.headers) + "|"]
    lines += ["| " + " | ".join(md_cell(c) for c in row) + " |" for row in t.rows]
    return "\n".join(lines) + "\n"


def md_block(t: Table, level: str = "##") -> str:
    """A table with its title, note and legend as Markdown."""
    text = f"{level} {md_cell(t.title)}\n\n"
    if t.note:
        text += f"{md_cell(t.note)}\n\n"
    text += md_table(t)
    if t.legend:
        text += f"\n{md_cell(t.legend)}\n"
    return text


def slug(name: str, taken: set[str]) -> str:
    """A safe file name for a perspective (names come from data: no paths, no odd characters)."""
    base = re.sub(r"[^A-Za-z0-9_-]+", "_", name).strip("_") or "perspective"
    out, i = base, 2
    while out in taken:
        out, i = f"{base}-{i}", i + 1
    taken.add(out)
    return out
