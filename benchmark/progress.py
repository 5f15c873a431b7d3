"""Progress bars (tqdm, with rate and ETA) for long work.

Bars go to the real terminal even under pytest's capture. They show when
stderr is a terminal or ``MEMOBENCH_PROGRESS=1``; ``MEMOBENCH_PROGRESS=0``
hides them.
"""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager

from tqdm.auto import tqdm


def enabled_by_default() -> bool:
    flag = os.environ.get("MEMOBENCH_PROGRESS")
    if flag is not None:
        return flag not in ("0", "", "false", "no")
    stream = sys.__stderr__
    return bool(stream is not None and stream.isatty())


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
        file=sys.__stderr__,
        disable=not (enabled and enabled_by_default()),
        dynamic_ncols=True,
        leave=False,
        position=position,
    ) as pbar:
        yield pbar
