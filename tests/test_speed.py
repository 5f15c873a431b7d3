"""The speed switches (bf16 autocast, TF32, channels_last, compile) and the batch from free
memory, on the CPU: the GPU path's code, with its numerics and its memory budget checked.
How far bf16 sampling moves the smoke model's figures: suites/test_smoke_speed.py."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from benchmark import registry
from benchmark.audit import audit_key, run_case
from benchmark.batching import image_bytes
from benchmark.config import SamplerConfig, TrainConfig, identity
from benchmark.errors import ConfigError, DeviceError
from benchmark.models.base import TrainedModel
from benchmark.models.training import build_network
from benchmark.record import BATCH_SIZE, CHANNELS_LAST, COMPILED, PRECISION, TF32, TRAIN_PRECISION
from benchmark.session import Session
from benchmark.speed import FastNetwork, Speed, activation_bytes, choose_batch, exact
from benchmark.tiers import Rehearsal, smoke_case

SHAPE = (1, 16, 16)


@pytest.fixture(scope="module")
def ddim_model() -> TrainedModel:
    """The smoke tier's DDIM network at its initial weights (numerics, not memorization)."""
    family_cls = registry.models.get("ddim")
    family = family_cls(family_cls.smoke_configs()[0])
    net = build_network(family, SHAPE, seed=0).eval()
    return TrainedModel(family, net, "untrained-ddim", SHAPE)


