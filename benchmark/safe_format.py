"""A pickle-free file for nested payloads: tensors in safetensors, the rest in JSON.

``save(obj, path)`` walks ``obj`` (dicts, lists, tuples, str, int, float, bool,
None, tensors, numpy arrays and scalars, dataclasses); each tensor goes into the
safetensors body under a generated name, and the structure with every other value
goes into the header's ``__metadata__`` as one JSON string. ``load(path)`` reads
it back with ``safetensors.torch.load_file`` and ``json.loads``: neither can run
code, whatever the file holds. Values of any other type are refused at save
time (``UnsafeValueError``), so nothing is silently stored in a lossy form.

Tuples, non-string dict keys and numpy arrays come back as they went in;
dataclasses come back as plain dicts (they are written as ``asdict``).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

MAGIC = "memobench.safe_format"
VERSION = 1


class UnsafeValueError(TypeError):
    """A value the format cannot store without pickle."""


class ForeignFileError(ValueError):
    """A readable safetensors file that this format did not write."""


def _encode(obj: Any, tensors: dict[str, torch.Tensor], seen: dict[int, str], where: str):
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if isinstance(obj, torch.Tensor):
        name = seen.get(id(obj))
        if name is None:
            name = f"t{len(tensors)}"
            t = obj.detach().cpu()
            if t.untyped_storage().nbytes() != t.numel() * t.element_size():
                t = t.clone()  # a view into a larger tensor: store only what it shows
            tensors[name] = t.contiguous()
            seen[id(obj)] = name
        return {"__tensor__": name}
    if isinstance(obj, np.ndarray):
        if obj.dtype == object:
            raise UnsafeValueError(f"{where}: a numpy array of Python objects")
        return {
            "__ndarray__": _encode(
                torch.from_numpy(np.ascontiguousarray(obj)), tensors, seen, where
            )
        }
    if isinstance(obj, np.generic):
        return _encode(obj.item(), tensors, seen, where)
    if isinstance(obj, tuple):
        return {
            "__tuple__": [_encode(v, tensors, seen, f"{where}[{i}]") for i, v in enumerate(obj)]
        }
    if isinstance(obj, list):
        return [_encode(v, tensors, seen, f"{where}[{i}]") for i, v in enumerate(obj)]
    if isinstance(obj, dict):
        if all(isinstance(k, str) and not k.startswith("__") for k in obj):
            return {k: _encode(v, tensors, seen, f"{where}.{k}") for k, v in obj.items()}
        items = []
        for k, v in obj.items():
            if not isinstance(k, (str, int, float, bool, type(None), tuple)):
                raise UnsafeValueError(f"{where}: a dict key of type {type(k).__name__}")
            items.append(
                [_encode(k, tensors, seen, where), _encode(v, tensors, seen, f"{where}[{k!r}]")]
            )
        return {"__items__": items}
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return _encode(dataclasses.asdict(obj), tensors, seen, where)
    raise UnsafeValueError(
        f"{where} is a {type(obj).__module__}.{type(obj).__qualname__}; the cache stores only "
        f"tensors, numpy arrays and JSON values (dicts, lists, tuples, str, numbers, None)"
    )


def _decode(obj: Any, tensors: dict[str, torch.Tensor]):
    if isinstance(obj, list):
        return [_decode(v, tensors) for v in obj]
    if not isinstance(obj, dict):
        return obj
    if "__tensor__" in obj:
        return tensors[obj["__tensor__"]]
    if "__ndarray__" in obj:
        return _decode(obj["__ndarray__"], tensors).numpy()
    if "__tuple__" in obj:
        return tuple(_decode(v, tensors) for v in obj["__tuple__"])
    if "__items__" in obj:
        return {_hashable(_decode(k, tensors)): _decode(v, tensors) for k, v in obj["__items__"]}
    return {k: _decode(v, tensors) for k, v in obj.items()}


def _hashable(key: Any) -> Any:
    return tuple(_hashable(k) for k in key) if isinstance(key, (list, tuple)) else key


def save(obj: Any, path: str | Path) -> None:
    """Write ``obj`` to ``path`` (write to a temporary path and rename for atomicity)."""
    tensors: dict[str, torch.Tensor] = {}
    tree = _encode(obj, tensors, {}, "payload")
    header = json.dumps({"format": MAGIC, "version": VERSION, "tree": tree}, allow_nan=True)
    save_file(tensors, str(path), metadata={MAGIC: header})


def load(path: str | Path) -> Any:
    """Read a file written by ``save``.

    Raises:
        ForeignFileError: a safetensors file this format did not write.
        Exception: from safetensors, for anything that is not safetensors at all (a
            pickle, a truncated or empty file); nothing in the file is executed.
    """
    with safe_open(str(path), framework="pt") as f:
        header = (f.metadata() or {}).get(MAGIC)
    if header is None:
        raise ForeignFileError(f"{path} is a safetensors file without memobench's {MAGIC!r} header")
    doc = json.loads(header)
    if doc.get("format") != MAGIC or doc.get("version") != VERSION:
        raise ForeignFileError(f"{path}: unknown {MAGIC} version {doc.get('version')!r}")
    return _decode(doc["tree"], load_file(str(path)))
