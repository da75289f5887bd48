"""The benchmark harness (bench/_common.py): interleaving order, timings, history append and the regenerated report.

No timed assertions: the clock is replaced where a duration matters.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_common", ROOT / "bench" / "_common.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def results(bench, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(bench, "RESULTS", tmp_path)
    monkeypatch.setattr(bench, "HISTORY", tmp_path / "history")
    monkeypatch.setattr(bench, "_guard", {"note": None})
    return tmp_path


def test_calls_are_interleaved_round_by_round_after_the_warmup(bench) -> None:
    order: list[str] = []
    calls = {name: (lambda name=name: order.append(name)) for name in "ABC"}
    timings = bench.interleaved(calls, repeats=3, warmup=2, min_sample_s=0)
    # every round runs each call once, starting one further along each round: ABC, BCA, CAB, ABC, BCA
    assert order == list("ABCBCACABABCBCA")
    assert {name: len(t.samples) for name, t in timings.items()} == {"A": 3, "B": 3, "C": 3}


def test_only_the_rounds_after_the_warmup_are_timed(bench, monkeypatch: pytest.MonkeyPatch) -> None:
    ticks = iter(range(100))
    monkeypatch.setattr(bench.time, "perf_counter", lambda: float(next(ticks)))
    slow = {"A": lambda: next(ticks), "B": lambda: None}  # A advances the fake clock by one extra tick
    timings = bench.interleaved(slow, repeats=5, warmup=1, min_sample_s=0)
    assert timings["A"].samples == (2.0,) * 5 and timings["B"].samples == (1.0,) * 5
    assert timings["B"].ratio(timings["A"]) == 2.0  # B is twice as fast as A


def test_a_short_call_is_looped_to_fill_a_sample(bench, monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [0.0]
    monkeypatch.setattr(bench.time, "perf_counter", lambda: clock[0])
    counts = {"short": 0, "long": 0}

    def call(name: str, seconds: float) -> None:
        counts[name] += 1
        clock[0] += seconds

    calls = {"short": lambda: call("short", 0.001), "long": lambda: call("long", 0.5)}
    timings = bench.interleaved(calls, repeats=5, warmup=1, min_sample_s=0.02)
    assert counts == {"short": 1 + 5 * 20, "long": 1 + 5}  # 20 loops of 1 ms fill a 20 ms sample
    assert timings["short"].samples == pytest.approx((0.001,) * 5) and timings["long"].median == 0.5


def test_timing_holds_median_and_spread(bench) -> None:
    t = bench.Timing.of([0.003, 0.001, 0.002, 0.010, 0.002])
    assert (t.median, t.low, t.high) == (0.002, 0.001, 0.010)
    assert t.show("ms") == "2 ms (1–10)"
    assert t.per(2).median == 0.001


def test_bad_repeats_are_refused(bench) -> None:
    with pytest.raises(ValueError, match="repeats"):
        bench.interleaved({"A": lambda: None}, repeats=0)


def test_quiet_notes_a_busy_machine_after_waiting(bench, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BENCH_WAIT_S", raising=False)
    monkeypatch.setattr(bench, "load_now", lambda: 7.9)
    assert bench.quiet(max_load=1.5, wait_s=0) == "BUSY: load 7.9 after waiting 0 s — timings are upper bounds"
    loads = iter([3.0, 2.0, 0.4])
    monkeypatch.setattr(bench, "load_now", lambda: next(loads))
    monkeypatch.setattr(bench.time, "sleep", lambda s: None)
    assert bench.quiet(max_load=1.5, wait_s=60) == "quiet (load 0.4)"


def test_a_full_run_appends_to_the_history_and_rewrites_the_report(bench, results: Path) -> None:
    bench.publish("lab", ["# Lab benchmark", "", "body of run 1"], quick=False, headline={"speed-up (×)": 2.0})
    bench.publish("lab", ["# Lab benchmark", "", "body of run 2"], quick=False, headline={"speed-up (×)": 3.0})
    runs = [json.loads(line) for line in (results / "history" / "lab.jsonl").read_text().splitlines()]
    assert [run["headline"] for run in runs] == [{"speed-up (×)": 2.0}, {"speed-up (×)": 3.0}]
    assert all(run["date"] and run["cpu"] and run["cores"] and run["torch"] and run["load"] for run in runs)
    report = (results / "lab.md").read_text()
    assert report.startswith("# Lab benchmark\n") and "body of run 2" in report and "body of run 1" not in report
    history = report.split("## History", 1)[1]
    assert "| speed-up (×) |" in history and "| 2 |" in history and "| 3 |" in history


def test_a_quick_run_writes_nothing(bench, results: Path) -> None:
    bench.publish("lab", ["# Lab"], quick=True, headline={"x": 1.0})
    assert list(results.iterdir()) == []


def test_the_run_is_stamped_with_the_last_contention_note(bench, results: Path, monkeypatch) -> None:
    monkeypatch.setattr(bench, "load_now", lambda: 0.4)
    bench.quiet(wait_s=0)
    bench.publish("lab", ["# Lab"], quick=False)
    assert bench.read_history("lab", results / "history")[0]["load"] == "quiet (load 0.4)"
    assert "quiet (load 0.4)" in (results / "lab.md").read_text()
