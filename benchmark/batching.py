"""How many images go into one network call: chosen from free memory, halved on
out-of-memory.

The run measures one probe forward of a model's network (``image_bytes``) and
fits as many images as half the device's free memory holds (``benchmark.speed``:
``choose_batch``, ``free_memory``, which counts what PyTorch has cached as free).
After an out-of-memory error the audit halves every batch of that model and
calls again (``benchmark.audit.retry_on_oom``).
"""

from __future__ import annotations

import torch

from benchmark.errors import DeviceError
from benchmark.models.base import TrainedModel
from benchmark.speed import activation_bytes, choose_batch, free_memory

GPU_BATCH_CAP = 4096  # 28 px images: past this, a bigger call does not raise occupancy
BATCH_FLOOR = 4
PROBE_IMAGES = 2


def image_bytes(model, device: torch.device) -> float:
    """Bytes one image needs in a call of ``model``'s network (as the audit calls it), from
    a probe forward of ``PROBE_IMAGES`` images at mid diffusion."""
    net = model.net.to(device).eval()
    x = torch.zeros(PROBE_IMAGES, *model.family.latent_shape(model.image_shape), device=device)
    time = model.family.noise.time_at(0.5)
    used = activation_bytes(lambda: model.family.predict_eps(net, x, time), net)
    return max(used, 1) / PROBE_IMAGES


class Batches:
    """The batch of each model's network calls in one run, on one device.

    Args:
        device: where the calls run.
        override: images per call given by the user (``--memobench-batch-size``), or None.
    """

    def __init__(self, device: torch.device, override: int | None = None) -> None:
        self.device = device
        self.override = override
        self._chosen: dict[tuple[str, int], int] = {}

    def size(self, model: TrainedModel, default: int) -> int:
        """Images per network call for ``model`` (as the audit calls it: ``Session.fast``):
        the override when given, else as many as fit in half the device's free memory,
        measured on one probe forward. At most ``default`` on the CPU, where bigger calls
        gain nothing, and at most ``max(default, GPU_BATCH_CAP)`` on a GPU."""
        if self.override is not None:
            return self.override
        memo = (model.key, default)
        if memo not in self._chosen:
            per_image = image_bytes(model, self.device)
            cap = default if self.device.type == "cpu" else max(default, GPU_BATCH_CAP)
            self._chosen[memo] = choose_batch(
                per_image, free_memory(self.device), floor=BATCH_FLOOR, cap=cap
            )
        return self._chosen[memo]

    def halve(self, model: TrainedModel) -> int:
        """After an out-of-memory error on ``model``'s network: halve every batch chosen
        for it, so the retried call fits; returns the largest batch left.

        Raises:
            DeviceError: the batch was given (``--memobench-batch-size``), or is already
                down to the floor: free memory on the device or pass a smaller batch.
        """
        if self.override is not None:
            raise DeviceError(
                f"out of memory on {self.device} at a batch of {self.override} images; "
                f"pass a smaller one (memobench run --batch-size N, --memobench-batch-size "
                f"in pytest), or leave it out (the batch is then chosen from free memory "
                f"and halved on out-of-memory)"
            )
        mine = [memo for memo in self._chosen if memo[0] == model.key]
        if not mine or all(self._chosen[m] <= BATCH_FLOOR for m in mine):
            raise DeviceError(
                f"out of memory on {self.device} even at {BATCH_FLOOR} images per call; "
                f"free memory on the device (another process?) or use a larger GPU"
            )
        for memo in mine:
            self._chosen[memo] = max(BATCH_FLOOR, self._chosen[memo] // 2)
        return max(self._chosen[m] for m in mine)
