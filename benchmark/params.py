"""Typed parameters of a plugin: a frozen dataclass of names, types and defaults.

A mitigation or a sampler declares its parameters as a frozen dataclass
(``Params``) whose ``__post_init__`` checks their ranges; ``build_params`` builds
it from what a config or a user gave, refusing unknown names and values of the
wrong type with ``ConfigError``: a mitigation when the case is built, a sampler
before the case's model trains (``ModelFamily.check_sampler``).
"""

from __future__ import annotations

import dataclasses
import numbers
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from benchmark.errors import ConfigError


@dataclass(frozen=True)
class NoParams:
    """The parameters of a plugin that takes none."""


def param_defaults(params_cls: type) -> dict[str, Any]:
    """The parameters of ``params_cls`` and their default values."""
    return {f.name: f.default for f in dataclasses.fields(params_cls)}


def build_params(params_cls: type, given: Mapping[str, Any], what: str) -> Any:
    """``params_cls(**given)``, refusing unknown names and values of the wrong type with
    ``ConfigError`` (any real number passes for a float, any integer, numpy's included,
    for an int; ``X | None`` takes ``None``)."""
    if not (dataclasses.is_dataclass(params_cls) and params_cls.__dataclass_params__.frozen):
        raise TypeError(f"{what}: Params must be a frozen dataclass, got {params_cls!r}")
    names = [f.name for f in dataclasses.fields(params_cls)]
    unknown = sorted(set(given) - set(names))
    if unknown:
        takes = f"takes {names}" if names else "takes no parameters"
        raise ConfigError(f"{what} has no parameter(s) {unknown}; it {takes}")
    hints = typing.get_type_hints(params_cls)
    for name, value in given.items():
        hint = hints.get(name, Any)
        if not _is_a(value, hint):
            raise ConfigError(
                f"{what}: parameter {name!r} must be {_type_name(hint)}, got {value!r} "
                f"({type(value).__name__})"
            )
    return params_cls(**given)


def _is_a(value: Any, hint: Any) -> bool:
    if hint is Any:
        return True
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_is_a(value, h) for h in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if isinstance(value, bool):
        return hint is bool
    if hint is float:
        return isinstance(value, numbers.Real)
    if hint is int:
        return isinstance(value, numbers.Integral)
    if origin is not None:
        return isinstance(value, origin if origin is not tuple else tuple | list)
    return isinstance(value, hint)


def _type_name(hint: Any) -> str:
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return " or ".join(_type_name(h) for h in typing.get_args(hint))
    if hint is type(None):
        return "None"
    return {float: "a number", int: "a whole number", bool: "true or false", str: "a string"}.get(
        hint, getattr(hint, "__name__", str(hint))
    )
