"""Throughput switches of the audit's network calls, and the batch from free memory.

``Speed`` holds the switches a run may turn on for sampling, t* and the attacks:
bf16 autocast, TF32 matmuls and convolutions, ``channels_last`` and
``torch.compile``. ``Speed.wrap`` puts them around the model's network in one
place (``FastNetwork``), so every family, sampler, attack and mitigation hook
gets them without a line of their own; outputs come back in fp32, so the
solvers integrate in fp32 whatever the network ran in. The likelihood metric
(an ODE with a divergence, where bf16 is too coarse) unwraps it (``exact``).

Every switch changes figures (slightly), so each is recorded in the case's
results and is part of its audit's cache key. Training takes its own switch,
``TrainConfig.precision``, keyed with the model it makes.

``choose_batch`` picks how many images go through the network at once: as many
as fit in ``fraction`` of the free memory (GPU memory on CUDA, available RAM on
the CPU), at least ``floor``, at most ``cap``, or exactly an explicit override.
The bytes an image needs are measured, not guessed (``activation_bytes``: every
module's output of one probe forward, summed, an upper bound of what inference
keeps alive at once), on the CPU as on a GPU, so the rehearsal runs this path.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from benchmark.config import PRECISIONS, check_precision
from benchmark.errors import ConfigError, DeviceError

__all__ = ["PRECISIONS", "Speed", "check_precision", "choose_batch"]

_DTYPES = {"fp32": None, "bf16": torch.bfloat16}
COMPILE_BACKEND = "inductor"  # torch.compile's default; the CPU tests trace with "eager"


def autocast(precision: str, device_type: str) -> contextlib.AbstractContextManager:
    """``torch.autocast`` to ``precision`` on ``device_type`` (a no-op for fp32)."""
    dtype = _DTYPES[precision]
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type, dtype=dtype)


@dataclass(frozen=True)
class Speed:
    """How the audit calls the network.

    Attributes:
        precision: ``fp32``, or ``bf16`` autocast (matmuls and convolutions in bf16,
            reductions and the solver in fp32).
        tf32: TF32 for the fp32 matmuls and convolutions left (CUDA): ``True`` TF32 for
            both, ``False`` IEEE fp32 for both (strict), ``None`` PyTorch's own defaults
            (cuDNN convolutions in TF32, matmuls in IEEE fp32), left alone.
        channels_last: the network's weights and inputs in NHWC layout.
        compile: ``torch.compile`` the network (its first calls compile).
    """

    precision: str = "fp32"
    tf32: bool | None = None
    channels_last: bool = False
    compile: bool = False

    def __post_init__(self) -> None:
        check_precision(self.precision, "--memobench-precision")

    @property
    def plain(self) -> bool:
        return self == Speed()

    def label(self) -> str:
        """``fp32``, ``bf16+channels_last``, ...: the switches that are on."""
        on = [self.precision]
        if self.tf32 is False:
            on.append("ieee")
        on += [name for name in ("tf32", "channels_last", "compile") if getattr(self, name)]
        return "+".join(on)

    @contextlib.contextmanager
    def backends(self) -> Iterator[None]:
        """TF32 on or off (IEEE fp32) for CUDA matmuls and convolutions, restored after;
        nothing changed for ``tf32=None``. Set and restored through PyTorch's older API
        alone (``set_float32_matmul_precision``, ``cudnn.allow_tf32``), so every getter
        of either API answers consistently inside (a mix of the two makes
        ``torch.backends.cudnn.allow_tf32`` raise)."""
        if self.tf32 is None:
            yield
            return
        cudnn = torch.backends.cudnn
        before = (torch.get_float32_matmul_precision(), cudnn.allow_tf32)
        torch.set_float32_matmul_precision("high" if self.tf32 else "highest")
        cudnn.allow_tf32 = bool(self.tf32)
        try:
            yield
        finally:  # as they were, through the same API (a user's "medium" included)
            torch.set_float32_matmul_precision(before[0])
            cudnn.allow_tf32 = before[1]

    def wrap(self, net: nn.Module, device: torch.device | str) -> nn.Module:
        """``net`` as the audit calls it on ``device``: unchanged with no switch on (the
        default leaves PyTorch's own settings alone, on any device), a ``FastNetwork``
        otherwise."""
        net = exact(net)
        if self.plain:
            return net
        return FastNetwork(net, self)


class FastNetwork(nn.Module):
    """A network called under a ``Speed``: NHWC inputs, autocast, TF32 or not, compiled or
    not; floating outputs back in fp32. Attributes it lacks are the wrapped network's
    (``config``, say), and its parameters are the wrapped network's.
    """

    def __init__(self, net: nn.Module, speed: Speed) -> None:
        super().__init__()
        if speed.channels_last:
            net = net.to(memory_format=torch.channels_last)
        self.net = net
        self.speed = speed
        # not a submodule: the compiled module shares the weights, and would repeat them
        self.__dict__["_call"] = (
            torch.compile(net, backend=COMPILE_BACKEND) if speed.compile else net
        )

    def forward(self, x: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
        if self.speed.channels_last and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        with self.speed.backends(), autocast(self.speed.precision, x.device.type):
            out = self._call(x, *args, **kwargs)
        return _to_fp32(out)

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self._modules["net"], name)


def exact(net: nn.Module) -> nn.Module:
    """The network itself, without a ``FastNetwork`` around it (for fp32-only numerics;
    call it under ``STRICT_FP32.backends()``, or PyTorch's default TF32 convolutions
    apply on a GPU)."""
    return net.net if isinstance(net, FastNetwork) else net


STRICT_FP32 = Speed(tf32=False)  # IEEE fp32 matmuls and convolutions: the NLL's setting


def _to_fp32(out: Any) -> Any:
    if torch.is_tensor(out):
        return out.float() if out.is_floating_point() else out
    if isinstance(out, dict):  # diffusers' BaseOutput is an OrderedDict with attributes
        for k, v in list(out.items()):
            out[k] = _to_fp32(v)
        return out
    if isinstance(out, tuple):
        return type(out)(_to_fp32(v) for v in out)
    return out


# -- the batch from free memory ---------------------------------------------------------
def activation_bytes(call: Callable[[], Any], net: nn.Module) -> int:
    """Bytes of every module output of ``net`` during ``call()``, summed.

    Inference frees most outputs as it goes, so this bounds from above what one
    forward keeps alive at once, on any device and in any precision (a bf16
    output counts 2 bytes a value).
    """
    total = 0

    def count(_module, _inputs, output) -> None:
        nonlocal total
        for t in output if isinstance(output, (tuple, list)) else [output]:
            if torch.is_tensor(t):
                total += t.numel() * t.element_size()
            elif isinstance(t, dict):
                total += sum(v.numel() * v.element_size() for v in t.values() if torch.is_tensor(v))

    handles = [m.register_forward_hook(count) for m in net.modules()]
    try:
        with torch.no_grad():
            call()
    finally:
        for h in handles:
            h.remove()
    return total


def free_memory(device: torch.device | str) -> int:
    """Free bytes on ``device``: on CUDA what the driver reports free plus what PyTorch's
    allocator holds in its cache unused (free to this process: ``cudaMemGetInfo`` alone
    shrank the batch case after case); available RAM on the CPU."""
    device = torch.device(device)
    if device.type == "cuda":
        cached = torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
        return int(torch.cuda.mem_get_info(device)[0] + max(0, cached))
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):  # not Linux: assume 8 GiB
        return 8 << 30


def check_batch_size(batch: int | None) -> None:
    """An explicit batch size (``--memobench-batch-size``) is >= 1; None chooses one."""
    if batch is not None and batch < 1:
        raise ConfigError(
            f"--memobench-batch-size must be >= 1, got {batch} (or leave it out: the batch "
            f"is then chosen from free memory)"
        )


def choose_batch(
    bytes_per_image: float,
    free_bytes: int,
    *,
    fraction: float = 0.5,
    floor: int = 1,
    cap: int = 4096,
    override: int | None = None,
) -> int:
    """Images per network call: as many as fit in ``fraction`` of ``free_bytes``, at most
    ``cap``; ``override`` when given.

    Raises:
        DeviceError: fewer than ``floor`` images fit (never a batch over the budget).
        ConfigError: a bad argument.
    """
    if override is not None:
        check_batch_size(override)
        return int(override)
    if not 0 < fraction <= 1 or floor < 1 or cap < floor or bytes_per_image <= 0:
        raise ConfigError(
            f"choose_batch needs 0 < fraction <= 1, 1 <= floor <= cap and bytes_per_image > 0; "
            f"got fraction={fraction}, floor={floor}, cap={cap}, bytes_per_image={bytes_per_image}"
        )
    budget = free_bytes * fraction
    fit = int(budget // bytes_per_image)
    if fit < floor:
        raise DeviceError(
            f"only {fit} image(s) of {bytes_per_image / 2**20:.1f} MiB fit in "
            f"{budget / 2**20:.0f} MiB ({fraction:.0%} of the free memory), fewer than the "
            f"floor of {floor}; free memory on the device, or pass --memobench-batch-size N"
        )
    return min(cap, fit)
