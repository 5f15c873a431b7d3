"""Device selection: ``auto`` picks CUDA when present (docs/architecture.md)."""

from __future__ import annotations

import torch

from benchmark.errors import DeviceError


def resolve_device(spec: str = "auto") -> torch.device:
    """``auto`` | ``cpu`` | ``cuda`` | ``cuda:N`` -> a usable ``torch.device``.

    Raises:
        DeviceError: CUDA was asked for and is not available, or the spec is unknown.
    """
    spec = (spec or "auto").strip().lower()
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if spec == "cpu":
        return torch.device("cpu")
    if spec.startswith("cuda"):
        if not torch.cuda.is_available():
            raise DeviceError(
                f"device {spec!r} was requested but torch.cuda.is_available() is False "
                f"(torch {torch.__version__}); use --memobench-device cpu or auto, "
                f"or run on a machine with a CUDA GPU"
            )
        dev = torch.device(spec)
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise DeviceError(
                f"device {spec!r} requested but only {torch.cuda.device_count()} GPU(s) exist"
            )
        return dev
    raise DeviceError(f"unknown device {spec!r}; use auto, cpu, cuda or cuda:N")


def worker_device(device: torch.device, worker: str | None, n_gpus: int) -> torch.device:
    """The device of pytest-xdist worker ``worker`` (``gw0``, ``gw1``, ...): one worker per
    GPU, round-robin when there are more workers than GPUs.

    Only a CUDA device without an index (``cuda``, or ``auto`` on a GPU machine) is
    spread; ``cuda:N`` and ``cpu`` stay as asked, and so does every device outside xdist.
    """
    if worker is None or device.type != "cuda" or device.index is not None or n_gpus < 1:
        return device
    if not (worker.startswith("gw") and worker[2:].isdigit()):
        raise DeviceError(f"unexpected pytest-xdist worker id {worker!r}; expected gw<N>")
    return torch.device("cuda", int(worker[2:]) % n_gpus)


def has_gpu() -> bool:
    return torch.cuda.is_available()


def session_device(spec: str, worker: str | None, rehearse: bool) -> torch.device:
    """The device a run's session uses: ``spec`` resolved, then, on a pytest-xdist worker
    (``worker`` = ``gw<N>``), the worker's own GPU, made the current device so that
    every ``cuda`` tensor, stream and generator of the process lands on it."""
    device = resolve_device("cpu" if rehearse else spec)
    if worker is not None and not rehearse:
        device = worker_device(device, worker, torch.cuda.device_count())
    if device.type == "cuda" and device.index is not None:
        torch.cuda.set_device(device)
    return device


def device_name(device: torch.device | str) -> str:
    """``cpu``, or ``cuda:1 (NVIDIA H200)``: what a case's figures were measured on."""
    device = torch.device(device)
    if device.type != "cuda":
        return device.type
    index = device.index if device.index is not None else torch.cuda.current_device()
    return f"cuda:{index} ({torch.cuda.get_device_name(index)})"
