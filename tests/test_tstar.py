"""t* (Algorithm 1) on analytic models where the answer is known."""

import pytest
import torch

from benchmark.config import DataConfig, SamplerConfig
from benchmark.data import load_dataset
from benchmark.errors import ConfigError
from benchmark.measures.tstar import (
    default_grid,
    expected_exhaustive_nfe,
    run_lockstep,
    start_noise,
    tstar,
)
from tests.helpers import mixture_model

SAMPLER = SamplerConfig(num_steps=20)
GRID = [round(0.95 - 0.05 * i, 2) for i in range(20)]  # 0.95 ... 0.00, fast for tests


@pytest.fixture(scope="module")
def data():
    return load_dataset(DataConfig(n_train=16, saf=True))


def test_default_grid():
    grid = default_grid()
    assert len(grid) == 100 and grid[0] == 0.99 and grid[-1] == 0.0


def test_lockstep_equals_one_trajectory_at_a_time(data):
    model, _ = mixture_model(data, 0.3)
    starts = [950, 500, 510, 0, 333]
    noises = torch.stack([start_noise(0, i, 0, (1, 16, 16)) for i in range(5)])
    together, nfe = run_lockstep(model, data.saf.fingerprinted(), starts, SAMPLER, noises)
    for i, s in enumerate(starts):
        alone, _ = run_lockstep(model, data.saf.fingerprinted(), [s], SAMPLER, noises[i : i + 1])
        torch.testing.assert_close(together[i], alone[0], atol=1e-5, rtol=1e-5)
    # each trajectory: its start plus the 50-step grid points below it
    grid = model.family.solver_grid(SAMPLER)
    assert nfe == sum(1 + sum(g < s for g in grid) for s in starts)


def test_a_pure_copier_reproduces_from_everywhere(data):
    model, is_hit = mixture_model(data, 1.0)
    ex = tstar(model, data, is_hit, SAMPLER, "exhaustive", m=4, levels=GRID)
    ad = tstar(model, data, is_hit, SAMPLER, "adaptive", m=4, levels=GRID)
    assert ex.t_star == ad.t_star == 0.95
    assert all(q == 1.0 for q in ex.q)
    assert ex.nfe == expected_exhaustive_nfe(model, SAMPLER, 4, GRID)
    assert ad.trials[0] == 4 and sum(ad.trials) == 4, "stops at the first level, first chunk"
    assert ad.nfe == 4 * 20 < 0.1 * ex.nfe


def test_a_model_that_never_returns_the_fingerprint(data):
    model, _ = mixture_model(data, 0.5)
    never = lambda images: torch.zeros(images.shape[0], dtype=torch.bool)  # noqa: E731
    for strategy in ("exhaustive", "adaptive"):
        result = tstar(model, data, never, SAMPLER, strategy, m=2, levels=GRID)
        assert result.t_star == -1 and result.t_star_label == "none"


@pytest.mark.parametrize("weight", [1e-4, 1e-6])
def test_strategies_agree_and_adaptive_is_cheaper(data, weight):
    model, is_hit = mixture_model(data, weight)
    ex = tstar(model, data, is_hit, SAMPLER, "exhaustive", m=8, levels=GRID)
    ad = tstar(model, data, is_hit, SAMPLER, "adaptive", m=8, levels=GRID)
    assert 0 <= ex.t_star < 0.95, "a rare point is not recovered from pure noise"
    assert ad.t_star == ex.t_star and ad.exact and ex.exact
    assert ad.t_star_upper == ad.t_star == ex.t_star_upper
    assert ad.nfe < ex.nfe
    # monotone q_M(t): a capped scan's bisection lands within a level of it
    capped = tstar(model, data, is_hit, SAMPLER, m=8, levels=GRID, coarse_stride=5, scan_budget=0.1)
    assert abs(ex.t_star - capped.t_star) <= 0.05 + 1e-9, (ex.t_star, capped.t_star)
    # the curve: from x_0 itself the fingerprint always comes back
    assert ex.q[-1] == 1.0
    again = tstar(model, data, is_hit, SAMPLER, "exhaustive", m=8, levels=GRID)
    assert again.t_star == ex.t_star and again.hits == ex.hits, "seeded"


def test_adaptive_is_exact_on_a_curve_with_a_gap(data):
    """w = 0.01 gives a non-monotone q_M(t): hits at 0.8 and 0.7, none at 0.75. The
    default search returns the exhaustive t*; a capped scan bisects to a lower bound and
    says how far it cleared, so a comparison can use the bound that holds."""
    model, is_hit = mixture_model(data, 1e-2)
    ex = tstar(model, data, is_hit, SAMPLER, "exhaustive", m=8, levels=GRID)
    assert ex.t_star == 0.8 and ex.hits[GRID.index(0.75)] == 0 and ex.hits[GRID.index(0.7)]
    ad = tstar(model, data, is_hit, SAMPLER, "adaptive", m=8, levels=GRID)
    assert ad.t_star == 0.8 and ad.exact and ad.nfe < ex.nfe
    record = ad.as_record()
    assert record["tstar_upper"] == 0.8 and record["tstar_exact"] is True
    capped = tstar(model, data, is_hit, SAMPLER, m=8, levels=GRID, coarse_stride=5, scan_budget=0.1)
    assert not capped.exact and capped.t_star <= ex.t_star <= capped.t_star_upper
    assert capped.t_star_upper < GRID[0], "the capped scan cleared the top levels"
    with pytest.raises(ConfigError, match="scan_budget"):
        tstar(model, data, is_hit, SAMPLER, m=8, levels=GRID, scan_budget=0)


