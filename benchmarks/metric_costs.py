"""Benchmark: what the privacy metrics cost (issue: FID gap, replication, MIA).

Prints, in one run:

* for each registered membership attack on the smoke model: queries per image,
  NFE for the member + non-member sets, images/s and NFE/s, and the ratio of
  its NFE/s to the sampler's (sampling the same model is the reference);
* the replication metric at 50000 samples x 50000 training images of random
  D-dimensional features: seconds, peak resident memory of a fresh process that
  only does this, and the size of the full similarity matrix it avoids.

    python benchmarks/metric_costs.py [--n-train 64] [--cache DIR] [--rep-n 50000]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
import time

import torch

from benchmark import registry
from benchmark.attacks.base import get_attack, membership_sets, run_attack
from benchmark.audit import case_seeds
from benchmark.session import Session
from benchmark.tiers import smoke_case


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def _replication_job(n: int, m: int, dim: int, queue) -> None:
    from benchmark.measures.feature_replication import replication

    g = torch.Generator().manual_seed(0)
    samples = torch.randn(n, dim, generator=g)
    train = torch.randn(m, dim, generator=g)
    before = _rss_mib()
    start = time.perf_counter()
    out = replication(samples, train, tau=0.95)
    seconds = time.perf_counter() - start
    queue.put((seconds, before, _rss_mib(), out["replication_fraction"]))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--family", default="ddim")
    p.add_argument("--n-train", type=int, default=1024)
    p.add_argument("--max-per-set", type=int, default=512)
    p.add_argument("--cache", default=None)
    p.add_argument("--rep-n", type=int, default=50000)
    p.add_argument("--rep-dim", type=int, default=128)
    args = p.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))

    case = smoke_case(args.family, args.n_train, n_gen=256)
    session = Session(args.cache)  # the suites' resources: models, data, detectors
    data = session.dataset(case.data)
    model = session.model(case.model, case.train, case.data)
    members, nonmembers = membership_sets(data, max_per_set=args.max_per_set)
    n = members.shape[0]

    ref = model.generate(case_seeds(case), case.sampler)
    ref_nfe_s = ref.nfe * ref.images.shape[0] / ref.seconds
    print(
        f"reference: sampling {ref.images.shape[0]} images, {ref.nfe} DDIM steps: "
        f"{ref.images_per_second:.1f} img/s, {ref_nfe_s:.0f} NFE/s"
    )
    print(
        f"attacks on {args.family} x digits N_train={args.n_train}, {n} members + {n} non-members"
    )
    header = ("q/img", "NFE", "s", "img/s", "NFE/s", "vs sampler", "AUC")
    print(f"{'attack':8s} " + " ".join(f"{h:>7s}" for h in header))
    for name in registry.attacks.names():
        attack = get_attack(name)
        run_attack(attack, model, members[:8], nonmembers[:8], n_boot=0)  # warm-up
        result = run_attack(attack, model, members, nonmembers, n_boot=0)
        nfe = attack.queries_per_image * 2 * n
        print(
            f"{name:8s} {attack.queries_per_image:7d} {nfe:7d} {result.seconds:7.2f} "
            f"{2 * n / result.seconds:7.1f} {nfe / result.seconds:7.0f} "
            f"{nfe / result.seconds / ref_nfe_s:10.2f} {result.score.auc:7.3f}"
        )

    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_replication_job, args=(args.rep_n, args.rep_n, args.rep_dim, queue))
    proc.start()
    seconds, before, peak, fraction = queue.get()
    proc.join()
    full_gib = args.rep_n * args.rep_n * 4 / 2**30
    print(
        f"replication {args.rep_n} x {args.rep_n}, D={args.rep_dim} random features: "
        f"{seconds:.1f} s ({args.rep_n / seconds:.0f} samples/s), peak RSS {peak:.0f} MiB "
        f"(features alone {before:.0f} MiB; the full float32 similarity matrix would be "
        f"{full_gib:.1f} GiB); fraction above 0.95: {fraction:.4f}"
    )


if __name__ == "__main__":
    main()
