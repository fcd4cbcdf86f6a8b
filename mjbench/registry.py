"""One generic registry for adapters, sources, metrics and reporters.

Entries are registered with a decorator (in-tree code), as a lazy "module:attribute" string (so that
`mjbench --help` never imports torch), or by plugin packages through an entry-point group.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Any, Generic, TypeVar

from mjbench.errors import MjbenchError, UnknownNameError

T = TypeVar("T")


class Registry(Generic[T]):
    def __init__(self, kind: str, entry_point_group: str | None = None):
        self.kind = kind
        self.entry_point_group = entry_point_group
        self._objects: dict[str, T] = {}
        self._lazy: dict[str, str] = {}
        self._plugins_loaded = False

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator: `@ADAPTERS.register("open_clip")`."""

        def deco(obj: T) -> T:
            self._objects[name] = obj
            return obj

        return deco

    def add_lazy(self, name: str, target: str) -> None:
        """Register `"package.module:Attribute"`, imported only when first asked for."""
        self._lazy.setdefault(name, target)

    def _load_plugins(self) -> None:
        if self._plugins_loaded or not self.entry_point_group:
            return
        self._plugins_loaded = True
        for ep in entry_points(group=self.entry_point_group):
            if ep.name not in self._objects:
                self._lazy.setdefault(ep.name, ep.value)

    def names(self) -> list[str]:
        self._load_plugins()
        return sorted(set(self._objects) | set(self._lazy))

    def __contains__(self, name: str) -> bool:
        return name in self.names()

    def get(self, name: str) -> T:
        if name in self._objects:
            return self._objects[name]
        self._load_plugins()
        target = self._lazy.get(name)
        if target is None:
            raise UnknownNameError(self.kind, name, self.names())
        module_name, _, attr = target.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise MjbenchError(
                f"{self.kind} {name!r} needs a package that is not installed ({exc}); "
                "install the extra it names in the README (e.g. pip install 'mjbench[torch]')"
            ) from exc
        obj: Any = module
        for part in attr.split(".") if attr else []:
            obj = getattr(obj, part)
        # importing the module may have registered it under its name through the decorator
        self._objects[name] = self._objects.get(name, obj)
        return self._objects[name]
