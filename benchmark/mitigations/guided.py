"""The bookkeeping every guidance mitigation shares: how often its hook acted, on which
samples, and what it cost.

A mitigation that acts through the guidance hook and only sometimes (CPSample where
its classifier is confident, AMG where x0_hat nears a training image) subclasses
``TrackedGuidance``: its hook calls ``record_step(fire, seconds)`` with the (B,) mask
of the images it acted on, and ``generate`` and ``metrics`` report the share of
image-steps and of samples it acted on and the seconds it spent.
"""

from __future__ import annotations

import time
from typing import Any

import torch

from benchmark.mitigations.base import Mitigation
from benchmark.models.base import SampleResult, TrainedModel


class TrackedGuidance(Mitigation):
    """Base class of guidance mitigations that record where they acted."""

    def _reset_counts(self) -> None:
        self.counts = {"evaluations": 0, "fired": 0, "seconds": 0.0}
        self._fired_any: torch.Tensor | None = None

    def record_step(self, fire: torch.Tensor, seconds: float) -> None:
        """One call of the hook: ``fire`` (B,) marks the images it acted on."""
        self.counts["evaluations"] += fire.numel()
        self.counts["fired"] += int(fire.sum())
        self.counts["seconds"] += seconds
        if self._fired_any is not None and self._fired_any.shape == fire.shape:
            self._fired_any |= fire.detach().cpu()

    def generate(self, model: TrainedModel, seeds, sampler, **kwargs: Any) -> SampleResult:
        """Sample batch by batch, tracking which samples the guidance acted on."""
        self._reset_counts()
        guide = self.guidance()
        seeds = torch.as_tensor(seeds, dtype=torch.long)
        batch = int(kwargs.pop("batch_size", 256))
        fired, parts = [], []
        start = time.perf_counter()
        for part in seeds.split(batch):
            self._fired_any = torch.zeros(part.shape[0], dtype=torch.bool)
            parts.append(model.generate(part, sampler, guidance=guide, batch_size=batch, **kwargs))
            fired.append(self._fired_any)
        self._fired_any = None
        self._sample_fired = torch.cat(fired)
        seconds = time.perf_counter() - start
        return SampleResult(torch.cat([p.images for p in parts]), seeds, parts[0].nfe, seconds)

    def metrics(self) -> dict[str, Any]:
        c = self.counts
        return {
            "guided_step_fraction": c["fired"] / max(c["evaluations"], 1),
            "guided_sample_fraction": float(self._sample_fired.float().mean())
            if hasattr(self, "_sample_fired")
            else None,
            "guidance_seconds": c["seconds"],
            "guidance_seconds_per_image_step": c["seconds"] / max(c["evaluations"], 1),
        }
