"""`memobench doctor`: a line per check, and the fix where something would stop a run."""

from __future__ import annotations

import pytest
import torch

from benchmark.cli import main
from tests.helpers import write_medmnist_npz


def test_this_machine_is_ready_on_the_cpu(tmp_path, capsys):
    assert main(["doctor", "--device", "cpu", "--cache", str(tmp_path / "cache")]) == 0
    out = capsys.readouterr().out
    assert "ok    torch" in out and "ok    device         cpu -> cpu" in out
    assert f"{tmp_path / 'cache'}: writable" in out and out.rstrip().endswith("ready")


def test_a_cache_folder_that_cannot_be_written_names_the_fix(tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    assert main(["doctor", "--device", "cpu", "--cache", str(blocker / "cache")]) == 1
    out = capsys.readouterr().out
    assert "FAIL  cache" in out and "not writable" in out
    assert "pass --cache DIR (or set MEMOBENCH_CACHE)" in out
    assert "1 check(s) failed" in out


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_without_cuda_names_the_fix(tmp_path, capsys):
    assert main(["doctor", "--device", "cuda", "--cache", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "FAIL  device" in out and "use --device cpu (or auto)" in out


def test_the_data_root_s_files_are_listed(tmp_path, capsys):
    write_medmnist_npz(tmp_path / "pneumoniamnist.npz")
    (tmp_path / "notes.npz").write_bytes(b"")
    assert main(["doctor", "--device", "cpu", "--cache", str(tmp_path / "c"),
                 "--data-root", str(tmp_path)]) == 0  # fmt: skip
    assert f"{tmp_path}: pneumoniamnist.npz" in capsys.readouterr().out
    assert main(["doctor", "--device", "cpu", "--cache", str(tmp_path / "c"),
                 "--data-root", str(tmp_path / "nowhere")]) == 1  # fmt: skip
    assert "no such folder" in capsys.readouterr().out
