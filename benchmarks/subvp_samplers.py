"""Benchmark: the sub-VP SDE family's samplers and likelihood on the smoke model (issue 4).

Prints, in one run, on the smoke ``subvp`` model (trained or loaded from the cache):

* for each sampler at its default step count: NFE per image, images/s, NFE/s and
  the ratio of its images/s to Euler–Maruyama's (the reference, the suite's
  default), plus the Carlini fraction of its samples (quality check:
  the samplers should agree on how much the model copies);
* the adaptive ODE solver's NFE (it picks its own steps);
* the NLL in bits/dim: seconds and NFE per image, members and held-out.

    python benchmarks/subvp_samplers.py [--n-train 64] [--n-gen 128] [--cache DIR]
"""

from __future__ import annotations

import argparse

from benchmark.attacks.base import membership_sets
from benchmark.audit import case_seeds
from benchmark.config import SamplerConfig
from benchmark.measures.carlini_l2 import CarliniL2
from benchmark.metrics.likelihood import bits_per_dim
from benchmark.samplers import euler_maruyama, pf_ode
from benchmark.samplers.base import get_sampler
from benchmark.session import Session
from benchmark.tiers import smoke_case

SAMPLERS = {
    "em": SamplerConfig(name="em", num_steps=euler_maruyama.DEFAULT_STEPS),
    "ode_heun": SamplerConfig(name="ode_heun", num_steps=pf_ode.DEFAULT_STEPS),
    "pc": SamplerConfig(
        name="pc", num_steps=euler_maruyama.DEFAULT_STEPS, params={"corrector_steps": 1}
    ),
    "ode_rk45": SamplerConfig(name="ode_rk45"),
}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n-train", type=int, default=64)
    p.add_argument("--n-gen", type=int, default=128)
    p.add_argument("--nll-images", type=int, default=32, help="members and as many held-out")
    p.add_argument("--cache", default=None)
    args = p.parse_args()

    case = smoke_case("subvp", args.n_train, n_gen=args.n_gen)
    session = Session(args.cache)  # the suites' resources: models, data, detectors
    data = session.dataset(case.data)
    model = session.model(case.model, case.train, case.data)
    seeds = case_seeds(case)
    model.generate(seeds[:8], SAMPLERS["em"])  # warm-up

    print(f"subvp x digits N_train={args.n_train}, {args.n_gen} images per sampler, CPU")
    header = ("steps", "NFE/img", "s", "img/s", "NFE/s", "vs em", "Carlini")
    print(f"{'sampler':9s} " + " ".join(f"{h:>8s}" for h in header))
    ref = None
    for name, sampler in SAMPLERS.items():
        out = model.generate(seeds, sampler)
        carlini = CarliniL2(data.train)
        carlini.update(out.images)
        ips = out.images_per_second
        ref = ref or ips
        steps = "auto" if name == "ode_rk45" else str(sampler.num_steps)
        row = (
            f"{steps:>8s} {out.nfe:8d} {out.seconds:8.2f} {ips:8.1f} "
            f"{out.nfe * ips:8.0f} {ips / ref:8.3f} {float(carlini.compute()):8.3f}"
        )
        print(f"{name:9s} {row}")
        if name == "ode_rk45":
            tol = get_sampler(sampler).params.tol
            print(f"adaptive ODE (RK45, tol {tol:g}): {out.nfe} NFE per image")

    members, heldout = membership_sets(data, max_per_set=args.nll_images)
    net = model.net.eval()

    def eps_fn(x, t):
        return model.family.predict_eps(net, x, t)

    for label, images in (("members", members), ("held-out", heldout)):
        bpd, cost = bits_per_dim(eps_fn, model.family.sde, images)
        n = images.shape[0]
        print(
            f"NLL {label:8s}: {float(bpd.mean()):.3f} bits/dim over {n} images, "
            f"{cost['seconds'] / n:.3f} s/img, {cost['nfe'] / n:.0f} NFE/img (each with a backward)"
        )


if __name__ == "__main__":
    main()
