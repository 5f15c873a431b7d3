"""Where a guidance hook acted on one draw, and what it cost.

A hook (``Prepared.hook``) returns ``eps_hat``, or ``(eps_hat, fire)`` with ``fire``
the (B,) mask of the images it acted on (CPSample where its classifier is
confident, AMG where x0_hat nears a training image). ``logged`` turns it into the
``guidance(x, t, eps) -> eps_hat`` samplers call, counting into a ``GuidanceLog``:
one log per draw, so the figures are that draw's alone.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import torch

from benchmark.models.base import Guidance

GuidanceHook = Callable[
    [torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor | tuple[torch.Tensor, torch.Tensor]
]


class GuidanceLog:
    """The image-steps a hook saw and acted on, the samples it acted on at least once,
    and the seconds it spent."""

    def __init__(self) -> None:
        self.evaluations, self.fired, self.seconds = 0, 0, 0.0
        self.reports_fire = False
        self._batch: torch.Tensor | None = None  # the current batch's samples acted on
        self._samples: list[torch.Tensor] = []

    def record(self, batch: int, fire: torch.Tensor | None, seconds: float) -> None:
        """One call of the hook on ``batch`` images (``fire``: those it acted on)."""
        self.evaluations += batch
        self.seconds += seconds
        if fire is None:
            return
        self.reports_fire = True
        self.fired += int(fire.sum())
        if self._batch is not None and self._batch.shape == fire.shape:
            self._batch |= fire.detach().cpu()

    def start_batch(self, n: int) -> None:
        self._batch = torch.zeros(n, dtype=torch.bool)

    def end_batch(self) -> None:
        if self._batch is not None:
            self._samples.append(self._batch)
        self._batch = None

    def as_record(self) -> dict[str, Any]:
        per_step = self.seconds / max(self.evaluations, 1)
        record: dict[str, Any] = {}
        if self.reports_fire:
            record["guided_step_fraction"] = self.fired / max(self.evaluations, 1)
            record["guided_sample_fraction"] = (
                float(torch.cat(self._samples).float().mean()) if self._samples else None
            )
        record["guidance_seconds"] = self.seconds
        record["guidance_seconds_per_image_step"] = per_step
        return record


def logged(hook: GuidanceHook, log: GuidanceLog) -> Guidance:
    """``hook`` as samplers call it, counting into ``log``."""

    def guidance(x: torch.Tensor, t: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        start = time.perf_counter()
        out = hook(x, t, eps)
        eps_hat, fire = out if isinstance(out, tuple) else (out, None)
        log.record(x.shape[0], fire, time.perf_counter() - start)
        return eps_hat

    return guidance
