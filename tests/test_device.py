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
