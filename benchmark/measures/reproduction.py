"""The reproduction count |q| (docs/science.md, the fingerprint) and its statistics.

|q| = number of generated samples that both C_SAF and C_ID flag. A model that
copies each training image equally often reproduces x_p at rate 1/N_train,
so E|q| = N_gen / N_train. Reported with a Clopper-Pearson 95% interval for
the rate and the exact one-sided binomial test of H0: rate = 1/N_train against
H1: rate < 1/N_train (the paper rejects H0 at 5% when the model does not
reproduce x_p).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from scipy import stats

from benchmark.measures.carlini_l2 import nearest_two
from benchmark.record import Field

Q = Field("q", "int", "samples both C_SAF and C_ID flag as SAF(x_p): the reproductions |q|")
Q_EXPECTED = Field("q_expected", "float", "E|q| = N_gen/N_train for a model copying evenly")
Q_RATE = Field("q_rate", "float", "|q| / N_gen")
Q_RATE_CI = Field("q_rate_ci", "list", "Clopper-Pearson 95% interval of q_rate [lo, hi]")
Q_P_VALUE = Field("q_p_value", "float", "exact binomial p of H0 rate = 1/N_train vs. less")
Q_CONCLUSIVE = Field("q_conclusive", "bool", "whether N_gen can reject H0 at 5% at all")
Q_MIN_N_GEN = Field("q_min_n_gen", "int", "the smallest N_gen that can reject H0 at 5%")
Q_POWER = Field(
    "q_power",
    "float",
    "power of the binomial test at this N_gen: P(reject H0 at 5%) if x_p were never copied "
    "(|q| then counts the detectors' joint false positives, at the upper end of the "
    "two-sided 95% Clopper-Pearson interval of their measured rate)",
)
Q_POWER_N_GEN = Field(
    "q_power_n_gen",
    "int",
    "the N_gen at which that power reaches 0.8 (None: never, the detectors fire too often)",
    nullable=True,
)
Q_FALSE_POSITIVE_RATE = Field(
    "q_false_positive_rate",
    "float",
    "share of images that are not x_p (held-out images, plain and with sampler artefacts; "
    "generated samples whose nearest training image is not SAF(x_p)) both detectors flag",
)
Q_FALSE_POSITIVE_UPPER = Field(
    "q_false_positive_upper",
    "float",
    "upper end of that rate's two-sided 95% Clopper-Pearson interval (a one-sided 97.5% "
    "bound): what the power is computed from",
)
Q_FALSE_POSITIVE_COUNTS = Field(
    "q_false_positive_counts",
    "dict",
    "both detectors' hits and images judged, per source: {source: [hits, images]}",
)
Q_SAF_ONLY = Field("q_saf_only", "int", "samples only C_SAF flags")
Q_ID_ONLY = Field("q_id_only", "int", "samples only C_ID flags")
Q_FLAGGED = Field("q_flagged", "list", "indices of the |q| flagged samples")
REPRODUCTION_FIELDS = (
    Q,
    Q_EXPECTED,
    Q_RATE,
    Q_RATE_CI,
    Q_P_VALUE,
    Q_CONCLUSIVE,
    Q_MIN_N_GEN,
    Q_POWER,
    Q_POWER_N_GEN,
    Q_FALSE_POSITIVE_RATE,
    Q_FALSE_POSITIVE_UPPER,
    Q_FALSE_POSITIVE_COUNTS,
    Q_SAF_ONLY,
    Q_ID_ONLY,
    Q_FLAGGED,
)


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


def fewer_reproductions_p(q_a: int, n_a: int, q_b: int, n_b: int) -> float:
    """One-sided Fisher exact p-value of H1: rate a < rate b (|q| of two cases).

    Compares a mitigated case (a) with `none` (b) on their samples: conditional
    on the total number of reproductions, P(a gets q_a or fewer of them).
    """
    for q, n in ((q_a, n_a), (q_b, n_b)):
        if n < 1 or not 0 <= q <= n:
            raise ValueError(f"need 0 <= q <= n and n >= 1, got q={q}, n={n}")
    table = [[q_a, n_a - q_a], [q_b, n_b - q_b]]
    return float(stats.fisher_exact(table, alternative="less").pvalue)


def min_n_gen_to_reject(n_train: int, alpha: float = 0.05) -> int:
    """The fewest samples with which |q| = 0 rejects H0: rate = 1/N_train at level ``alpha``.

    A model that never copies x_p gives |q| = 0, whose p-value is (1 - 1/N_train)^N_gen;
    below this N_gen the test cannot reject H0 whatever the model does (zero power).
    N_train = 50000 needs 149786: the seed paper drew 150000 samples for its Table 1.
    """
    if n_train < 1 or not 0 < alpha < 1:
        raise ValueError(f"need n_train >= 1 and 0 < alpha < 1, got {n_train}, {alpha}")
    if n_train == 1:
        return 1
    return math.ceil(math.log(alpha) / math.log1p(-1 / n_train))


def can_reject(n_gen: int, n_train: int, alpha: float = 0.05) -> bool:
    """Whether N_gen samples can reject H0 at all (power 1 against "never copies x_p",
    0 below ``min_n_gen_to_reject``)."""
    return binomial_p_less(0, n_gen, 1 / n_train) < alpha


def critical_count(n_gen: int, n_train: int, alpha: float = 0.05) -> int:
    """The largest |q| that rejects H0 (rate = 1/N_train) at ``alpha``; -1 when none can."""
    k = int(stats.binom.ppf(alpha, n_gen, 1 / n_train))  # smallest k with cdf(k) >= alpha
    while k >= 0 and binomial_p_less(k, n_gen, 1 / n_train) >= alpha:
        k -= 1
    return k


def q_power(n_gen: int, n_train: int, false_positive_rate: float = 0.0, alpha: float = 0.05):
    """P(the test rejects H0 at ``alpha``) when x_p is never copied: |q| is then
    Binomial(N_gen, false_positive_rate), the detectors' joint false positives."""
    if not 0 <= false_positive_rate <= 1:
        raise ValueError(f"a false-positive rate is in [0, 1], got {false_positive_rate}")
    k = critical_count(n_gen, n_train, alpha)
    return 0.0 if k < 0 else float(stats.binom.cdf(k, n_gen, false_positive_rate))


