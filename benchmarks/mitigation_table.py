"""Benchmark: mitigations on the memorizing smoke model (issue: CPSample and rejection).

Prints one table for none / CPSample (the paper's alpha = 0.001, s = 1 and the
suite's stronger alpha = 0.1, s = 1000) / rejection sampling, on the same seeds:
|q| with E|q|, the Carlini fraction, FID against the training and the held-out
images, images/s and the sampling cost against `none` (wall time per delivered
image, classifier training excluded and shown apart).

    python benchmarks/mitigation_table.py [--n-train 64] [--n-gen 1024] [--cache DIR]
"""

from __future__ import annotations

import argparse
import time

from benchmark import registry
from benchmark.audit import case_seeds, make_mitigation
from benchmark.cache import Cache
from benchmark.config import DetectorConfig
from benchmark.data import load_dataset
from benchmark.detectors.detector import get_detector
from benchmark.metrics.carlini import CarliniL2
from benchmark.metrics.features import classifier_features
from benchmark.metrics.fid import fid_gap
from benchmark.metrics.reproduction import count_reproductions
from benchmark.mitigations.base import MitigationContext
from benchmark.models.store import get_trained
from benchmark.tiers import SMOKE_N_GEN, smoke_case

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

    cache = Cache(args.cache)
    base = smoke_case(args.family, args.n_train, n_gen=args.n_gen)
    data = load_dataset(base.data, cache.root)
    model = get_trained(base.model, base.train, data, cache)
    c_saf, c_id = (get_detector(k, DetectorConfig(), data, cache) for k in ("saf", "id"))
    features = classifier_features(registry.datasets.get(base.data.name)(), cache)

    rows, ref_cost = [], None
    for name, params in SETTINGS:
        case = smoke_case(args.family, args.n_train, name, params, n_gen=args.n_gen)
        mitigation = make_mitigation(case)
        start = time.perf_counter()
        mitigation.prepare(model, MitigationContext(data=data, cache=cache, features=features))
        prep = time.perf_counter() - start  # classifier training, 0 when cached
        mitigation.generate(
            model, case_seeds(case)[:8], case.sampler
        )  # warm-up (autograd, threads)
        samples = mitigation.generate(model, case_seeds(case), case.sampler)
        carlini = CarliniL2(data.train)
        carlini.update(samples.images)
        q = count_reproductions(
            c_saf.predict(samples.images), c_id.predict(samples.images), data.n_train
        )
        f = fid_gap(samples.images, data.train, data.heldout, features, n_boot=0)
        cost = samples.seconds / samples.images.shape[0]
        ref_cost = ref_cost or cost
        label = name + (f"({', '.join(f'{k}={v}' for k, v in params.items())})" if params else "")
        rows.append(
            (
                label,
                q.q,
                q.expected,
                float(carlini.compute()),
                f["fid_train"],
                f["fid_test"],
                samples.images_per_second,
                cost / ref_cost,
                prep,
                mitigation.metrics(),
            )
        )

    print(f"{args.family} x digits N_train={args.n_train}, {args.n_gen} samples, same seeds")
    print(
        f"{'mitigation':36s} {'|q|':>4s} {'E|q|':>5s} {'Carlini':>7s} {'FIDtr':>6s} "
        f"{'FIDte':>6s} {'img/s':>6s} {'cost':>5s} {'prep s':>6s}"
    )
    for label, qv, e, car, ftr, fte, ips, ratio, prep, _ in rows:
        print(
            f"{label:36s} {qv:4d} {e:5.1f} {car:7.3f} {ftr:6.2f} {fte:6.2f} {ips:6.1f} "
            f"{ratio:5.2f} {prep:6.1f}"
        )
    for label, *_, extra in rows:
        shown = {k: round(v, 3) if isinstance(v, float) else v for k, v in extra.items()}
        if shown:
            print(f"  {label}: {shown}")


if __name__ == "__main__":
    main()
