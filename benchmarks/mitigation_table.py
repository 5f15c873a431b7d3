"""Benchmark: mitigations on the memorizing smoke model (issue: CPSample and rejection).

Prints one table for none / CPSample (the paper's alpha = 0.001, s = 1 and the
suite's stronger alpha = 0.1, s = 1000) / rejection sampling, on the same seeds:
|q| with E|q|, the Carlini fraction, FID against the training and the held-out
images, the loss attack's AUC, images/s and the sampling cost against `none`
(wall time per delivered image). Each row is the case's audit by ``run_case``,
the same the smoke suite records (reused from the cache when the suite ran).

    python benchmarks/mitigation_table.py [--family ddim] [--n-train 64] [--n-gen 1024]
        [--cache DIR]
"""

from __future__ import annotations

import argparse

from benchmark.audit import run_case
from benchmark.metrics.carlini import CARLINI_L2
from benchmark.metrics.fid import FID_TEST, FID_TRAIN
from benchmark.metrics.membership import MIA_AUC
from benchmark.metrics.reproduction import Q_EXPECTED, Q
from benchmark.record import AUDIT_REUSED, IMAGES_PER_SECOND, N_GEN, SAMPLE_SECONDS
from benchmark.session import Session
from benchmark.tiers import SMOKE_N_GEN, smoke_case

LOSS_AUC = MIA_AUC(attack="loss_weights")  # white box: the released weights
LOSS_AUC_API = MIA_AUC(attack="loss_api")  # queries of the deployed (guided) denoiser
NEAREST_AUC = MIA_AUC(attack="nearest_samples")  # the released samples only

SETTINGS = [
    ("none", {}),
    ("cpsample", {"alpha": 0.001, "scale": 1.0}),
    ("cpsample", {"alpha": 0.1, "scale": 1000.0}),
    ("rejection", {}),
]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--family", default="ddim")
    p.add_argument("--n-train", type=int, default=64)
    p.add_argument("--n-gen", type=int, default=SMOKE_N_GEN)
    p.add_argument("--cache", default=None)
    args = p.parse_args()

    session = Session(args.cache, n_gen=args.n_gen)
    rows, ref_cost = [], None
    for name, params in SETTINGS:
        case = smoke_case(args.family, args.n_train, name, params, n_gen=args.n_gen)
        m = run_case(case, session).metrics
        cost = m[SAMPLE_SECONDS] / m[N_GEN]
        ref_cost = ref_cost or cost
        label = name + (f"({', '.join(f'{k}={v}' for k, v in params.items())})" if params else "")
        extra = {k[len("mitigation_") :]: v for k, v in m.items() if k.startswith("mitigation_")}
        extra.pop("params", None)
        rows.append((label, m, cost / ref_cost, extra))

    print(f"{args.family} x digits N_train={args.n_train}, {args.n_gen} samples, same seeds")
    print(
        f"{'mitigation':36s} {'|q|':>4s} {'E|q|':>5s} {'Carlini':>7s} {'FIDtr':>6s} "
        f"{'FIDte':>6s} {'loss:w':>7s} {'loss:api':>8s} {'near:s':>7s} {'img/s':>6s} "
        f"{'cost':>5s} {'reused':>6s}"
    )
    for label, m, ratio, _ in rows:
        print(
            f"{label:36s} {m[Q]:4d} {m[Q_EXPECTED]:5.1f} {m[CARLINI_L2]:7.3f} "
            f"{m[FID_TRAIN]:6.2f} {m[FID_TEST]:6.2f} {m[LOSS_AUC]:7.3f} "
            f"{m[LOSS_AUC_API]:8.3f} {m[NEAREST_AUC]:7.3f} "
            f"{m[IMAGES_PER_SECOND]:6.1f} {ratio:5.2f} {str(m[AUDIT_REUSED]):>6s}"
        )
    for label, *_, extra in rows:
        shown = {k: round(v, 3) if isinstance(v, float) else v for k, v in extra.items()}
        if shown:
            print(f"  {label}: {shown}")


if __name__ == "__main__":
    main()