def test_no_hit_anywhere_is_exact_none(data):
    model, _ = mixture_model(data, 0.5)
    never = lambda images: torch.zeros(images.shape[0], dtype=torch.bool)  # noqa: E731
    ad = tstar(model, data, never, SAMPLER, m=2, levels=GRID)
    assert ad.t_star == ad.t_star_upper == -1 and ad.exact
    capped = tstar(model, data, never, SAMPLER, m=2, levels=GRID, scan_budget=0.1)
    assert capped.t_star == -1 and capped.t_star_upper > -1 and not capped.exact


def test_bad_inputs(data):
    model, is_hit = mixture_model(data, 0.5)
    with pytest.raises(ConfigError, match="M .* must be >= 1"):
        tstar(model, data, is_hit, SAMPLER, m=0)
    with pytest.raises(ConfigError, match=r"must lie in \[0, 1\)"):
        tstar(model, data, is_hit, SAMPLER, levels=[1.0, 0.5])
    with pytest.raises(ConfigError, match="descending"):
        tstar(model, data, is_hit, SAMPLER, levels=[0.1, 0.5])
    with pytest.raises(ConfigError, match="strategy"):
        tstar(model, data, is_hit, SAMPLER, strategy="greedy")
    plain = load_dataset(DataConfig(n_train=16))
    with pytest.raises(ConfigError, match="has no SAF"):
        tstar(model, plain, is_hit, SAMPLER)


def test_the_exact_scan_finds_a_sporadic_topmost_hit(data):
    """w = 0.01 gives a non-monotone curve (hits at 0.8 and 0.7, none at 0.75): the exact
    top-down scan, given the budget, matches the exhaustive search."""
    model, is_hit = mixture_model(data, 1e-2)
    ex = tstar(model, data, is_hit, SAMPLER, "exhaustive", m=8, levels=GRID)
    ad = tstar(model, data, is_hit, SAMPLER, "adaptive", m=8, levels=GRID, scan_budget=0.5)
    assert ad.t_star == ex.t_star == 0.8
    assert ad.nfe < 0.5 * ex.nfe + 8 * 20


@pytest.mark.parametrize(
    ("weight", "budget"), [(1e-2, 0.5), (1e-2, 0.1), (1e-4, 0.1), (1.0, 0.1), (0.0, 0.1)]
)
def test_a_wide_window_finds_the_same_t_star_in_fewer_calls(data, weight, budget, monkeypatch):
    """The GPU's windowed scan (``window=``) runs several levels' chunks per batch: the same
    t*, the same verdict on every level it decides, far fewer network calls; it spends
    extra NFE only on levels below the topmost hit."""
    import benchmark.measures.tstar as tstar_module

    model, is_hit = mixture_model(data, weight) if weight else (mixture_model(data, 0.5)[0], None)
    if is_hit is None:
        is_hit = lambda images: torch.zeros(images.shape[0], dtype=torch.bool)  # noqa: E731
    calls = []
    lockstep = tstar_module.run_lockstep

    def counted(*args, **kwargs):
        calls.append(len(args[2]))
        return lockstep(*args, **kwargs)

    monkeypatch.setattr(tstar_module, "run_lockstep", counted)
    kw = dict(strategy="adaptive", m=8, levels=GRID, scan_budget=budget, coarse_stride=5)
    narrow = tstar(model, data, is_hit, SAMPLER, **kw)
    narrow_calls, calls[:] = len(calls), []
    wide = tstar(model, data, is_hit, SAMPLER, window=8, **kw)
    assert wide.t_star == narrow.t_star
    for i, (hn, hw) in enumerate(zip(narrow.hits, wide.hits, strict=True)):
        if hn is not None and (wide.t_star < 0 or GRID[i] >= wide.t_star):
            assert bool(hn) == bool(hw), f"level {GRID[i]}: {hn} vs {hw}"
    assert len(calls) <= narrow_calls and max(calls) > 4
    if narrow.t_star < 0 or narrow.t_star == GRID[0]:
        assert wide.nfe >= narrow.nfe  # only speculation can add work
    with pytest.raises(ConfigError, match="window"):
        tstar(model, data, is_hit, SAMPLER, window=0)


def test_the_leaderboard_shows_a_capped_scan_as_a_bracket():
    from benchmark.measures.tstar import TSTAR, TSTAR_EXACT, TSTAR_UPPER
    from benchmark.metrics.fingerprint import Fingerprint

    (column,) = [c for c in Fingerprint.columns() if c.key == TSTAR]
    assert column.text({TSTAR: 0.16, TSTAR_UPPER: 0.16, TSTAR_EXACT: True}) == "0.16"
    assert column.text({TSTAR: -1.0, TSTAR_UPPER: -1.0, TSTAR_EXACT: True}) == "none"
    capped = {TSTAR: 0.05, TSTAR_UPPER: 0.94, TSTAR_EXACT: False}
    assert column.text(capped) == "at least 0.05, at most 0.94"
    assert column.text({**capped, TSTAR: -1.0}) == "none found, at most 0.94"


@pytest.mark.parametrize("budget", [0.0, 1.5, -0.1])
def test_a_bad_scan_budget_is_refused_before_a_run_starts(budget):
    from benchmark.tiers import AuditCounts

    with pytest.raises(ConfigError, match="tstar_scan_budget .* in \\(0, 1\\]"):
        AuditCounts(tstar_scan_budget=budget)
    assert AuditCounts(tstar_scan_budget=0.1).tstar_scan_budget == 0.1
