"""One bootstrap interval for every metric: scipy's percentile bootstrap.

Each sample is resampled on its own (members and held-out images separately, as
a stratified bootstrap), the statistic may return one value or a vector, and the
interval is the percentile one, as the leaderboard states ("bootstrap 95%").
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence

import numpy as np
from scipy import stats


def bootstrap_ci(
    statistic: Callable[..., float | np.ndarray],
    samples: Sequence[np.ndarray],
    n_boot: int,
    seed: int = 0,
    level: float = 0.95,
) -> np.ndarray:
    """Percentile bootstrap interval of ``statistic(*samples)``.

    Args:
        statistic: takes one array per sample (its rows resampled) and returns a
            number or a 1-d array.
        samples: the samples, each resampled independently.
        n_boot: resamples; 0 gives NaN intervals.

    Returns:
        ``[lo, hi]`` for a number, or ``(k, 2)`` rows of ``[lo, hi]`` for a k-vector.
    """
    samples = [np.asarray(s) for s in samples]
    shape = np.shape(statistic(*samples))
    if n_boot < 1 or min(len(s) for s in samples) < 2:
        return np.full((*shape, 2), np.nan)
    with warnings.catch_warnings():  # a constant statistic (AUC 1.0 throughout) is fine
        warnings.simplefilter("ignore", stats.DegenerateDataWarning)
        # scipy resamples 1-d observations; resampling indices lets an observation be a
        # row of features
        result = stats.bootstrap(
            tuple(np.arange(len(s)) for s in samples),
            lambda *idx: statistic(*(s[i.astype(int)] for s, i in zip(samples, idx, strict=True))),
            n_resamples=n_boot,
            confidence_level=level,
            method="percentile",
            vectorized=False,
            random_state=np.random.default_rng(seed),
        )
    ci = result.confidence_interval
    return np.stack([np.asarray(ci.low, dtype=float), np.asarray(ci.high, dtype=float)], axis=-1)
