import logging

import pytest

from benchmark.cache import Cache, default_root
from benchmark.errors import CacheError


def test_roundtrip_and_reuse(tmp_path, caplog):
    cache = Cache(tmp_path)
    calls = []

    def build():
        calls.append(1)
        return {"w": [1, 2, 3]}

    with caplog.at_level(logging.INFO, logger="memobench.cache"):
        first, reused1 = cache.get_or_create("things", "k1", build)
        second, reused2 = cache.get_or_create("things", "k1", build)
    assert first == second == {"w": [1, 2, 3]}
    assert (reused1, reused2) == (False, True) and len(calls) == 1
    assert "reusing cached things k1" in caplog.text
    assert not list(tmp_path.rglob("*.tmp"))  # atomic write left no temp file


def test_truncated_entry_is_an_error_then_moved_aside(tmp_path, caplog):
    cache = Cache(tmp_path)
    path = cache.save("things", "k1", {"w": list(range(1000))})
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(CacheError, match="corrupt or truncated"):
        cache.load("things", "k1")
    with caplog.at_level(logging.WARNING, logger="memobench.cache"):
        value, reused = cache.get_or_create("things", "k1", lambda: "fresh")
    assert value == "fresh" and not reused
    kept = list(path.parent.glob("k1.safetensors.corrupt-*"))
    assert len(kept) == 1, "the bad file is kept for inspection, not deleted"
    assert "rebuilding" in caplog.text


def test_entry_of_another_config_is_refused(tmp_path):
    cache = Cache(tmp_path)
    src = cache.save("things", "other", 1)
    src.rename(cache.path("things", "mine"))
    with pytest.raises(CacheError, match="another config"):
        cache.load("things", "mine")


def test_foreign_file_is_refused(tmp_path):
    import torch
    from safetensors.torch import save_file

    cache = Cache(tmp_path)
    cache.path("things", "k").parent.mkdir(parents=True)
    save_file({"w": torch.zeros(3)}, str(cache.path("things", "k")))
    with pytest.raises(CacheError, match="not a memobench cache file"):
        cache.load("things", "k")
    torch.save({"some": "checkpoint"}, cache.path("things", "k"))  # a pickle
    with pytest.raises(CacheError, match="corrupt or truncated"):
        cache.load("things", "k")


def test_root_resolution(monkeypatch, tmp_path):
    monkeypatch.setenv("MEMOBENCH_CACHE", str(tmp_path / "env"))
    assert default_root() == tmp_path / "env"
    assert default_root(tmp_path / "opt") == tmp_path / "opt"
    monkeypatch.delenv("MEMOBENCH_CACHE")
    assert default_root().name == "memobench"


def test_atomic_write_gives_the_usual_permissions(tmp_path):
    import os

    from benchmark.cache import atomic_write

    out = tmp_path / "page.html"
    atomic_write(out, lambda tmp: tmp.write_text("x"))
    umask = os.umask(0)
    os.umask(umask)
    assert out.stat().st_mode & 0o777 == 0o666 & ~umask


def test_get_or_create_rebuild_overwrites_what_is_stored(tmp_path):
    from benchmark.cache import Cache

    cache = Cache(tmp_path)
    first, reused = cache.get_or_create("x", "k", lambda: {"v": 1})
    assert first == {"v": 1} and not reused
    again, reused = cache.get_or_create("x", "k", lambda: {"v": 2})
    assert again == {"v": 1} and reused
    fresh, reused = cache.get_or_create("x", "k", lambda: {"v": 2}, rebuild=True)
    assert fresh == {"v": 2} and not reused
    assert cache.get_or_create("x", "k", lambda: {"v": 3})[0] == {"v": 2}


# Two real processes build one entry: the build records itself in ``builds``, waits on
# ``hold`` (a file the test removes) so the other process arrives while it builds, and
# returns a payload that depends on the process (so a second build would show).
BUILDER = r"""
import json, os, sys, time
from pathlib import Path
import torch
from benchmark.cache import Cache

root, scratch, hold = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3] == "hold"

def build():
    with open(scratch / "builds", "a") as f:
        f.write(f"{os.getpid()}\n")
    (scratch / f"building-{os.getpid()}").touch()
    while hold and (scratch / "hold").exists():
        time.sleep(0.05)
    return {"weights": torch.full((3,), float(os.getpid())), "pid": os.getpid()}

payload, reused = Cache(root).get_or_create("models", "k1", build, what="demo model")
print(json.dumps({"pid": payload["pid"], "sum": float(payload["weights"].sum()), "reused": reused}))
"""


def _builder(root, scratch, hold: bool, name: str):
    """A builder process; its stderr goes to ``scratch/name.err``."""
    import subprocess
    import sys

    return subprocess.Popen(
        [sys.executable, "-c", BUILDER, str(root), str(scratch), "hold" if hold else "go"],
        stdout=subprocess.PIPE,
        stderr=(scratch / f"{name}.err").open("w"),
        text=True,
    )


def _wait_for(predicate, seconds: float = 60.0) -> None:
    import time

    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_two_processes_build_an_entry_once_and_share_it(tmp_path):
    import json

    root, scratch = tmp_path / "cache", tmp_path / "scratch"
    scratch.mkdir()
    (scratch / "hold").touch()
    first = _builder(root, scratch, hold=True, name="first")
    _wait_for(lambda: any(scratch.glob("building-*")))  # the first holds the lock
    second = _builder(root, scratch, hold=True, name="second")
    # the second says it waits (one line in the log) before the first may finish
    _wait_for(lambda: "waiting for its lock" in (scratch / "second.err").read_text())
    (scratch / "hold").unlink()
    outs = []
    for proc, name in ((first, "first"), (second, "second")):
        out, _ = proc.communicate(timeout=120)
        assert proc.returncode == 0, (scratch / f"{name}.err").read_text()
        outs.append(json.loads(out.strip().splitlines()[-1]))
    assert len((scratch / "builds").read_text().split()) == 1, "built twice"
    assert outs[0] == {**outs[1], "reused": False} and outs[1]["reused"] is True
    assert outs[1]["pid"] == first.pid


def test_a_builder_killed_mid_build_leaves_no_one_stuck(tmp_path):
    import json
    import signal

    root, scratch = tmp_path / "cache", tmp_path / "scratch"
    scratch.mkdir()
    (scratch / "hold").touch()
    doomed = _builder(root, scratch, hold=True, name="doomed")
    _wait_for(lambda: any(scratch.glob("building-*")))
    doomed.send_signal(signal.SIGKILL)  # dies holding the lock, mid-build
    doomed.wait(timeout=30)
    survivor = _builder(root, scratch, hold=False, name="survivor")
    out, _ = survivor.communicate(timeout=120)
    assert survivor.returncode == 0, (scratch / "survivor.err").read_text()
    got = json.loads(out.strip().splitlines()[-1])
    assert got == {"pid": survivor.pid, "sum": 3.0 * survivor.pid, "reused": False}
    assert (scratch / "builds").read_text().split() == [str(doomed.pid), str(survivor.pid)]
    assert Cache(root).load("models", "k1")["pid"] == survivor.pid  # nothing half-written
