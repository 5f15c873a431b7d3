"""Shared training services: resume after a kill ends with the same weights."""

from dataclasses import replace

import pytest
import torch

from benchmark.config import DataConfig
from benchmark.data import load_dataset
from benchmark.errors import CheckpointError
from benchmark.models.ddpm import DDIMFamily
from benchmark.models.dummy import DummyFamily
from benchmark.models.training import TrainingInterrupted, train
from tests.helpers import TINY_MODEL, TINY_TRAIN


@pytest.fixture(scope="module")
def images():
    data = load_dataset(DataConfig(n_train=16))
    return torch.nn.functional.avg_pool2d(data.train, 2)  # 8x8, tiny and fast


def _weights(net):
    return {k: v.clone() for k, v in net.state_dict().items()}


def test_resume_after_kill_gives_same_weights(tmp_path, images):
    family = DDIMFamily(TINY_MODEL)
    ref, ref_stats = train(family, images, TINY_TRAIN, tmp_path / "a", progress=False)
    # a kill after step 5: the last checkpoint is step 4, nothing saved at the kill
    with pytest.raises(TrainingInterrupted):
        train(family, images, TINY_TRAIN, tmp_path / "b", progress=False, stop_after=5)
    assert (tmp_path / "b" / "last.pt").exists()
    assert torch.load(tmp_path / "b" / "last.pt", weights_only=False)["step"] == 4
    resumed, stats = train(family, images, TINY_TRAIN, tmp_path / "b", progress=False)
    for k, v in _weights(ref).items():
        assert torch.equal(v, resumed.state_dict()[k]), k
    assert stats["loss_history"] == ref_stats["loss_history"]
    assert not (tmp_path / "b" / "last.pt").exists(), "checkpoint removed once finished"


def test_ctrl_c_writes_a_checkpoint(tmp_path, images, monkeypatch):
    family = DummyFamily(TINY_MODEL)
    calls = {"n": 0}
    real_loss = family.loss

    def loss(net, x0, gen):
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt
        return real_loss(net, x0, gen)

    monkeypatch.setattr(family, "loss", loss)
    cfg = replace(TINY_TRAIN, checkpoint_every=100)
    with pytest.raises(KeyboardInterrupt):
        train(family, images, cfg, tmp_path, progress=False)
    state = torch.load(tmp_path / "last.pt", weights_only=False)
    assert state["step"] == 3, "the steps done before Ctrl-C are kept"


def test_checkpoint_of_another_family_is_refused(tmp_path, images):
    with pytest.raises(TrainingInterrupted):
        train(DummyFamily(TINY_MODEL), images, TINY_TRAIN, tmp_path, progress=False, stop_after=3)
    with pytest.raises(CheckpointError, match="belongs to family 'dummy'"):
        train(DDIMFamily(TINY_MODEL), images, TINY_TRAIN, tmp_path, progress=False)


def test_corrupt_checkpoint_is_refused(tmp_path, images):
    (tmp_path / "last.pt").write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="corrupt"):
        train(DDIMFamily(TINY_MODEL), images, TINY_TRAIN, tmp_path, progress=False)


def test_lr_schedules():
    from benchmark.config import TrainConfig
    from benchmark.models.training import lr_factor

    const = TrainConfig(steps=100, warmup_steps=10)
    assert lr_factor(const, 0) == pytest.approx(0.1) and lr_factor(const, 50) == 1.0
    cos = TrainConfig(steps=100, warmup_steps=10, lr_schedule="cosine")
    assert lr_factor(cos, 50) == pytest.approx(0.5)
    assert lr_factor(cos, 100) == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(Exception, match="lr_schedule"):
        TrainConfig(lr_schedule="step")


def test_a_checkpoint_of_another_device_type_resumes_with_a_fresh_stream(caplog):
    """A CPU checkpoint resumed on a GPU (a CUDA generator takes no CPU state): the
    weights resume and the stream restarts from (seed, step), said in the log; the same
    device type continues the stream exactly."""
    from benchmark.models.training import restore_generator

    gen = torch.Generator().manual_seed(5)
    torch.rand(3, generator=gen)
    state = {"gen": gen.get_state(), "gen_device": "cpu", "step": 7}
    expected = torch.rand(3, generator=gen)
    same = torch.Generator()
    assert restore_generator(same, state, seed=0)
    assert torch.equal(torch.rand(3, generator=same), expected)

    elsewhere = torch.Generator()
    assert not restore_generator(elsewhere, dict(state, gen_device="cuda"), seed=0)
    again = torch.Generator().manual_seed(7)
    assert torch.equal(torch.rand(3, generator=elsewhere), torch.rand(3, generator=again))
    assert "written on cuda and resumes on cpu" in caplog.text


def test_a_non_finite_loss_stops_training_within_one_logging_window(tmp_path, images, monkeypatch):
    """The loss is read on the host once per LOSS_LOG_EVERY steps (no sync per step): a
    NaN at step 3 stops training at the end of its window, naming the steps."""
    from benchmark.models.training import LOSS_LOG_EVERY

    family = DummyFamily(TINY_MODEL)
    real_loss, calls = family.loss, {"n": 0}

    def loss(net, x0, gen):
        calls["n"] += 1
        out = real_loss(net, x0, gen)
        return out * float("nan") if calls["n"] == 3 else out

    monkeypatch.setattr(family, "loss", loss)
    cfg = replace(TINY_TRAIN, steps=3 * LOSS_LOG_EVERY, checkpoint_every=100)
    with pytest.raises(FloatingPointError, match=f"became nan within steps 1-{LOSS_LOG_EVERY}"):
        train(family, images, cfg, tmp_path, progress=False)
    assert calls["n"] == LOSS_LOG_EVERY


def test_a_checkpoint_from_before_the_device_field_is_read_by_its_state_s_size():
    """Checkpoints written before they named their generator's device: a 16-byte state is
    a CUDA generator's (resumed on a GPU it continues), a CPU one's is thousands."""
    from benchmark.models.training import restore_generator

    gen = torch.Generator().manual_seed(3)
    assert restore_generator(torch.Generator(), {"gen": gen.get_state(), "step": 1}, seed=0)
    cuda_like = {"gen": torch.zeros(16, dtype=torch.uint8), "step": 1}
    assert not restore_generator(torch.Generator(), cuda_like, seed=0)
