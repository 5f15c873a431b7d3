"""Benchmark: t* strategies on the memorizing smoke model (issue: fingerprint audit).

Prints, in one run: t* of the exhaustive search, of the adaptive one as the audit
runs it (the exact scan, a window of levels per batch: it must equal the
exhaustive t*) and of a scan capped at 10% of the exhaustive NFE (bracketing and
bisection below: a lower bound, with the level it cleared down to), the NFE and
wall time of each as ratios to the exhaustive search, and the wall time of
batched lockstep against running the 100 x 16 trajectories one level at a time.
Also |q| of the case's samples.

    python benchmarks/tstar_strategies.py [--family ddim] [--n-train 64] [--cache DIR]
"""

from __future__ import annotations

import argparse
import time

import torch

from benchmark.audit import case_seeds
from benchmark.measures.reproduction import count_reproductions
from benchmark.measures.tstar import (
    default_grid,
    run_lockstep,
    start_noise,
    tstar,
    tstar_window,
)
from benchmark.session import Session
from benchmark.tiers import smoke_case


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--family", default="ddim")
    p.add_argument("--n-train", type=int, default=64)
    p.add_argument("--n-gen", type=int, default=512)
    p.add_argument("--m", type=int, default=16)
    p.add_argument("--cache", default=None)
    args = p.parse_args()

    case = smoke_case(args.family, args.n_train, n_gen=args.n_gen)
    session = Session(args.cache)  # the suites' resources: models, data, detectors
    data = session.dataset(case.data)
    model = session.model(case.model, case.train, case.data)
    c_saf, c_id = session.detectors(case.data)
    for det in (c_saf, c_id):
        det.require_accuracy(0.95)
        print(
            f"C_{det.kind.upper()}: held-out accuracy {det.metrics['accuracy']:.3f}, "
            f"balanced {det.metrics['balanced_accuracy']:.3f}, positives on held-out "
            f"{det.metrics['heldout_positive_rate']:.3f}"
        )

    def is_hit(images: torch.Tensor) -> torch.Tensor:
        return c_saf.predict(images) & c_id.predict(images)

    samples = model.generate(case_seeds(case), case.sampler)
    rc = count_reproductions(
        c_saf.predict(samples.images), c_id.predict(samples.images), data.n_train
    )
    lo, hi = rc.interval
    print(
        f"|q| = {rc.q} of N_gen = {rc.n_gen} (E|q| = {rc.expected:.1f}; C_SAF only "
        f"{rc.saf_only}, C_ID only {rc.id_only}); rate 95% CI [{lo:.4f}, {hi:.4f}]; "
        f"p(H1: rate < 1/N_train) = {rc.p_value:.3g}"
    )

    ex = tstar(model, data, is_hit, case.sampler, "exhaustive", m=args.m)
    window = tstar_window(session.device)
    ad = tstar(model, data, is_hit, case.sampler, "adaptive", m=args.m, window=window)
    capped = tstar(model, data, is_hit, case.sampler, m=args.m, window=window, scan_budget=0.1)
    print(f"exhaustive:    t* = {ex.t_star_label}, NFE {ex.nfe}, {ex.seconds:.1f} s")
    for name, r in (("adaptive", ad), ("capped 10%", capped)):
        print(
            f"{name + ':':14} t* = {r.t_star_label} (at most {r.t_star_upper:.2f}, exact "
            f"{r.exact}), NFE {r.nfe} ({r.nfe / ex.nfe:.2f} of exhaustive), {r.seconds:.1f} s "
            f"({r.seconds / ex.seconds:.2f} of exhaustive)"
        )
    print(f"adaptive t* equals the exhaustive one: {ad.t_star == ex.t_star} (must be True)")
    print(
        "q_M(t), exhaustive: "
        + " ".join(f"{t:.2f}:{q:.2f}" for t, q in zip(ex.levels, ex.q, strict=True) if q)
    )

    # the same 100 x 16 trajectories, one level at a time
    x0 = data.saf.fingerprinted()
    levels = default_grid()
    start = time.perf_counter()
    hits_per_level = []
    for i, t in enumerate(levels):
        noises = torch.stack([start_noise(case.seed, i, j, tuple(x0.shape)) for j in range(args.m)])
        images, _ = run_lockstep(
            model, x0, [model.family.noise.time_at(t)] * args.m, case.sampler, noises
        )
        hits_per_level.append(int(is_hit(images).sum()))
    per_level = time.perf_counter() - start
    print(
        f"lockstep batch {ex.seconds:.1f} s vs one level at a time {per_level:.1f} s: "
        f"ratio {ex.seconds / per_level:.2f}; same hits per level: "
        f"{hits_per_level == ex.hits}"
    )


if __name__ == "__main__":
    main()
