"""The one bootstrap interval every metric uses, against normal theory."""

import numpy as np
import pytest
from scipy import stats

from benchmark.measures.bootstrap import bootstrap_ci


def test_two_sample_interval_matches_welch_normal_theory():
    rng = np.random.default_rng(0)
    a, b = rng.normal(0, 1, 400), rng.normal(0.5, 2, 300)
    lo, hi = bootstrap_ci(lambda x, y: y.mean() - x.mean(), [a, b], n_boot=2000, seed=1)
    se = np.sqrt(a.var(ddof=1) / a.size + b.var(ddof=1) / b.size)
    z = stats.norm.ppf(0.975)
    d = b.mean() - a.mean()
    assert lo == pytest.approx(d - z * se, abs=0.25 * se)
    assert hi == pytest.approx(d + z * se, abs=0.25 * se)


def test_rows_of_features_are_resampled_whole_and_vectors_give_one_row_each():
    feats = np.random.default_rng(0).normal(size=(50, 3))
    out = bootstrap_ci(lambda f: np.array([f[:, 0].mean(), 7.0]), [feats], n_boot=200)
    assert out.shape == (2, 2)
    assert out[0, 0] < feats[:, 0].mean() < out[0, 1]
    assert out[1].tolist() == [7.0, 7.0]


def test_no_resamples_or_one_observation_give_nan():
    assert np.isnan(bootstrap_ci(np.mean, [np.arange(5.0)], n_boot=0)).all()
    assert np.isnan(bootstrap_ci(np.mean, [np.arange(1.0)], n_boot=100)).all()
