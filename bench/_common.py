"""What the benchmarks share: interleaved timings, a contention guard, and the report with its history.

Run a benchmark as `python bench/<lab>.py [--quick]`. A full run appends itself (date, machine, load, headline
numbers, report) to bench/results/history/<lab>.jsonl and rewrites bench/results/<lab>.md from that history:
the latest run in full, then a table of the headline numbers over every run. Quick runs only print.
"""

from __future__ import annotations

import datetime
import json
import math
import os
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
HISTORY = RESULTS / "history"
UNITS = {"s": 1.0, "ms": 1e3, "µs": 1e6}
_guard: dict[str, str | None] = {"note": None}  # the last `quiet` note, stamped on the run `publish` appends


@dataclass(frozen=True)
class Timing:
    """Seconds per call over the timed rounds."""

    median: float
    low: float  # min over repeats
    high: float  # max over repeats
    samples: tuple[float, ...]

    @classmethod
    def of(cls, samples: list[float]) -> Timing:
        return cls(statistics.median(samples), min(samples), max(samples), tuple(samples))

    def ratio(self, other: Timing) -> float:
        """other.median / self.median: how many times faster this call is than ``other``."""
        return other.median / self.median

    def per(self, items: int) -> Timing:
        """Seconds per item when one call handles ``items`` (a batch, a run of steps)."""
        return Timing.of([s / items for s in self.samples])

    def show(self, unit: str = "ms") -> str:
        """Median with its spread: ``12.3 ms (11.9–13.0)``."""
        scale = UNITS[unit]
        return f"{_sig(self.median * scale)} {unit} ({_sig(self.low * scale)}–{_sig(self.high * scale)})"


def _sig(x: float) -> str:
    return f"{x:.3g}" if abs(x) < 1000 else f"{x:.0f}"


def interleaved(
    calls: dict[str, Callable[[], object]], *, repeats: int = 7, warmup: int = 1, min_sample_s: float = 0.02
) -> dict[str, Timing]:
    """A/B(/C…) timings interleaved round by round (ABAB…), after `warmup` untimed rounds.

    Load from other processes then hits every call alike, and its swings show as spread instead of as a
    ratio. Each round starts one call further along (AB, BA, …) so that no call always runs after the same one.
    A call the warm-up found shorter than ``min_sample_s`` runs that many times over in each sample (timeit's
    loops), so that one scheduler time slice on a busy machine is not the whole sample; samples are per call.
    """
    if repeats < 1 or warmup < 0:
        raise ValueError(f"Expected repeats >= 1 and warmup >= 0, but got {repeats} and {warmup}")
    names = list(calls)
    loops = dict.fromkeys(names, 1)
    samples: dict[str, list[float]] = {name: [] for name in names}
    for round_ in range(warmup + repeats):
        shift = round_ % len(names)
        for name in names[shift:] + names[:shift]:
            start = time.perf_counter()
            for _ in range(loops[name]):
                calls[name]()
            seconds = (time.perf_counter() - start) / loops[name]
            if round_ >= warmup:
                samples[name].append(seconds)
            elif round_ == warmup - 1:
                loops[name] = max(1, min(1000, math.ceil(min_sample_s / max(seconds, 1e-9))))
    return {name: Timing.of(samples[name]) for name in names}


def interleaved_keeping(
    calls: dict[str, Callable[[], object]], **kwargs
) -> tuple[dict[str, Timing], dict[str, object]]:
    """`interleaved` (same arguments), and what each call returned in its last timed round: a benchmark that needs
    the results too reads them here instead of calling everything once more after timing."""
    results: dict[str, object] = {}

    def keep(name: str, call: Callable[[], object]) -> Callable[[], None]:
        def run() -> None:
            results[name] = call()

        return run

    return interleaved({name: keep(name, call) for name, call in calls.items()}, **kwargs), results


def _own_running_threads() -> int:
    """Threads of this process that are running now (they count in the load average but are not contention)."""
    running = 0
    for stat in Path("/proc/self/task").glob("*/stat"):
        try:
            running += stat.read_text().rsplit(")", 1)[1].split()[0] == "R"
        except (OSError, IndexError):
            continue
    return running


def load_now() -> float:
    """The 1-minute load average, less this process's own running threads."""
    return max(0.0, os.getloadavg()[0] - _own_running_threads())


