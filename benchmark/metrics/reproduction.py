"""The reproduction count |q| (SPEC section 3) and its statistics.

|q| = number of generated samples that both C_SAF and C_ID flag. A model that
copies each training image equally often reproduces x_p at rate 1/N_train,
so E|q| = N_gen / N_train. Reported with a Clopper-Pearson 95% interval for
the rate and the exact one-sided binomial test of H0: rate = 1/N_train against
H1: rate < 1/N_train (the paper rejects H0 at 5% when the model does not
reproduce x_p).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from scipy import stats


def clopper_pearson(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Exact two-sided interval for a binomial rate."""
    if n < 1 or not 0 <= k <= n:
        raise ValueError(f"need 0 <= k <= n and n >= 1, got k={k}, n={n}")
    a = 1 - confidence
    lo = 0.0 if k == 0 else float(stats.beta.ppf(a / 2, k, n - k + 1))
    hi = 1.0 if k == n else float(stats.beta.ppf(1 - a / 2, k + 1, n - k))
    return lo, hi


def binomial_p_less(k: int, n: int, p0: float) -> float:
    """Exact one-sided p-value P(X <= k) for X ~ Binomial(n, p0) (H1: rate < p0)."""
    return float(stats.binom.cdf(k, n, p0))


@dataclass
class ReproductionCount:
    n_gen: int
    n_train: int
    q: int
    saf_only: int
    id_only: int
    flagged: list[int] = field(default_factory=list)

    @property
    def expected(self) -> float:
        return self.n_gen / self.n_train

    @property
    def rate(self) -> float:
        return self.q / self.n_gen

    @property
    def interval(self) -> tuple[float, float]:
        return clopper_pearson(self.q, self.n_gen)

    @property
    def p_value(self) -> float:
        return binomial_p_less(self.q, self.n_gen, 1 / self.n_train)

    def as_record(self) -> dict:
        lo, hi = self.interval
        return {
            "q": self.q,
            "q_expected": self.expected,
            "q_rate": self.rate,
            "q_rate_ci": [lo, hi],
            "q_p_value": self.p_value,
            "q_saf_only": self.saf_only,
            "q_id_only": self.id_only,
            "q_flagged": self.flagged,
        }


def count_reproductions(
    saf_positive: torch.Tensor, id_positive: torch.Tensor, n_train: int
) -> ReproductionCount:
    """|q| from the two detectors' verdicts on N_gen samples ((N,) bool each)."""
    if saf_positive.shape != id_positive.shape or saf_positive.ndim != 1:
        raise ValueError("detector verdicts must be two (N,) boolean tensors of equal length")
    if n_train < 1:
        raise ValueError(f"n_train must be >= 1, got {n_train}")
    both = saf_positive & id_positive
    return ReproductionCount(
        n_gen=int(saf_positive.numel()),
        n_train=n_train,
        q=int(both.sum()),
        saf_only=int((saf_positive & ~id_positive).sum()),
        id_only=int((id_positive & ~saf_positive).sum()),
        flagged=torch.nonzero(both).flatten().tolist(),
    )


class Reproductions:
    """Leaderboard column: |q|, samples both detectors flag as SAF(x_p)."""

    higher_is_better = False
    fmt = "{:d}"
    label = "|q|"
    description = (
        "samples flagged by both C_SAF and C_ID as the fingerprinted image "
        "(E|q| = N_gen/N_train for a model that copies each image equally)"
    )

    @staticmethod
    def display(record: dict) -> str | None:
        if record.get("q") is None:
            return None
        return f"{record['q']} / {record['q_expected']:.1f} (p={record['q_p_value']:.2g})"
