"""Data sources: turn a task config into items. See `base.py` for the interface.

Sources are registered lazily so that `import mjbench.sources` pulls in neither pandas, pyarrow nor
datasets; plugins add their own through the `mjbench.sources` entry-point group.
"""

from mjbench.sources.base import SOURCES, LoadResult, Source, load_task, make_source

_LAZY = {
    "synthetic": "mjbench.sources.synthetic:SyntheticSource",
    "table": "mjbench.sources.table:TableSource",
    "parquet": "mjbench.sources.parquet:ParquetSource",
    "hub": "mjbench.sources.hub:HubSource",
    "caption_contest": "mjbench.sources.caption_contest:CaptionContestSource",
}
for _name, _target in _LAZY.items():
    SOURCES.add_lazy(_name, _target)

__all__ = ["SOURCES", "LoadResult", "Source", "load_task", "make_source"]
