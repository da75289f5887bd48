"""Soak: rerun every page many times in AppTest and watch the process's resident memory.

    python bench/soak.py [--reruns 300] [--quick]

Each page soaks in a fresh process of its own (a page must not inherit the heap that pages before it freed
or fragmented): resident memory (RSS) after its first render (models loaded, caches filled), every 25
reruns, and after ``--reruns`` reruns of the same session; flat means the end is within 10% of that start.
Each sample is taken twice: once the server has gone idle and done what it does then (raw: a garbage collection
and glibc's ``malloc_trim``, pages/_jobs.py ScriptRuns), and after the soak's own collection and trim (held).
Results go to bench/results/soak.md (``--quick``: 10 reruns, printed only).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
os.environ.setdefault("OPTISCOPE_DEVICE", "cpu")
from _common import publish  # noqa: E402

from pages._jobs import RUNS, malloc_trim  # noqa: E402
from tests.conftest import _open_page  # noqa: E402

TRIM = malloc_trim()

PAGES = sorted(f"pages/{p.name}" for p in (ROOT / "pages").glob("*.py") if not p.name.startswith("_"))
FLAT = 1.10


def rss_mb() -> float:
    """Resident memory of this process (MB)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def sample(idle_trims: int) -> tuple[float, float]:
    """(raw, held) MB: RSS once the server has trimmed after the last run (its idle trim number ``idle_trims``+1),
    then after two more garbage collections (what the first frees can free more, e.g. through finalizers) and a
    trim: memory still held is alive."""
    deadline = time.monotonic() + (30 if TRIM is not None else 0)  # no glibc: the server never trims
    while RUNS.idle_trims <= idle_trims and time.monotonic() < deadline:
        time.sleep(0.05)
    raw = rss_mb()
    gc.collect()
    gc.collect()
    if TRIM is not None:
        TRIM()
    return raw, rss_mb()


def failures(at) -> list[str]:
    """Exception boxes and error messages on the page (a rerun that fails is cheap and would flatter RSS)."""
    return [str(e.value)[:160] for e in [*at.exception, *at.error]]


def labs_imported() -> None:
    """Wait for the router's one-off background import of every lab's core (app.py, once per server): memory it
    adds while a page is soaking is the server's start-up, not growth per rerun."""
    for thread in threading.enumerate():
        if thread.name == "optiscope-import-labs":
            thread.join()


EVERY = 25  # reruns between two RSS samples


def soak(path: str, reruns: int) -> dict:
    idle_trims = RUNS.idle_trims
    at = _open_page(path)
    labs_imported()
    (raw_start, start), began = sample(idle_trims), time.perf_counter()
    seen = failures(at)
    errors, first, curve, raw_peak, raw = len(seen), seen[:1], [start], raw_start, raw_start
    for k in range(1, reruns + 1):
        idle_trims = RUNS.idle_trims
        at.run()
        seen = failures(at)
        errors, first = errors + len(seen), first or seen[:1]
        if k % EVERY == 0 or k == reruns:
            raw, held = sample(idle_trims)
            curve.append(held)
            raw_peak = max(raw_peak, raw)
    seconds = time.perf_counter() - began
    raw_end, end = raw, curve[-1]
    return {
        "page": path,
        "start": start,
        "end": end,
        "peak": max(curve + [end]),
        "curve": curve,
        "raw_start": raw_start,
        "raw_end": raw_end,
        "raw_peak": max(raw_peak, raw_end),
        "seconds": seconds,
        "errors": errors,
        "first": first,
    }


def soak_in_a_fresh_process(path: str, reruns: int) -> dict:
    """One page's soak in a new interpreter; its result is the child's last stdout line (JSON)."""
    command = [sys.executable, __file__, "--one", path, "--reruns", str(reruns)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"soak of {path} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def report(rows: list[dict], reruns: int) -> list[str]:
    worst = max(rows, key=lambda r: r["end"] / r["start"])
    raw_worst = max(rows, key=lambda r: r["raw_end"] / r["raw_start"])
    flat = all(r["end"] <= FLAT * r["start"] for r in rows)
    lines = [
        "# Soak: reruns of every page (AppTest, a fresh process per page)",
        "",
        f"{reruns} reruns per page after its first render. *Held*: resident memory (RSS) after two more garbage "
        "collections and glibc's `malloc_trim` than the server does: the memory alive. "
        "*Raw*: RSS as the server leaves it once idle for a second (its garbage collection and trim, no more; sampled, "
        f"like *held*, every {EVERY} reruns). Load average at the end: {os.getloadavg()[1]:.1f} (5 min) "
        f"on {os.cpu_count()} CPUs.",
        "",
        f"Summary: {reruns} reruns × {len(rows)} pages; held RSS {'flat' if flat else 'NOT flat'} within "
        f"{FLAT - 1:.0%} on every page (worst {worst['page']}: {worst['start']:.0f} → {worst['end']:.0f} MB, "
        f"{worst['end'] / worst['start'] - 1:+.1%}); raw RSS worst {raw_worst['page']}: "
        f"{raw_worst['raw_start']:.0f} → {raw_worst['raw_end']:.0f} MB ({raw_worst['raw_end'] / raw_worst['raw_start'] - 1:+.1%}, "
        f"peak {raw_worst['raw_peak']:.0f}); reruns showing an exception or error: {sum(r['errors'] for r in rows)}",
        "",
        f"| page | held after first render (MB) | held after reruns (MB) | change | held every {EVERY} reruns (MB) | "
        "raw first → last (peak) MB | s per rerun | exceptions and errors |",
        "|---|---:|---:|---:|---|---|---:|---:|",
    ]
    for r in rows:
        curve = " ".join(f"{mb:.0f}" for mb in r["curve"])
        lines.append(
            f"| `{r['page']}` | {r['start']:.0f} | {r['end']:.0f} | {r['end'] / r['start'] - 1:+.1%} | {curve} | "
            f"{r['raw_start']:.0f} → {r['raw_end']:.0f} ({r['raw_peak']:.0f}) | {r['seconds'] / reruns:.2f} | "
            f"{r['errors']} |"
        )
    lines += ["", *[f"- `{r['page']}`: {r['first'][0]}" for r in rows if r["first"]]]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--reruns", type=int, default=300)
    parser.add_argument("--quick", action="store_true", help="10 reruns, printed only (results not written)")
    parser.add_argument("--pages", nargs="*", default=PAGES, help="page files (default: every page)")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # the child process: soak this page, print JSON
    args = parser.parse_args()
    reruns = 10 if args.quick else args.reruns
    if args.one:
        print(json.dumps(soak(args.one, reruns)))
        return
    rows = []
    for path in args.pages:
        rows.append(soak_in_a_fresh_process(path, reruns))
        print({k: v for k, v in rows[-1].items() if k != "curve"}, flush=True)
    publish("soak", report(rows, reruns), quick=args.quick)


if __name__ == "__main__":
    main()
