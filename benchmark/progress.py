"""Progress bars (tqdm, with rate and ETA) for long work.

Bars go to the real terminal even under pytest's capture: this module keeps a
copy of the process's stderr from when it was imported, and the pytest plugin
imports it before pytest redirects file descriptor 2. They show when
stderr is a terminal or ``MEMOBENCH_PROGRESS=1``; ``MEMOBENCH_PROGRESS=0``
hides them. Where stderr is not a terminal (a CI log) and the variable is
unset, each phase that took ``LINE_AFTER_SECONDS`` or more leaves one line
instead: ``memobench: <phase>: <n> <unit> in <s> s (<rate>/s)``.
"""

from __future__ import annotations

import os
import sys
import time
from contextlib import contextmanager

from tqdm.auto import tqdm

LINE_AFTER_SECONDS = 10.0


def _real_stderr():
    """A stream on a duplicate of stderr's descriptor: pytest's fd capture, which later
    points descriptor 2 at a temporary file, leaves it on the terminal or CI log."""
    stream = sys.__stderr__
    try:
        return os.fdopen(os.dup(stream.fileno()), "w", buffering=1)
    except (AttributeError, OSError, ValueError):  # no stderr, or no descriptor
        return stream


STDERR = _real_stderr()
STDERR_IS_TTY = bool(STDERR is not None and STDERR.isatty())


def log_lines() -> bool:
    """A CI log: no terminal and no ``MEMOBENCH_PROGRESS`` choice."""
    return os.environ.get("MEMOBENCH_PROGRESS") is None and not STDERR_IS_TTY


def line(text: str) -> None:
    """One ``memobench:`` line on the real stderr, even under pytest's capture, where
    that is a CI log (``log_lines()``); nothing on a terminal, which has the bars."""
    if STDERR is not None and log_lines():
        print(f"memobench: {text}", file=STDERR, flush=True)


def enabled_by_default() -> bool:
    flag = os.environ.get("MEMOBENCH_PROGRESS")
    if flag is not None:
        return flag not in ("0", "", "false", "no")
    return STDERR_IS_TTY


@contextmanager
def bar(
    total: int,
    desc: str,
    unit: str = "it",
    initial: int = 0,
    enabled: bool = True,
    position: int | None = None,
):
    with tqdm(
        total=total,
        initial=initial,
        desc=desc,
        unit=unit,
        file=STDERR,
        disable=not (enabled and enabled_by_default()),
        dynamic_ncols=True,
        leave=False,
        position=position,
    ) as pbar:
        start, done = time.perf_counter(), [0]
        update = pbar.update

        def counted(n: float = 1):  # a disabled tqdm does not count
            done[0] += n
            return update(n)

        pbar.update = counted
        yield pbar
        seconds = time.perf_counter() - start
        if seconds >= LINE_AFTER_SECONDS:
            rate = done[0] / max(seconds, 1e-9)
            line(f"{desc}: {done[0]:g} {unit} in {seconds:.0f} s ({rate:.3g} {unit}/s)")
