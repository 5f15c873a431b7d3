"""Nothing memobench reads from disk can run code (issue 18): the cache, training
checkpoints and users' model folders.

Each crafted file carries a pickle whose unpickling would write ``PWNED`` (the
classic ``__reduce__`` payload). The tests check the refusal and that the file
the payload would have written does not exist.
"""

from __future__ import annotations

import logging
import math

import numpy as np
import pytest
import torch

from benchmark import safe_format
from benchmark.cache import Cache
from benchmark.config import ModelConfig, TrainConfig
from benchmark.errors import CheckpointError
from benchmark.models import training
from benchmark.models.ddpm import DDIMFamily


class Payload:
    """Unpickling this calls ``open(marker, "w")``: code run by a load."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def crafted(path, marker):
    """A file that writes ``marker`` when unpickled (``torch.load(weights_only=False)``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"memobench_cache": 1, "payload": Payload(marker)}, path)
    return path


def test_the_payload_really_runs_when_unpickled(tmp_path):
    """The control: the crafted file does run code under a plain unpickler."""
    path = crafted(tmp_path / "x.pt", tmp_path / "PWNED")
    torch.load(path, weights_only=False)
    assert (tmp_path / "PWNED").exists()


def test_a_crafted_cache_entry_is_refused_moved_aside_and_rebuilt(tmp_path, caplog):
    cache = Cache(tmp_path / "cache")
    marker = tmp_path / "PWNED"
    path = crafted(cache.path("models", "k"), marker)
    with caplog.at_level(logging.WARNING, logger="memobench.cache"):
        value, reused = cache.get_or_create("models", "k", lambda: {"w": torch.ones(2)})
    assert not marker.exists(), "loading the cache ran the payload"
    assert not reused and torch.equal(value["w"], torch.ones(2))
    assert "corrupt or truncated" in caplog.text and "rebuilding" in caplog.text
    assert len(list(path.parent.glob("k.safetensors.corrupt-*"))) == 1


def test_an_entry_of_the_old_pickle_format_is_never_read(tmp_path):
    cache = Cache(tmp_path / "cache")
    marker = tmp_path / "PWNED"
    crafted(cache.root / "audits" / "k.pt", marker)  # where format 1 kept it
    value, reused = cache.get_or_create("audits", "k", lambda: {"fresh": True})
    assert value == {"fresh": True} and not reused and not marker.exists()


def test_a_crafted_training_checkpoint_is_refused(tmp_path):
    marker = tmp_path / "PWNED"
    family = DDIMFamily(ModelConfig(block_out_channels=(4, 8), norm_num_groups=4))
    crafted(tmp_path / "ckpt" / "last.pt", marker)
    images = torch.rand(4, 1, 8, 8) * 2 - 1
    with pytest.raises(CheckpointError, match="corrupt"):
        training.train(family, images, TrainConfig(steps=2, batch_size=2), tmp_path / "ckpt")
    assert not marker.exists()


def test_a_model_folder_with_pickle_weights_is_refused(tmp_path):
    from benchmark import registry

    family = DDIMFamily(ModelConfig(block_out_channels=(4, 8), norm_num_groups=4))
    net = family.build_network((1, 16, 16))
    folder = tmp_path / "model"
    family.save_pretrained(net, folder)
    for weights in (folder / "unet").glob("*.safetensors"):
        weights.unlink()
    marker = tmp_path / "PWNED"
    crafted(folder / "unet" / "diffusion_pytorch_model.bin", marker)
    with pytest.raises(CheckpointError, match=r"pickle weights \(.bin\) only"):
        registry.models.get("ddim").load_pretrained(folder)
    assert not marker.exists()


def test_round_trip_of_every_stored_type(tmp_path):
    base = torch.arange(12.0).view(3, 4)
    obj = {
        "state_dict": {"a.weight": base, "a.view": base[1], "b": torch.zeros(0, dtype=torch.uint8)},
        "same": base,  # the same tensor twice is stored once
        "ci": (0.25, 0.75),
        "steps": [(1, 0.5), (2, float("nan"))],
        "by_int": {1: "one", 2: [True, None]},
        "dunder": {"__tensor__": "not a tensor"},
        "array": np.arange(3, dtype=np.int16),
        "scalar": np.float32(1.5),
        "inf": math.inf,
    }
    safe_format.save(obj, tmp_path / "x.safetensors")
    back = safe_format.load(tmp_path / "x.safetensors")
    assert torch.equal(back["state_dict"]["a.weight"], base)
    assert torch.equal(back["state_dict"]["a.view"], base[1])
    assert back["state_dict"]["b"].shape == (0,) and back["state_dict"]["b"].dtype == torch.uint8
    assert torch.equal(back["same"], base)
    assert back["ci"] == (0.25, 0.75)
    assert back["steps"][0] == (1, 0.5) and math.isnan(back["steps"][1][1])
    assert back["by_int"] == {1: "one", 2: [True, None]}
    assert back["dunder"] == {"__tensor__": "not a tensor"}
    assert back["array"].dtype == np.int16 and back["array"].tolist() == [0, 1, 2]
    assert back["scalar"] == 1.5 and back["inf"] == math.inf


def test_a_value_that_needs_pickle_is_refused_at_save(tmp_path):
    with pytest.raises(safe_format.UnsafeValueError, match=r"payload\.f is a builtins\."):
        safe_format.save({"f": print}, tmp_path / "x.safetensors")
    with pytest.raises(safe_format.UnsafeValueError, match="Python objects"):
        safe_format.save({"a": np.array([object()])}, tmp_path / "x.safetensors")


def test_no_unrestricted_unpickling_in_the_package():
    """Every torch.load in the package uses the restricted unpickler, and nothing
    imports pickle."""
    from pathlib import Path

    import benchmark

    root = Path(benchmark.__file__).parent
    for source in root.rglob("*.py"):
        text = source.read_text()
        assert "weights_only=False" not in text, source
        assert "import pickle" not in text, source
        for line in text.splitlines():
            if "torch.load(" in line:
                assert "weights_only=True" in line, f"{source}: {line.strip()}"
