"""What the benchmarks share: timing and the report (run them as `python bench/<lab>.py`)."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from pathlib import Path


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


def publish(lab: str, lines: list[str], *, quick: bool) -> None:
    """Print the report; a full run also writes it to bench/results/<lab>.md (quick runs never overwrite it)."""
    text = "\n".join(lines) + "\n"
    print(text)
    if not quick:
        out = Path(__file__).resolve().parent / "results" / f"{lab}.md"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text)
