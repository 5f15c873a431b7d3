"""Typed registries for every plugin kind, fed by entry points.

Modelled on lm-evaluation-harness' ``api/registry.py``: a ``Registry[T]`` with
decorator registration, lazy ``"module:attr"`` targets, and a clear error on a
duplicate or an unknown name that lists the known ones.

Built-ins register through the very entry-point groups a third party uses
(``memobench.models``, ``memobench.mitigations``, ``memobench.datasets``,
``memobench.attacks``, ``memobench.metrics``, ``memobench.samplers``; see
``pyproject.toml``), so a new model is one file plus one entry point and every
suite case picks it up.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from importlib.metadata import entry_points
from typing import Any, Generic, TypeVar

from benchmark.errors import DuplicateNameError, UnknownNameError

T = TypeVar("T")


def _load_target(target: str) -> Any:
    module_name, _, attr = target.partition(":")
    obj = importlib.import_module(module_name)
    for part in attr.split(".") if attr else []:
        obj = getattr(obj, part)
    return obj


class Registry(Generic[T]):
    """Name -> object mapping for one plugin kind.

    Args:
        kind: human name of the kind ("model", "mitigation", ...), used in errors.
        group: entry-point group scanned for plugins.
    """

    def __init__(self, kind: str, group: str) -> None:
        self.kind = kind
        self.group = group
        self._targets: dict[str, str | T] = {}
        self._origins: dict[str, str] = {}
        self._loaded: dict[str, T] = {}
        self._scanned = False

    # -- registration -----------------------------------------------------
    def register(self, name: str, target: str | T | None = None, *, origin: str = "code"):
        """Register ``target`` (an object or a lazy ``"module:attr"``) as ``name``.

        Used bare as a decorator when ``target`` is omitted.
        """
        if target is None:

            def decorator(obj: T) -> T:
                self.register(name, obj, origin=origin)
                return obj

            return decorator
        existing = self._targets.get(name)
        if existing is not None and not _same_target(existing, target):
            raise DuplicateNameError(
                f"{self.kind} name {name!r} is registered twice: by {self._origins[name]} "
                f"({_describe(existing)}) and by {origin} ({_describe(target)}). "
                f"Rename one of the plugins or uninstall one of the packages."
            )
        self._targets[name] = target
        self._origins[name] = origin
        self._loaded.pop(name, None)
        return target

    def unregister(self, name: str) -> None:
        self._targets.pop(name, None)
        self._origins.pop(name, None)
        self._loaded.pop(name, None)

    def refresh(self) -> None:
        """Re-read the entry points (after installing a plugin at run time)."""
        for name, origin in list(self._origins.items()):
            if origin.startswith("entry point"):
                self.unregister(name)
        self._scanned = False
        self._scan()

    def _scan(self) -> None:
        if self._scanned:
            return
        self._scanned = True
        for ep in entry_points(group=self.group):
            dist = ep.dist.name if ep.dist is not None else "?"
            self.register(ep.name, ep.value, origin=f"entry point of {dist}")

    # -- lookup -------------------------------------------------------------
    def names(self) -> list[str]:
        self._scan()
        return sorted(self._targets)

    def __contains__(self, name: object) -> bool:
        self._scan()
        return name in self._targets

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def get(self, name: str) -> T:
        self._scan()
        if name in self._loaded:
            return self._loaded[name]
        if name not in self._targets:
            known = ", ".join(self.names()) or "(none)"
            raise UnknownNameError(
                f"unknown {self.kind} {name!r}; known {self.kind}s: {known}. "
                f"A plugin registers one under the entry-point group {self.group!r}; a "
                f"built-in missing here means the installed entry points are older than the "
                f"code: reinstall memobench (pip install -e .)."
            )
        target = self._targets[name]
        if isinstance(target, str):
            try:
                target = _load_target(target)
            except (ImportError, AttributeError) as err:
                raise UnknownNameError(
                    f"{self.kind} {name!r} is registered as {self._targets[name]!r} "
                    f"by {self._origins[name]}, but that cannot be imported: {err}"
                ) from err
        self._loaded[name] = target
        return target


def _same_target(a: object, b: object) -> bool:
    if a is b or a == b:
        return True
    return _describe(a) == _describe(b)


def _describe(target: object) -> str:
    if isinstance(target, str):
        return target
    module = getattr(target, "__module__", "?")
    return f"{module}:{getattr(target, '__qualname__', repr(target))}"


models: Registry[Any] = Registry("model", "memobench.models")
mitigations: Registry[Any] = Registry("mitigation", "memobench.mitigations")
datasets: Registry[Any] = Registry("dataset", "memobench.datasets")
attacks: Registry[Any] = Registry("attack", "memobench.attacks")
metrics: Registry[Any] = Registry("metric", "memobench.metrics")
samplers: Registry[Any] = Registry("sampler", "memobench.samplers")

REGISTRIES: dict[str, Registry[Any]] = {
    "models": models,
    "mitigations": mitigations,
    "datasets": datasets,
    "attacks": attacks,
    "metrics": metrics,
    "samplers": samplers,
}


def refresh_all() -> None:
    for registry in REGISTRIES.values():
        registry.refresh()


def each(registry: Registry[Any], predicate: Callable[[Any], bool] | None = None) -> list[str]:
    """Names in ``registry`` whose loaded object passes ``predicate``."""
    return [n for n in registry.names() if predicate is None or predicate(registry.get(n))]
