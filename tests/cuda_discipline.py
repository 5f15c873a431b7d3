"""CUDA discipline checked on a machine without a GPU.

``on_fake_cuda()`` runs code under ``FakeTensorMode`` with ``device="cuda"`` meaning a
fake CUDA device: shapes, dtypes and devices are computed, no value is. It raises
where a real GPU would:

- an op mixing a CUDA tensor with a CPU one (FakeTensorMode's own check);
- a random op drawing with a generator on another device than its output (``Expected
  a 'cuda' device type for generator`` on a GPU): ``torch.Generator`` is replaced by a
  stand-in that remembers its device, and every ``generator=`` is checked.

Random draws with a CPU generator into CPU tensors run for real (outside the fake
mode), so host-side bookkeeping (a seeded index, a random level) works as on a GPU
machine. Every host sync of a fake CUDA tensor (``item``, ``float``, ``bool``,
``tolist``, ``cpu``, ``numpy``) is counted in ``Discipline.syncs`` by its place and
answered with a stand-in value (a fake tensor has none), so code runs on past it; a
loop that runs until a value read on the host says stop ends at its first read.
"""

from __future__ import annotations

import contextlib
import traceback
from collections import Counter
from collections.abc import Iterator

import numpy as np
import torch
from torch._subclasses.fake_tensor import FakeTensor, FakeTensorMode, unset_fake_temporarily
from torch.overrides import TorchFunctionMode

RealGenerator = torch.Generator


class StandInGenerator(RealGenerator):
    """``torch.Generator`` as the code under test sees it: a real CPU generator that
    answers ``.device`` with the device it was asked for (a CUDA generator cannot be
    made without a GPU), so every draw can be checked against its output's device."""

    def __new__(cls, device: str | torch.device = "cpu") -> StandInGenerator:
        self = super().__new__(cls, device="cpu")
        self._claimed = torch.device(device)
        return self

    def __init__(self, device: str | torch.device = "cpu") -> None:
        pass

    @property
    def device(self) -> torch.device:  # type: ignore[override]
        return self._claimed


class DeviceDisciplineError(AssertionError):
    """What would fail on a real GPU."""


SYNCS = {
    torch.Tensor.item: "item",
    torch.Tensor.__float__: "float",
    torch.Tensor.__int__: "int",
    torch.Tensor.__bool__: "bool",
    torch.Tensor.tolist: "tolist",
    torch.Tensor.numpy: "numpy",
    torch.Tensor.__index__: "index",
}


def _scalar_indices(index, mode, place):
    """``index`` with each 0-dim fake integer tensor replaced by a stand-in int: indexing
    by one reads its value on the host (a sync, counted)."""
    parts = index if isinstance(index, tuple) else (index,)
    out, changed = [], False
    for part in parts:
        if isinstance(part, FakeTensor) and part.dim() == 0 and not part.is_floating_point():
            if part.device.type == "cuda":
                mode.syncs[f"index at {place()}"] += 1
            out.append(0)
            changed = True
        else:
            out.append(part)
    if not changed:
        return index
    return tuple(out) if isinstance(index, tuple) else out[0]


def _is_fake_cuda(t) -> bool:
    return isinstance(t, FakeTensor) and t.device.type == "cuda"


def _place() -> str:
    """file:line of the first frame outside torch and this module: where the call is."""
    for frame in reversed(traceback.extract_stack()[:-1]):
        name = frame.filename
        if "/torch/" not in name and not name.endswith("cuda_discipline.py"):
            return f"{name.rsplit('/', 1)[-1]}:{frame.lineno}"
    return "?"


def _stand_in(t: torch.Tensor, how: str):
    if how in ("bool",):
        return True
    if how in ("int", "index"):
        return 1
    if how == "float":
        return 0.5
    if how == "item":
        return True if t.dtype == torch.bool else (1 if not t.is_floating_point() else 0.5)
    if how == "tolist":
        return np.full(tuple(t.shape), 0.5 if t.is_floating_point() else 1).tolist()
    return np.full(tuple(t.shape), 0.5 if t.is_floating_point() else 1)


