"""Wall-clock figures for the command line's closing line: the whole run from the start of the command,
and its parts, so that a run of two minutes never reports only the seconds of its last stage."""

from __future__ import annotations

import time

STARTED = time.perf_counter()  # the command line imports this first: the clock starts with the process


def run_time(loaded: float) -> str:
    """'115.2 s in all: 2.1 s checking and loading, 113.1 s animating and writing' (``loaded``: the
    ``time.perf_counter()`` when the networks were ready)."""
    now = time.perf_counter()
    return (f"{now - STARTED:.1f} s in all: {loaded - STARTED:.1f} s checking and loading, "
            f"{now - loaded:.1f} s animating and writing")
