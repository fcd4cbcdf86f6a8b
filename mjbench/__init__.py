"""mjbench: benchmark multimodal judges on pairwise text-to-image preference items.

Kept import-light on purpose: `mjbench --help` must start fast, so heavy libraries
(pandas, torch, transformers) are imported inside the functions that need them.
"""

__version__ = "0.1.0"

PERSPECTIVES = ("alignment", "safety", "quality", "bias", "composition", "visualization", "humor", "captioning")
