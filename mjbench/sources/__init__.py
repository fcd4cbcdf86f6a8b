"""Data sources: turn a task config into items. See `base.py` for the interface."""

from mjbench.sources.base import SOURCES, LoadResult, Source, load_task

__all__ = ["SOURCES", "LoadResult", "Source", "load_task"]