def n_gen_for_power(
    n_train: int,
    false_positive_rate: float = 0.0,
    target: float = 0.8,
    alpha: float = 0.05,
    limit: int = 10**9,
) -> int | None:
    """The smallest N_gen (to within the search's bracketing) whose power reaches
    ``target``; None when no N_gen up to ``limit`` does."""
    if false_positive_rate >= 1 / n_train:
        return None  # the detectors alone fire at the rate a copying model would
    lo, hi = max(1, min_n_gen_to_reject(n_train, alpha)), 0
    if q_power(lo, n_train, false_positive_rate, alpha) >= target:
        return lo
    hi = lo
    while q_power(hi, n_train, false_positive_rate, alpha) < target:
        lo, hi = hi, hi * 2
        if hi > limit:
            return None
    while hi - lo > max(1, lo // 1000):
        mid = (lo + hi) // 2
        if q_power(mid, n_train, false_positive_rate, alpha) >= target:
            hi = mid
        else:
            lo = mid
    return hi


@dataclass
class ReproductionCount:
    n_gen: int
    n_train: int
    q: int
    saf_only: int
    id_only: int
    flagged: list[int] = field(default_factory=list)
    # both detectors' hits on images that are not x_p, per source: {source: (hits, images)};
    # none judged: the power is that of detectors that never err (an upper bound on it)
    false_positives: dict[str, tuple[int, int]] = field(default_factory=dict)

    @property
    def false_positive_rate(self) -> float:
        hits, n = self._pooled()
        return hits / n if n else 0.0

    @property
    def false_positive_upper(self) -> float:
        """Upper end of the rate's two-sided 95% Clopper-Pearson interval (0 hits of 128
        images: 2.8%)."""
        hits, n = self._pooled()
        return clopper_pearson(hits, n)[1] if n else 0.0

    def _pooled(self) -> tuple[int, int]:
        for source, (hits, n) in self.false_positives.items():
            if not 0 <= hits <= n:
                raise ValueError(f"false positives of {source!r}: need 0 <= hits <= images")
        return (
            sum(h for h, _ in self.false_positives.values()),
            sum(n for _, n in self.false_positives.values()),
        )

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
            Q: self.q,
            Q_EXPECTED: self.expected,
            Q_RATE: self.rate,
            Q_RATE_CI: [lo, hi],
            Q_P_VALUE: self.p_value,
            # whether this N_gen could tell "never copies x_p" at 5%, and the N_gen that can
            Q_CONCLUSIVE: can_reject(self.n_gen, self.n_train),
            Q_MIN_N_GEN: min_n_gen_to_reject(self.n_train),
            # from the rate's upper bound: a rate measured as 0 on a few images may still
            # be above 1/N_train, where the test has no power at all
            Q_POWER: q_power(self.n_gen, self.n_train, self.false_positive_upper),
            Q_POWER_N_GEN: n_gen_for_power(self.n_train, self.false_positive_upper),
            Q_FALSE_POSITIVE_RATE: self.false_positive_rate,
            Q_FALSE_POSITIVE_UPPER: self.false_positive_upper,
            Q_FALSE_POSITIVE_COUNTS: {k: list(v) for k, v in self.false_positives.items()},
            Q_SAF_ONLY: self.saf_only,
            Q_ID_ONLY: self.id_only,
            Q_FLAGGED: self.flagged,
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


def confirmed_by_nearest(
    images: torch.Tensor, flagged: list[int], train: torch.Tensor, saf_index: int
) -> int:
    """How many flagged samples have SAF(x_p) (row ``saf_index``) as nearest training image.

    A check on the detectors that needs no training: a sample both detectors call
    SAF(x_p) but whose closest member is another image is a detector error, or a
    blend the pixel distance does not see as a copy.
    """
    if not flagged:
        return 0
    _, _, nearest = nearest_two(images[flagged], train)
    return int((nearest == saf_index).sum())
