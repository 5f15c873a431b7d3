"""Benchmark: guided sampling without an autograd graph over the trajectory.

Samplers, t* and the attacks run the network under ``torch.no_grad()``; a
guidance hook that needs gradients (CPSample) enables them for itself on a
detached x_t. The reference is the former way, the whole sampler under
``torch.enable_grad()`` when a hook is given, which recorded every step's
network activations until the batch ended. Prints, in one run on the smoke
model with CPSample (alpha = 0.1, s = 1000): seconds for each, their ratio, the
growth of peak resident memory, and the largest pixel difference (must be 0).

    python benchmarks/guided_sampling.py [--family ddim] [--n 256] [--cache DIR]
"""

from __future__ import annotations

import argparse
import resource
import time

import torch

from benchmark.audit import case_seeds, make_mitigation
from benchmark.mitigations.base import MitigationContext
from benchmark.models.base import seeded_latents
from benchmark.session import Session
from benchmark.tiers import smoke_case


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--family", default="ddim")
    p.add_argument("--n", type=int, default=256)
    p.add_argument("--cache", default=None)
    args = p.parse_args()

    session = Session(args.cache, progress=False)
    case = smoke_case(args.family, 64, "cpsample", {"alpha": 0.1, "scale": 1000.0}, n_gen=args.n)
    model = session.model(case.model, case.train, case.data)
    mitigation = make_mitigation(case)
    prepared = mitigation.prepare(
        model, MitigationContext(data=session.dataset(case.data), cache=session.cache)
    )
    guidance, seeds = prepared.guidance(), case_seeds(case)
    model.generate(seeds[:8], case.sampler, guidance)  # warm-up

    before = peak_mb()
    start = time.perf_counter()
    new = model.generate(seeds, case.sampler, guidance, batch_size=args.n).images
    t_new, grow_new = time.perf_counter() - start, peak_mb() - before

    before = peak_mb()
    start = time.perf_counter()
    with torch.enable_grad():  # the former way: a graph over the whole trajectory
        latents = seeded_latents(seeds, model.image_shape)
        old, _ = model.family.sample(model.net, latents, case.sampler, guidance)
    t_old, grow_old = time.perf_counter() - start, peak_mb() - before

    print(f"{args.family} 64 digits, CPSample alpha=0.1 s=1000, {args.n} samples in one batch")
    print(f"no_grad (now)          {t_new:7.1f} s   peak RSS +{grow_new:7.0f} MB")
    print(f"enable_grad (before)   {t_old:7.1f} s   peak RSS +{grow_old:7.0f} MB")
    print(f"speed-up {t_old / t_new:.2f}x; max |pixel difference| {(old - new).abs().max():.2e}")


if __name__ == "__main__":
    main()
