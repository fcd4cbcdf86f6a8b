"""mjbench: benchmark multimodal judges on pairwise text-to-image preference items.

Kept import-light on purpose: `mjbench --help` must start fast, so heavy libraries
(pandas, torch, transformers) are imported inside the functions that need them.
"""

__version__ = "0.1.0"

#: the six perspectives of MJ-Bench (the embedded synthetic suite covers each)
MJBENCH_PERSPECTIVES = ("alignment", "safety", "quality", "bias", "composition", "visualization")
#: every perspective an item may have: MJ-Bench's, then `humor` (which caption is funnier for a cartoon) and
#: `captioning` (which description of an image is more accurate)
PERSPECTIVES = (*MJBENCH_PERSPECTIVES, "humor", "captioning")
