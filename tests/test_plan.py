"""`memobench plan`: FLOPs against a hand count, NFE against the samplers, cache states
against a cache that a real audit filled."""

from dataclasses import replace

import pytest
import torch
from torch import nn

from benchmark import registry
from benchmark.audit import run_case
from benchmark.cache import Cache
from benchmark.config import ModelConfig, SamplerConfig
from benchmark.plan import count_flops, flops_per_eval, format_plan, plan_cases, sampler_nfe
from benchmark.session import Session
from benchmark.tiers import (
    PAPER_MODEL,
    Rehearsal,
    detector_config,
    latent_families,
    paper_case,
    paper_cases,
    pixel_families,
    smoke_case,
)
from tests.helpers import TINY_MODEL, TINY_SAMPLER, TINY_TRAIN, write_medmnist_npz

pytest_plugins = ["pytester"]  # the node-id test collects the real suite


def test_flops_of_a_small_network_match_the_hand_count():
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.Flatten(), nn.Linear(8 * 28 * 28, 10))
    conv = 2 * 3 * 8 * 3 * 3 * 28 * 28  # a multiply and an add per weight and output pixel
    linear = 2 * 8 * 28 * 28 * 10
    assert count_flops(net, torch.zeros(1, 3, 28, 28)) == conv + linear


def test_flops_per_eval_counts_the_padded_paper_network():
    """At 28 px the paper UNet runs on the 32 px padded image: as many FLOPs as at 32 px."""
    from benchmark.models.ddpm import DDIMFamily

    family = DDIMFamily(ModelConfig(**PAPER_MODEL))
    at28 = flops_per_eval(family, (1, 28, 28))
    at32 = flops_per_eval(family, (1, 32, 32))
    assert at28 == at32
    assert 1e9 < at28 < 1e10  # the 25M-parameter UNet at 32 px: a few GFLOP


SAMPLERS = [
    ("ddim", SamplerConfig(num_steps=7)),
    ("subvp", SamplerConfig(name="em", num_steps=5)),
    ("subvp", SamplerConfig(name="ode_heun", num_steps=4)),
]


@pytest.mark.parametrize("family, sampler", SAMPLERS)
def test_sampler_nfe_is_what_the_sampler_reports(family, sampler):

    fam = registry.models.get(family)(replace(TINY_MODEL, family=family))
    net = fam.build_network((1, 8, 8)).eval()
    with torch.no_grad():
        _, nfe = fam.sample(net, torch.randn(2, 1, 8, 8), sampler)
    case = replace(smoke_case(family, 64), sampler=sampler)
    assert sampler_nfe(fam, case, (1, 8, 8)) == nfe


def test_plan_lists_every_paper_case_as_pytest_collects_them(pytester):
    """The plan's node ids are the suite's, so --shard K/N lists the cases the runner runs."""
    import pathlib

    root = pathlib.Path(__file__).resolve().parents[1]
    result = pytester.runpytest(
        str(root / "suites" / "test_paper_fingerprint.py"), "--collect-only", "-q",
        f"--rootdir={root}", "-p", "no:cacheprovider", "-m", "not across_cases",
    )  # fmt: skip
    collected = {line.strip() for line in result.outlines if "::test_" in line}
    assert collected == {node for node, _ in paper_cases()}
    # 11 for each pixel family (22 for ddim, subvp), 1 for each latent one
    assert len(collected) == 11 * len(pixel_families()) + len(latent_families())


def test_plan_reports_cache_states_from_a_cache_a_real_audit_filled(tmp_path):
    rehearsal = Rehearsal()
    ctx = Session(tmp_path, n_gen=4, rehearsal=rehearsal, progress=False)
    base = smoke_case("ddim", 64, n_gen=4)
    audited = replace(base, model=TINY_MODEL, train=TINY_TRAIN, sampler=TINY_SAMPLER)
    other = replace(audited, data=replace(audited.data, n_train=32))
    run_case(audited, ctx)

    # as the run measured them (run_case applies the rehearsal's counts itself)
    scaled = ctx.settings.scaled
    cases = [("suite::case[audited]", scaled(audited)), ("suite::case[other]", scaled(other))]
    plans = plan_cases(cases, ctx.cache, ctx.detector_config, ctx.counts, device_type="cpu")
    state = {p.node_id: p.cached for p in plans}
    assert state["suite::case[audited]"] == {
        "model": "cached", "detectors": "cached", "audit": "cached"
    }  # fmt: skip
    assert state["suite::case[other]"] == {
        "model": "to train", "detectors": "to train", "audit": "to run"
    }  # fmt: skip
    done, todo = plans
    assert done.flops == 0 and todo.flops > 0, "a cached audit costs nothing more"
    train, sampler = scaled(other).train, scaled(other).sampler
    assert todo.nfe["train"] == train.steps * train.batch_size * 3
    assert todo.nfe["sample"] == 4 * sampler.num_steps


def test_plan_shards_and_totals(tmp_path):
    cases = [(f"s::c[{i}]", paper_case("ddim", "breastmnist", 546, n_gen=10)) for i in range(5)]
    counts = Rehearsal().audit
    one = plan_cases(cases, Cache(tmp_path), detector_config("paper"), counts, shard=(1, 2))
    two = plan_cases(cases, Cache(tmp_path), detector_config("paper"), counts, shard=(2, 2))
    assert [p.node_id for p in one] == ["s::c[0]", "s::c[2]", "s::c[4]"]
    assert [p.node_id for p in two] == ["s::c[1]", "s::c[3]"]
    assert all(p.cached["model"] == "no data" for p in one)  # no breastmnist.npz here
    write_medmnist_npz(tmp_path / "breastmnist.npz", n_train=100)  # here, but < 546 images
    small = plan_cases(cases, Cache(tmp_path), detector_config("paper"), counts,
                       data_root=str(tmp_path))  # fmt: skip
    assert {p.cached["model"] for p in small} == {"too small"}
    text = format_plan(one + two, tflops=100)
    assert "shard 1: 3 cases" in text and "shard 2: 2 cases" in text
    total = sum(p.flops for p in one + two)
    assert f"{total / 1e15:.1f} PFLOP" in text
    assert f"predicted {total / 100e12 / 3600:.1f} GPU h (" in text
    assert "at a sustained 100 TFLOP/s" in text


def test_plan_predicts_each_phase_from_measured_rates(tmp_path):
    """Rates measured on the real network (here the CPU, tiny batch) give per-phase hours;
    a phase's hours are its NFE over the rate, training at the training rate."""
    from benchmark.plan import Rates, measure_plans

    cases = [("s::c[0]", paper_case("ddim", "breastmnist", 546, n_gen=10))]
    counts = Rehearsal().audit
    plans = plan_cases(cases, Cache(tmp_path), detector_config("paper"), counts)
    rates = measure_plans(plans, "cpu", batch=2)
    (measured,) = rates.values()
    assert measured.evaluate > 0 and measured.train > 0 and "measured on cpu" in measured.source
    fixed = Rates(evaluate=100.0, train=10.0, source="test")
    seconds = plans[0].phase_seconds(fixed)
    assert seconds["sample"] == plans[0].nfe["sample"] / 100.0
    assert seconds["train"] == plans[0].nfe["train"] / (3 * 10.0)
    key = next(iter(rates))
    text = format_plan(plans, tflops=100, rates={key: fixed})
    hours = sum(seconds.values()) / 3600
    assert f"predicted {hours:.1f} GPU h (train {seconds['train'] / 3600:.1f} h" in text
    assert "test" in text
