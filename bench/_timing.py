"""The one timing helper the benchmarks share (run them as `python bench/<lab>.py`)."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def timed(fn: Callable[[], object], repeats: int, *, best: bool = False, warmup: bool = False) -> float:
    """Seconds per call of ``fn`` over ``repeats`` calls: the median, or the minimum with ``best``.

    The minimum is the least noisy estimate on a shared machine (timeit's advice); the median is kinder
    to calls whose cost really varies.
    """
    if warmup:
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times) if best else statistics.median(times)
