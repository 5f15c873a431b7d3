"""bf16 sampling against fp32 on the smoke tier's memorizing model: what a GPU runner's
``--memobench-precision bf16`` does to the figures, measured on the CPU (same seeds,
same weights, the same DDIM trajectories but for the network's arithmetic).

Tolerances, and what they were measured at (256 samples of the 64-digit DDIM model,
2 cores): mean absolute pixel change 0.006 (bf16) and 0.009 (bf16 + channels_last), on
[-1, 1]; images with any pixel moved by more than 0.5 (a trajectory that took another
turn) 1.6 % and 2.3 %; Carlini fraction 0.645 -> 0.641 and 0.637, paired, where the
fraction of 256 independent samples has a standard deviation of 0.03.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from benchmark.measures.carlini_l2 import CarliniL2
from benchmark.speed import Speed
from benchmark.tiers import smoke_case

N_SAMPLES = 256
MEAN_PIXEL_TOL = 0.03
MOVED_SHARE_TOL = 0.05
CARLINI_TOL = 0.03


# bf16 + channels_last only: what a GPU runner turns on. On a CPU without bf16 units the
# switches are slow (256 samples: fp32 12 s, bf16 136 s, bf16 + channels_last 53 s on 2
# cores), and plain bf16's network numerics are checked in tests/test_speed.py.
@pytest.mark.parametrize("speed", [Speed("bf16", channels_last=True)], ids=lambda s: s.label())
def test_bf16_sampling_keeps_the_smoke_models_figures(speed, memobench_session):
    ctx = memobench_session
    case = ctx.settings.scaled(smoke_case("ddim", 64, dataset=ctx.settings.smoke_dataset))
    model = ctx.model(case.model, case.train, case.data)
    train = ctx.dataset(case.data).train
    seeds = torch.arange(N_SAMPLES)
    fp32 = model.generate(seeds, case.sampler).images
    fast = replace(model, net=speed.wrap(model.net, "cpu"), _last_plain=None)
    low = fast.generate(seeds, case.sampler).images
    assert low.dtype == torch.float32 and torch.isfinite(low).all()

    change = (low - fp32).abs()
    assert 0 < change.mean() < MEAN_PIXEL_TOL, f"mean pixel change {change.mean():.4f}"
    moved = (change.flatten(1).amax(1) > 0.5).float().mean()
    assert moved <= MOVED_SHARE_TOL, f"{moved:.1%} of the trajectories took another turn"

    def carlini(images: torch.Tensor) -> float:
        metric = CarliniL2(train)
        metric.update(images)
        return float(metric.compute())

    a, b = carlini(fp32), carlini(low)
    assert abs(a - b) <= CARLINI_TOL, f"Carlini fraction {a:.3f} (fp32) vs {b:.3f} ({speed})"
