"""Errors whose message is one line a user can act on: it names the file, field or item that was wrong."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class MjbenchError(Exception):
    """Base class: the CLI prints `error: <message>` for these, never a bare traceback."""


class ConfigError(MjbenchError):
    """A task, suite or judge YAML (or a CLI option) is malformed or inconsistent."""


class DataError(MjbenchError):
    """A data source cannot be read as a whole (missing file, missing column)."""


class ItemError(MjbenchError):
    """One item cannot be used (unreadable image, bad label); the rest of the run goes on."""


class UnknownNameError(MjbenchError):
    """A name that no registry or catalog knows; the message suggests the closest known names."""

    def __init__(self, kind: str, name: str, known: Iterable[str]):
        known = sorted(set(known))
        close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
        if not close:
            close = [k for k in known if name.lower() in k.lower()][:3]
        hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        listing = "" if close or len(known) > 12 else f" (known: {', '.join(known) or 'none'})"
        super().__init__(f"unknown {kind} {name!r}{hint}{listing}")
        self.kind, self.name, self.suggestions = kind, name, close