def quiet(*, max_load: float = 1.5, wait_s: float = 120.0) -> str:
    """Contention guard: wait up to wait_s for the 1-minute load average (excluding this process's own threads)
    to fall below max_load; return a one-line note for the report ("quiet (load 0.4)" or "BUSY: load 7.9 after
    waiting 120 s — timings are upper bounds").

    ``BENCH_WAIT_S`` in the environment overrides ``wait_s`` (e.g. 0 on a machine known to be shared).
    """
    wait_s = float(os.environ.get("BENCH_WAIT_S", wait_s))
    deadline = time.monotonic() + wait_s
    load = load_now()
    while load >= max_load and time.monotonic() < deadline:
        time.sleep(min(5.0, max(0.0, deadline - time.monotonic())))
        load = load_now()
    if load < max_load:
        _guard["note"] = f"quiet (load {load:.1f})"
    else:
        _guard["note"] = f"BUSY: load {load:.1f} after waiting {wait_s:.0f} s — timings are upper bounds"
    return _guard["note"]


def machine() -> dict[str, object]:
    """CPU model, cores and torch version: what a run's numbers depend on."""
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        )
    except (OSError, StopIteration):
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "torch": torch.__version__}


def publish(lab: str, lines: list[str], *, quick: bool, headline: dict[str, float] | None = None) -> None:
    """Print; a full run APPENDS a dated, machine-stamped run (date UTC, CPU model, cores, torch version, load note)
    to the results history, and regenerates bench/results/<lab>.md (latest run in full + a history table of the
    headline numbers over runs).

    The load note is the last `quiet` call's; a benchmark that never called it gets the load at publishing time.
    """
    run = {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M"),
        **machine(),
        "load": _guard["note"] or f"load {load_now():.1f} at the end (no contention guard)",
        # a number not measured in this run (NaN) is left out: medians over runs are of measured values only
        "headline": {key: float(value) for key, value in (headline or {}).items() if math.isfinite(value)},
        "report": "\n".join(lines),
    }
    if quick:
        print(_report(lab, [run], history=False) + f"\nQuick run, not recorded; headline: {run['headline']}")
        return
    append_run(lab, run)
    text = _report(lab, read_history(lab))
    print(text)
    (RESULTS / f"{lab}.md").write_text(text)


def append_run(lab: str, run: dict[str, object], folder: Path | None = None) -> None:
    folder = folder or HISTORY
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / f"{lab}.jsonl").open("a") as history:
        history.write(json.dumps(run, ensure_ascii=False) + "\n")


def read_history(lab: str, folder: Path | None = None) -> list[dict[str, object]]:
    """Every run of ``lab``, oldest first ([] if it has none yet)."""
    path = (folder or HISTORY) / f"{lab}.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _report(lab: str, runs: list[dict[str, object]], *, history: bool = True) -> str:
    """The latest run's report stamped with its machine, then the headline numbers of every run."""
    latest = runs[-1]
    report = str(latest["report"]).splitlines()
    title, body = (report[:1], report[1:]) if report and report[0].startswith("# ") else ([], report)
    stamp = (
        f"Run {latest['date']} UTC on {latest['cpu']} ({latest['cores']} cores), torch {latest['torch']}; "
        f"{latest['load']}. Timings: median (min–max) over interleaved repeats."
    )
    lines = [*title, "", stamp, *body, "", *(_history_table(lab, runs) if history else [])]
    return "\n".join(lines).strip() + "\n"


def _history_table(lab: str, runs: list[dict[str, object]]) -> list[str]:
    keys = list(dict.fromkeys(key for run in runs for key in run["headline"]))
    if not keys:
        return []
    lines = [
        "## History of the headline numbers",
        "",
        f"{len(runs)} run(s), oldest first, from `bench/results/history/{lab}.jsonl`; the README quotes the "
        "median over runs.",
        "",
        "| date (UTC) | machine | load | " + " | ".join(keys) + " |",
        "|---|---|---|" + "---|" * len(keys),
    ]
    for run in runs:
        values = [_sig(run["headline"][key]) if key in run["headline"] else "—" for key in keys]
        machine_ = f"{run['cpu']}, {run['cores']} cores, torch {run['torch']}"
        lines.append(f"| {run['date']} | {machine_} | {run['load']} | " + " | ".join(values) + " |")
    return lines
