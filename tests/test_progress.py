"""Progress in a CI log: one line per finished long phase, none on a terminal's bars."""

from __future__ import annotations

import io
import sys

from benchmark import progress


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _phase(monkeypatch, stream, env: str | None, threshold: float = 0.0) -> str:
    monkeypatch.setattr(sys, "__stderr__", stream)
    monkeypatch.setattr(progress, "LINE_AFTER_SECONDS", threshold)
    if env is None:
        monkeypatch.delenv("MEMOBENCH_PROGRESS", raising=False)
    else:
        monkeypatch.setenv("MEMOBENCH_PROGRESS", env)
    with progress.bar(total=5, desc="sample ddim", unit="img", enabled=False) as pbar:
        pbar.update(5)
    return stream.getvalue()


def test_a_ci_log_gets_one_line_per_finished_phase(monkeypatch):
    out = _phase(monkeypatch, io.StringIO(), None)
    lines = out.splitlines()
    assert len(lines) == 1 and lines[0].startswith("memobench: sample ddim: 5 img in 0 s ("), out


def test_short_phases_a_terminal_and_a_silenced_run_get_no_line(monkeypatch):
    assert _phase(monkeypatch, io.StringIO(), None, threshold=60.0) == ""
    assert "memobench:" not in _phase(monkeypatch, _Terminal(), None)
    assert _phase(monkeypatch, io.StringIO(), "0") == ""
