"""Benchmark: SecMI-stat as memobench runs it against the authors' own step, on one model.

SecMI's public code (Duan et al., 2023) carries an image by deterministic DDIM steps
from step 0 to ``t_sec - k`` (its grid is ``range(0, t_sec, k)[1:]``), then to
``t_sec`` and back, and scores the squared error of that round trip (lower = member).
memobench follows the paper's text: x~ at ``t_sec`` itself, round trip to ``t_sec +
k``. This prints, on a smoke model (trained, or read from the cache), the members' and
non-members' mean t-error and the AUC of

- memobench's SecMI at its default (t_sec 0.1, k 0.01),
- memobench's SecMI at t_sec 0.09 (the authors' grid at their t_sec = 100),
- for a DDPM family, the authors' step written out here from their published code
  (float32 alpha-bar as their ``extract`` reads it), which must agree with the line
  above,

over several t_sec, so a below-chance AUC can be told from a difference of method
(the last two columns agree), and a steady sign from one that changes from one grid
level to the next (on the smoke models it does: docs/measurements.md, "SecMI across
t_sec").

    python benchmarks/secmi_reference.py [--family ddim] [--n-train 64] [--cache DIR]
"""

from __future__ import annotations

import argparse

import torch
from sklearn.metrics import roc_auc_score

from benchmark.attacks.base import get_attack, membership_sets
from benchmark.models.ddpm import DDIMFamily
from benchmark.session import Session
from benchmark.tiers import smoke_case


def authors_t_error(net, alphas_cumprod, x0, t_sec: int, k: int) -> torch.Tensor:
    """(N,) t-errors with the authors' grid and step, on a DDPM's integer steps."""
    abar = alphas_cumprod.double()

    def step(x, t_c, t_target):
        a_c, a_t = abar[t_c].float(), abar[t_target].float()
        eps = net(x, torch.tensor(t_c)).sample
        x0_pred = (x - (1 - a_c).sqrt() * eps) / a_c.sqrt()
        return a_t.sqrt() * x0_pred + (1 - a_t).sqrt() * eps

    x, t_c = x0, 0
    for t in list(range(0, t_sec, k))[1:]:
        x, t_c = step(x, t_c, t), t
    back = step(step(x, t_c, t_c + k), t_c + k, t_c)
    return ((x - back) ** 2).flatten(1).sum(1)


def auc_of(member_scores, nonmember_scores) -> float:
    y = [1] * len(member_scores) + [0] * len(nonmember_scores)
    return float(roc_auc_score(y, torch.cat([member_scores, nonmember_scores]).numpy()))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--family", default="ddim")
    p.add_argument("--n-train", type=int, default=64)
    p.add_argument("--cache", default=None)
    p.add_argument("--t-sec", type=float, nargs="+", default=[0.05, 0.1, 0.2, 0.3])
    args = p.parse_args()

    case = smoke_case(args.family, args.n_train)
    session = Session(args.cache)
    data = session.dataset(case.data)
    model = session.model(case.model, case.train, case.data)
    members, nonmembers = membership_sets(data, max_per_set=512)
    net = model.net.eval()
    print(f"{case.case_id}: {members.shape[0]} members, {nonmembers.shape[0]} non-members")
    print("| t_sec | SecMI AUC (memobench) | t-error members / non-members | "
          "AUC at t_sec - k (authors' grid) | authors' step |")  # fmt: skip
    print("|---|---|---|---|---|")
    for t_sec in args.t_sec:
        row = [f"{t_sec:.2f}"]
        for ts in (t_sec, round(t_sec - 0.01, 9)):
            attack = get_attack("secmi", t_sec=ts, interval=0.01)
            with torch.no_grad():
                m = attack.scores(model, members, seed=0)
                h = attack.scores(model, nonmembers, seed=1)
            row.append(f"{auc_of(m, h):.3f}")
            if ts == t_sec:
                row.append(f"{float(-m.mean()):.3g} / {float(-h.mean()):.3g}")
        if isinstance(model.family, DDIMFamily) and not model.family.latent:
            k, steps = 10, round(t_sec * 1000)
            with torch.no_grad():
                rm = authors_t_error(net, model.family.alphas_cumprod, members, steps, k)
                rh = authors_t_error(net, model.family.alphas_cumprod, nonmembers, steps, k)
            row.append(f"{auc_of(-rm, -rh):.3f}")
        else:
            row.append("— (the authors' code is DDPM-only)")
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
