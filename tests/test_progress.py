"""Progress in a CI log: one line per finished long phase, none on a terminal's bars."""

from __future__ import annotations

import io

from benchmark import progress

pytest_plugins = ["pytester"]


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _phase(monkeypatch, stream, env: str | None, threshold: float = 0.0) -> str:
    monkeypatch.setattr(progress, "STDERR", stream)
    monkeypatch.setattr(progress, "STDERR_IS_TTY", stream.isatty())
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


def test_lines_reach_the_log_past_pytests_fd_capture(pytester, monkeypatch):
    """A real pytest run with fd capture (the default), stderr to a file as in CI."""
    pytester.makepyfile(
        "from benchmark import progress\n"
        "def test_x(monkeypatch):\n"
        "    monkeypatch.setattr(progress, 'LINE_AFTER_SECONDS', 0.0)\n"
        "    with progress.bar(total=3, desc='train ddim', unit='step') as pbar:\n"
        "        pbar.update(3)\n"
    )
    monkeypatch.delenv("MEMOBENCH_PROGRESS", raising=False)
    result = pytester.runpytest_subprocess()
    result.assert_outcomes(passed=1)
    assert any(line.startswith("memobench: train ddim: 3 step in ") for line in result.errlines), (
        result.errlines
    )
