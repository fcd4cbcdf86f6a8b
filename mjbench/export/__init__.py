"""Exports of a run directory to other result formats (`mjbench export RUN_DIR --format ...`)."""

from __future__ import annotations

from mjbench.export.eee import EEE_SCHEMA_VERSION, export_eee

__all__ = ["EEE_SCHEMA_VERSION", "export_eee"]
