import pytest
import torch

from benchmark.device import resolve_device
from benchmark.errors import DeviceError


def test_auto_and_cpu():
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU message")
def test_cuda_without_gpu_says_what_to_do():
    with pytest.raises(DeviceError, match="--memobench-device cpu"):
        resolve_device("cuda")


def test_unknown_device():
    with pytest.raises(DeviceError, match="unknown device 'tpu'"):
        resolve_device("tpu")


def test_an_xdist_worker_takes_its_gpu_makes_it_current_and_names_it(monkeypatch):
    """gw1 on a 4-GPU machine runs on cuda:1, set as the process's current device (so no
    stray tensor or generator lands on cuda:0), and its cases record that GPU's name."""
    import torch

    from benchmark.device import device_name, session_device

    current = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    monkeypatch.setattr(torch.cuda, "set_device", lambda d: current.append(torch.device(d)))
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda i: f"GPU number {i}")
    assert session_device("auto", "gw1", rehearse=False) == torch.device("cuda", 1)
    assert current == [torch.device("cuda", 1)]
    assert device_name(torch.device("cuda", 1)) == "cuda:1 (GPU number 1)"
    assert session_device("auto", None, rehearse=True) == torch.device("cpu")
    assert device_name("cpu") == "cpu"
    assert current == [torch.device("cuda", 1)], "a rehearsal touches no GPU"