class Discipline(TorchFunctionMode):
    """Checks generators against output devices and counts host syncs (see the module)."""

    def __init__(self) -> None:
        super().__init__()
        self.syncs: Counter[str] = Counter()

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = dict(kwargs or {})
        if func in SYNCS and args and torch.is_tensor(args[0]):
            if not isinstance(args[0], FakeTensor):  # a real (host) tensor: its value
                with unset_fake_temporarily():
                    return func(*args, **kwargs)
            if args[0].device.type == "cuda":  # a CPU tensor's value is on the host already
                self.syncs[f"{SYNCS[func]} at {_place()}"] += 1
            return _stand_in(args[0], SYNCS[func])
        if func in (torch.Tensor.__getitem__, torch.Tensor.__setitem__) and len(args) > 1:
            index = _scalar_indices(args[1], self, _place)
            if index is not args[1]:
                args = (args[0], index, *args[2:])
        if func in (torch.nonzero, torch.Tensor.nonzero, torch.argwhere) and isinstance(
            args[0] if args else None, FakeTensor
        ):  # its size is data: read on the host (a sync); answered with no hit
            x = args[0]
            if x.device.type == "cuda":
                self.syncs[f"nonzero at {_place()}"] += 1
            return torch.zeros((0, x.dim()), dtype=torch.long, device=x.device)
        if func is torch.Tensor.cpu and args and _is_fake_cuda(args[0]):
            self.syncs[f"cpu at {_place()}"] += 1
        gen = kwargs.get("generator")
        if isinstance(gen, StandInGenerator):
            target = kwargs.get("device")
            tensors = [a for a in args if torch.is_tensor(a)]
            if target is not None:
                target = torch.device(target)
            elif tensors:  # bernoulli(x), x.normal_(...), multinomial(x): x's device
                target = tensors[0].device
            else:  # a factory without device=: the default device, the CPU
                target = torch.device("cpu")
            if target.type != gen.device.type:
                raise DeviceDisciplineError(
                    f"{getattr(func, '__name__', func)} at {_place()}: generator on "
                    f"{gen.device.type}, output on {target.type} (on a GPU: Expected a "
                    f"'{target.type}' device type for generator)"
                )
            if target.type == "cpu" and not any(isinstance(t, FakeTensor) for t in tensors):
                with unset_fake_temporarily():  # host-side draw: real values
                    return func(*args, **kwargs)
            kwargs.pop("generator")  # a fake draw: only its shape and device are computed
        return func(*args, **kwargs)


@contextlib.contextmanager
def on_fake_cuda() -> Iterator[Discipline]:
    """Run the block as on a GPU machine without one (see the module)."""
    mode = Discipline()
    fake = FakeTensorMode(allow_non_fake_inputs=True)
    apply, backward, grad = torch.nn.Module._apply, torch.Tensor.backward, torch.autograd.grad
    # the autograd engine asks the CUDA driver for streams: gradients are answered with
    # fake zeros of the right shape and device (their values mean nothing here anyway)
    torch.Tensor.backward = _no_backward  # type: ignore[method-assign]
    torch.autograd.grad = _zero_grad
    torch.Generator = StandInGenerator  # type: ignore[misc]
    # Module.to() swaps a fake parameter for its moved copy, which the fake mode's own
    # weak references forbid: put the moved copies in the module instead
    torch.nn.Module._apply = _apply_by_replacing  # type: ignore[method-assign]
    try:
        with fake, mode:
            yield mode
    finally:
        torch.Generator = RealGenerator  # type: ignore[misc]
        torch.nn.Module._apply = apply  # type: ignore[method-assign]
        torch.Tensor.backward = backward  # type: ignore[method-assign]
        torch.autograd.grad = grad


def _no_backward(self: torch.Tensor, *args, **kwargs) -> None:
    return None


def _zero_grad(outputs, inputs, *args, **kwargs):
    inputs = (inputs,) if torch.is_tensor(inputs) else tuple(inputs)
    return tuple(torch.zeros_like(x) for x in inputs)


def _apply_by_replacing(module: torch.nn.Module, fn, recurse: bool = True) -> torch.nn.Module:
    for child in module.children() if recurse else ():
        _apply_by_replacing(child, fn)
    with torch.no_grad():
        for key, param in list(module._parameters.items()):
            if param is not None:
                moved = torch.nn.Parameter(fn(param), requires_grad=param.requires_grad)
                module._parameters[key] = moved
        for key, buf in list(module._buffers.items()):
            if buf is not None:
                module._buffers[key] = fn(buf)
    return module