def _eps(model: TrainedModel, net: torch.nn.Module, n: int = 8) -> torch.Tensor:
    x = torch.randn((n, *SHAPE), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        return model.family.predict_eps(net, x, model.family.noise.time_at(0.5))


def test_the_fast_network_is_the_network_in_fp32_within_bf16s_precision(ddim_model):
    plain = _eps(ddim_model, ddim_model.net)
    nhwc = Speed(channels_last=True).wrap(ddim_model.net, "cpu")
    assert isinstance(nhwc, FastNetwork) and exact(nhwc) is ddim_model.net
    torch.testing.assert_close(_eps(ddim_model, nhwc), plain, atol=1e-5, rtol=1e-4)

    bf16 = Speed("bf16", channels_last=True).wrap(ddim_model.net, "cpu")
    out = _eps(ddim_model, bf16)
    assert out.dtype == torch.float32, "solvers integrate in fp32 whatever the network ran in"
    err = (out - plain).abs().mean() / plain.abs().mean()
    assert 0 < err < 2e-2, f"bf16's 8-bit mantissa: ~1e-2 relative at most, got {err:.2e}"
    # what the families read off the network passes through, and the weights are the same
    assert bf16.config.block_out_channels == ddim_model.net.config.block_out_channels
    assert sum(p.numel() for p in bf16.parameters()) == sum(
        p.numel() for p in ddim_model.net.parameters()
    )


def test_plain_fp32_on_the_cpu_calls_the_network_itself(ddim_model):
    assert Speed().wrap(ddim_model.net, "cpu") is ddim_model.net
    assert Speed().label() == "fp32"
    assert Speed("bf16", tf32=True, channels_last=True).label() == "bf16+tf32+channels_last"
    with pytest.raises(ConfigError, match="must be one of fp32, bf16, got 'fp16'"):
        Speed("fp16")


def _flags() -> dict:
    """Every getter of both TF32 APIs (any of them raises where the two were mixed)."""
    return {
        "cudnn.allow_tf32": torch.backends.cudnn.allow_tf32,
        "matmul.allow_tf32": torch.backends.cuda.matmul.allow_tf32,
        "float32_matmul_precision": torch.get_float32_matmul_precision(),
        "conv.fp32_precision": torch.backends.cudnn.conv.fp32_precision,
    }


def test_tf32_is_switched_for_the_call_and_restored_and_the_default_leaves_pytorch_alone():
    before = _flags()
    with Speed(tf32=True).backends():
        inside = _flags()  # the old and the new getters agree, none raises
        assert inside["cudnn.allow_tf32"] and inside["matmul.allow_tf32"]
        assert inside["float32_matmul_precision"] == "high"
        assert inside["conv.fp32_precision"] == "tf32"
    with Speed(tf32=False).backends():
        inside = _flags()
        assert not inside["cudnn.allow_tf32"] and not inside["matmul.allow_tf32"]
        assert inside["float32_matmul_precision"] == "highest"
    with Speed().backends():  # PyTorch's own defaults (TF32 convolutions) untouched
        assert _flags() == before
    assert _flags() == before
    assert Speed().plain and Speed(tf32=False).label() == "fp32+ieee"


def test_the_default_speed_calls_the_network_itself_on_any_device(ddim_model):
    assert Speed().wrap(ddim_model.net, "cuda") is ddim_model.net


def test_the_likelihood_runs_in_strict_fp32(monkeypatch):
    """The NLL's network calls run under IEEE fp32 (no TF32 convolutions, PyTorch's
    default on a GPU) whatever the run's switches."""
    from types import SimpleNamespace

    from benchmark.config import DataConfig
    from benchmark.data import load_dataset
    from benchmark.metrics import likelihood
    from benchmark.models.store import family_for
    from benchmark.tiers import AuditCounts, smoke_case

    family = family_for(smoke_case("subvp", 16).model)
    data = load_dataset(DataConfig(n_train=16))
    seen = []

    def predict_eps(net, x, t):
        seen.append((torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32))
        return torch.zeros_like(x)

    def one_call(eps_fn, sde, members, nonmembers, **_):
        eps_fn(members[:1], torch.tensor([0.5]))
        return {}

    monkeypatch.setattr(family, "predict_eps", predict_eps)
    monkeypatch.setattr(likelihood, "nll_gap", one_call)
    inputs = SimpleNamespace(
        context=SimpleNamespace(counts=AuditCounts()), data=data, device="cpu",
        model=SimpleNamespace(net=family.build_network(data.image_shape), family=family),
        case=SimpleNamespace(seed=0), progress=False,
    )  # fmt: skip
    likelihood.Likelihood().compute(inputs)
    assert seen == [(False, False)]
    assert torch.backends.cudnn.allow_tf32, "PyTorch's default is back after the call"


@pytest.mark.parametrize("per_image", [1.0, 3e3, 7.7e5, 2.5e7, 1e9])
@pytest.mark.parametrize("free", [10**6, 3 * 10**9, 141 * 2**30])
@pytest.mark.parametrize("fraction", [0.25, 0.5, 1.0])
def test_the_chosen_batch_never_exceeds_the_budget(per_image, free, fraction):
    try:
        batch = choose_batch(per_image, free, fraction=fraction, floor=1, cap=10**9)
    except DeviceError as err:
        assert per_image > free * fraction, "refused only when not one image fits"
        assert "--memobench-batch-size" in str(err)
        return
    assert batch * per_image <= free * fraction
    assert batch == 10**9 or (batch + 1) * per_image > free * fraction, "it fills the budget"


def test_cap_floor_and_override():
    assert choose_batch(1e3, 10**9, cap=256) == 256
    assert choose_batch(1e9, 10, override=7) == 7, "an explicit batch is taken as given"
    with pytest.raises(DeviceError, match=r"only 3 image\(s\) .* fewer than the floor of 8"):
        choose_batch(100, 700, fraction=0.5, floor=8)
    with pytest.raises(ConfigError, match="--memobench-batch-size must be >= 1"):
        choose_batch(1e3, 10**9, override=0)


@pytest.mark.parametrize("speed", [Speed(), Speed("bf16", channels_last=True)])
def test_a_batch_measured_on_the_network_fits_its_budget(ddim_model, speed):
    """The per-image bytes come from a 2-image probe; the chosen batch, measured in full,
    stays within the budget (memory grows linearly in the batch)."""
    model = replace(ddim_model, net=speed.wrap(ddim_model.net, "cpu"), _last_plain=None)
    per_image = image_bytes(model, torch.device("cpu"))
    budget = 64 * 2**20
    batch = choose_batch(per_image, budget, fraction=1.0, cap=10**6)
    x = torch.zeros((batch, *SHAPE))
    time = model.family.noise.time_at(0.5)
    used = activation_bytes(lambda: model.family.predict_eps(model.net, x, time), model.net)
    assert batch > 8 and used <= budget, (batch, used, budget)


def test_bf16_halves_what_an_image_needs(ddim_model):
    fp32 = image_bytes(ddim_model, torch.device("cpu"))
    fast = replace(ddim_model, net=Speed("bf16").wrap(ddim_model.net, "cpu"), _last_plain=None)
    assert image_bytes(fast, torch.device("cpu")) < 0.75 * fp32


def test_training_precision_keys_a_new_model_and_leaves_the_old_keys_alone():
    assert "precision" not in identity(TrainConfig()), "fp32 models keep their cache keys"
    assert identity(TrainConfig(precision="bf16"))["precision"] == "bf16"
    with pytest.raises(ConfigError, match="train precision must be one of fp32, bf16"):
        TrainConfig(precision="fp8")


def test_an_audit_records_its_switches_and_keys_them(tmp_path):
    """A bf16 + channels_last audit on the CPU (the rehearsal of a GPU runner's flags):
    trained in bf16, sampled, t* and attacks through the fast network, recorded, and
    stored under its own key."""
    speed = Speed("bf16", channels_last=True)
    session = Session(
        tmp_path, n_gen=4, rehearsal=Rehearsal(), progress=False, speed=speed,
        batch_size=3, train_precision="bf16",
    )  # fmt: skip
    base = session.settings.scaled(smoke_case("ddim", 32, n_gen=4))
    case = replace(base, sampler=SamplerConfig(num_steps=2))
    record = run_case(case, session).metrics
    assert record[PRECISION] == "bf16" and record[CHANNELS_LAST] is True
    assert record[TF32] is None and record[COMPILED] is False  # None: PyTorch's defaults
    assert record[BATCH_SIZE] == 3 and record[TRAIN_PRECISION] == "bf16"

    plain = Session(tmp_path, n_gen=4, rehearsal=Rehearsal(), progress=False)
    model = session.model(case.model, case.train, case.data)
    keys = {
        audit_key(case, case.data, model.key, s.detector_config, None, s.counts, "cpu",
                  model.family, (s.settings.speed, s.settings.batch_size))
        for s in (session, plain)
    }  # fmt: skip
    assert len(keys) == 2, "an fp32 run does not reuse a bf16 audit"


def test_the_batch_comes_from_free_memory_unless_given(ddim_model, tmp_path):
    session = Session(tmp_path, progress=False)
    assert session.batch_size(ddim_model, 256) == 256, "the CPU's default when it fits"
    assert Session(tmp_path, progress=False, batch_size=5).batch_size(ddim_model, 256) == 5
    with pytest.raises(ConfigError, match="--memobench-batch-size must be >= 1, got 0"):
        Session(tmp_path, batch_size=0)


def test_the_throughput_benchmark_runs_on_the_cpu():
    """``benchmarks/gpu_throughput.py`` rehearsed: every row, its ratio to fp32 and its
    share of the measured peak (the figures themselves are a GPU's; see README)."""
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_throughput.py"
    run = subprocess.run(
        [sys.executable, str(script), "--device", "cpu", "--quick", "--network", "smoke"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    rows = {
        tuple(line.split()[:2]): line.split()
        for line in run.stdout.splitlines()
        if line.startswith(("train ", "sample "))
    }
    assert set(rows) == {
        ("train", "fp32"), ("train", "bf16"), ("sample", "fp32"), ("sample", "tf32"),
        ("sample", "bf16"), ("sample", "bf16+channels_last"),
    }  # fmt: skip
    for key, cells in rows.items():
        assert float(cells[2]) > 0 and cells[-1].endswith("%"), key
    assert rows[("sample", "fp32")][4] == "1.00" and rows[("train", "fp32")][4] == "1.00"


def test_a_compiled_network_gives_the_networks_output(ddim_model, monkeypatch):
    """``--memobench-compile`` through ``torch.compile``: traced by dynamo here with the
    eager backend (inductor's C++ build takes 80 s on 2 cores; a GPU runner uses it)."""
    from benchmark import speed as speed_module

    monkeypatch.setattr(speed_module, "COMPILE_BACKEND", "eager")
    compiled = Speed(compile=True).wrap(ddim_model.net, "cpu")
    assert compiled._call is not ddim_model.net
    torch.testing.assert_close(_eps(ddim_model, compiled), _eps(ddim_model, ddim_model.net))


@pytest.mark.parametrize(
    ("options", "gpu", "expected"),
    [
        ([], False, Speed()),  # the smoke tier, or any tier on the CPU: PyTorch's defaults
        (["--memobench-tier", "paper"], False, Speed()),
        (["--memobench-tier", "paper"], True, Speed("bf16", tf32=True)),
        (["--memobench-tier", "smoke"], True, Speed()),
        (["--memobench-tier", "paper", "--memobench-precision", "fp32", "--memobench-no-tf32"],
         True, Speed("fp32", tf32=False)),  # strict fp32: one switch away
        (["--memobench-tier", "paper", "--memobench-rehearse"], True, Speed()),
    ],
)  # fmt: skip
def test_the_paper_tier_runs_fast_on_a_gpu_unless_told_otherwise(
    options, gpu, expected, monkeypatch
):
    import argparse

    from benchmark import pytest_plugin

    monkeypatch.setattr(torch.cuda, "is_available", lambda: gpu)
    parser = argparse.ArgumentParser()

    class Group:
        def addoption(self, name, **kw):
            kw.setdefault("dest", name.lstrip("-").replace("-", "_"))
            parser.add_argument(name, **kw)

    class Parser:
        def getgroup(self, *_):
            return Group()

    pytest_plugin.pytest_addoption(Parser())
    values = vars(parser.parse_args(options))

    class Config:
        def getoption(self, name):
            return values[name.lstrip("-").replace("-", "_")]

    assert pytest_plugin.speed_from_options(Config()) == expected
