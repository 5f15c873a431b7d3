"""Benchmark: every mitigation on the memorizing smoke model, against `none` (issue 16).

Prints one table per family for `none` and every mitigation of the smoke suite at its
suite settings (CPSample, rejection, AMG, DP-SGD; a plugin's too), on the same seeds:
|q| with E|q|, the Carlini fraction, FID against the training and the held-out
images, the loss attack's AUC under `weights` and through the deployed denoiser, the
nearest-sample attack's, then each one's change against `none` (Delta Carlini,
Delta |q|, Delta FID_test), epsilon where the model is trained with DP, and its cost:
training time and sampling time per delivered image, each over `none`'s. Each row is
the case's audit by ``run_case``, the same the smoke suite records (reused from the
cache when the suite ran). ``--paper-cpsample`` adds CPSample at its paper setting
(alpha = 0.001, s = 1), which the suite leaves out.

    python benchmarks/mitigation_table.py [--family ddim] [--n-train 64] [--n-gen 1024]
        [--cache DIR] [--paper-cpsample]
"""

from __future__ import annotations

import argparse

from benchmark import registry
from benchmark.audit import run_case
from benchmark.measures.carlini_l2 import CARLINI_L2
from benchmark.measures.fid import FID_TEST, FID_TRAIN
from benchmark.measures.membership_scores import MIA_AUC
from benchmark.measures.reproduction import Q_EXPECTED, Q
from benchmark.record import (
    AUDIT_REUSED,
    MITIGATION_ENTRY,
    N_GEN,
    SAMPLE_SECONDS,
    TRAIN_SECONDS,
)
from benchmark.session import Session
from benchmark.tiers import SMOKE_N_GEN, smoke_case, suite_names

LOSS_AUC = MIA_AUC(attack="loss_weights")  # white box: the released weights
LOSS_AUC_API = MIA_AUC(attack="loss_api")  # queries of the deployed (guided) denoiser
NEAREST_AUC = MIA_AUC(attack="nearest_samples")  # the released samples only
EPSILON = MITIGATION_ENTRY(entry="epsilon")


def settings(paper_cpsample: bool) -> list[tuple[str, dict]]:
    out = [("none", {})]
    if paper_cpsample:
        out.append(("cpsample", {"alpha": 0.001, "scale": 1.0}))
    for name in suite_names(registry.mitigations):
        if name != "none":
            out += [(name, dict(p)) for p in registry.mitigations.get(name).suite_settings]
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--family", default="ddim")
    p.add_argument("--n-train", type=int, default=64)
    p.add_argument("--n-gen", type=int, default=SMOKE_N_GEN)
    p.add_argument("--cache", default=None)
    p.add_argument("--paper-cpsample", action="store_true")
    args = p.parse_args()

    session = Session(args.cache, n_gen=args.n_gen)
    rows = []
    for name, params in settings(args.paper_cpsample):
        case = smoke_case(args.family, args.n_train, name, params, n_gen=args.n_gen)
        m = run_case(case, session).metrics
        label = name + (f"({', '.join(f'{k}={v}' for k, v in params.items())})" if params else "")
        extra = {k[len("mitigation_") :]: v for k, v in m.items() if k.startswith("mitigation_")}
        for key in ("params", "addresses"):
            extra.pop(key, None)
        rows.append((label, m, extra))
    ref = rows[0][1]
    sample_cost = ref[SAMPLE_SECONDS] / ref[N_GEN]

    print(f"{args.family} x digits N_train={args.n_train}, {args.n_gen} samples, same seeds\n")
    head = ["mitigation", "|q| (E|q|)", "Carlini", "FID tr / te", "loss:w", "loss:api",
            "near:s", "ΔCarlini", "Δ|q|", "ΔFID te", "ε", "train ×", "sample ×",
            "reused"]  # fmt: skip
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for label, m, _ in rows:
        eps = m.get(EPSILON)
        cells = [
            label,
            f"{m[Q]} ({m[Q_EXPECTED]:.1f})",
            f"{m[CARLINI_L2]:.3f}",
            f"{m[FID_TRAIN]:.1f} / {m[FID_TEST]:.1f}",
            f"{m[LOSS_AUC]:.3f}",
            f"{m[LOSS_AUC_API]:.3f}",
            f"{m[NEAREST_AUC]:.3f}",
            f"{m[CARLINI_L2] - ref[CARLINI_L2]:+.3f}",
            f"{m[Q] - ref[Q]:+d}",
            f"{m[FID_TEST] - ref[FID_TEST]:+.1f}",
            f"{eps:.2f}" if isinstance(eps, float) else "–",
            f"{m[TRAIN_SECONDS] / ref[TRAIN_SECONDS]:.2f}",
            f"{m[SAMPLE_SECONDS] / m[N_GEN] / sample_cost:.2f}",
            str(m[AUDIT_REUSED]),
        ]
        print("| " + " | ".join(cells) + " |")
    print()
    for label, _, extra in rows:
        shown = {k: float(f"{v:.4g}") if isinstance(v, float) else v for k, v in extra.items()}
        if shown:
            print(f"- {label}: {shown}")


if __name__ == "__main__":
    main()
