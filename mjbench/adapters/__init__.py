"""Judge adapters. Each module registers its classes in `ADAPTERS`; heavy imports stay inside them.

The lazy table below lets `mjbench judges list` name every adapter without importing torch.
"""

from mjbench.adapters.base import ADAPTERS

_LAZY = {
    # filled in as adapters land; name -> "module:Class"
}
for _name, _target in _LAZY.items():
    ADAPTERS.add_lazy(_name, _target)

__all__ = ["ADAPTERS"]
