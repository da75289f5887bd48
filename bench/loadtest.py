"""Load test: concurrent browser sessions against `streamlit run`, figures checked against single sessions.

    python bench/loadtest.py [--sessions 8] [--quick]

1. A fresh server; ``--sessions`` browser contexts (Debian's chromium via Playwright) open different
   labs with different seeds at the same moment, caches cold. Time to first chart is measured per session.
2. A second fresh server; each of the same URLs is opened alone, one after the other.
3. Every figure of every session (plotly data and layout, read from the page) must equal the figure
   of its URL opened alone. Results go to bench/results/loadtest.md (``--quick``: printed only).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import math
import os
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
from _common import publish  # noqa: E402

from pages._labs import LABS  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
CONNECTED = "[data-testid='stApp'][data-test-connection-state='CONNECTED']"
IDLE = "[data-testid='stApp'][data-test-script-state='notRunning']"
# Settled: the script idle, nothing loading, no background job's progress bar and no live player still playing
# (a figure read earlier would be a frame of a run, not the run's result).
SETTLED = f"""() => document.querySelector("{IDLE}") !== null
    && !document.querySelector("[data-testid='stSkeleton'], [data-testid='stProgress']")
    && !Array.from(document.querySelectorAll("button")).some(b => b.innerText.includes("Pause"))"""
# a drawn chart, or an exception box (a broken page must not hold the run until the timeout)
FIRST_CHART = (
    "() => document.querySelector(\"[data-testid='stPlotlyChart'] .js-plotly-plot .main-svg\") !== null"
    " || document.querySelector(\"[data-testid='stException']\") !== null"
)
FIGURES = (
    "() => Array.from(document.querySelectorAll('.js-plotly-plot')).map(gd => JSON.stringify([gd.data, gd.layout]))"
)
TIMEOUT_MS = int(os.environ.get("OPTISCOPE_LOADTEST_TIMEOUT_S", "300")) * 1000  # per wait, per session
# Figures are compared value by value: CLARABEL's SVM solutions differ in the last bits (~1e-12) from one
# solve to the next (tests/test_pages.py), so equal means within ATOL.
ATOL = 1e-9


def fingerprint() -> str:
    """A hash of the app's sources: a run whose sources changed between its passes compares nothing."""
    import hashlib

    digest = hashlib.sha256()
    for path in sorted([ROOT / "app.py", *(ROOT / "pages").rglob("*.py"), *(ROOT / "core").rglob("*.py")]):
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def server() -> Iterator[str]:
    """A fresh `streamlit run app.py` (cold caches) on a free port, polled until healthy."""
    port = _free_port()
    command = [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        "app.py",
        "--server.headless",
        "true",
        "--server.address",
        "127.0.0.1",
        "--server.port",
        str(port),
        "--server.fileWatcherType",
        "none",
        "--browser.gatherUsageStats",
        "false",
    ]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read() == b"ok":
                    break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError("streamlit did not start") from None
                time.sleep(0.3)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


async def visit(browser, url: str) -> dict:
    """Open ``url`` in a fresh context: seconds to the first drawn chart and to idle, and the figures."""
    context = await browser.new_context(viewport={"width": 1400, "height": 1000})
    page = await context.new_page()
    start = time.perf_counter()
    record = {"url": url, "first_chart": math.nan, "idle": math.nan, "figures": [], "error": None}
    try:
        await page.goto(url, timeout=TIMEOUT_MS)
        await page.wait_for_selector(CONNECTED, timeout=TIMEOUT_MS)
        await page.wait_for_function(FIRST_CHART, timeout=TIMEOUT_MS, polling=100)
        record["first_chart"] = time.perf_counter() - start
        for _ in range(2):  # idle may come before the first run, and a rerun may follow it
            await page.wait_for_function(SETTLED, timeout=TIMEOUT_MS)
            await page.wait_for_timeout(500)
        await page.wait_for_function(SETTLED, timeout=TIMEOUT_MS)
        record["idle"] = time.perf_counter() - start
        record["figures"] = await page.evaluate(FIGURES)
        if await page.locator("[data-testid='stException']").count():
            record["error"] = (
                "exception box: " + (await page.locator("[data-testid='stException']").first.inner_text())[:200]
            )
    except Exception as err:  # a timeout is a finding of the load test, reported with the rest
        record["error"] = f"{type(err).__name__}: {str(err).splitlines()[0][:200]}"
    await context.close()
    return record


async def sessions(paths: list[str], *, concurrent: bool, url: str | None = None) -> list[dict]:
    """Visits of ``paths`` on a fresh server, or on the running one at ``url`` (e.g. `make cluster`)."""
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        with server() if url is None else contextlib.nullcontext(url) as base:
            if concurrent:
                visits = await asyncio.gather(*(visit(browser, base + path) for path in paths))
            else:
                visits = [await visit(browser, base + path) for path in paths]
        await browser.close()
    for path, record in zip(paths, visits, strict=True):
        record["path"] = path
    return visits


# The browser sizes each chart to its container (layout width/height): presentation, not a figure's value.
PRESENTATION = {"width", "height"}


def decoded(value: object) -> object:
    """Plotly's typed arrays ({dtype, bdata, shape}) as lists of numbers, so they compare value by value."""
    if isinstance(value, dict) and set(value) >= {"dtype", "bdata"}:
        array = np.frombuffer(base64.b64decode(value["bdata"]), dtype=np.dtype(value["dtype"]))
        return array.reshape([int(n) for n in str(value.get("shape", len(array))).split(",")]).tolist()
    return value


def differences(a: object, b: object, path: str = "") -> Iterator[tuple[str, float]]:
    """(path, |a - b|) where two JSON values differ: numbers by their distance, anything else by inf."""
    a, b = decoded(a), decoded(b)
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        if a != b and not (math.isnan(a) and math.isnan(b)):
            yield path, abs(a - b) if math.isfinite(a - b) else math.inf
    elif isinstance(a, dict) and isinstance(b, dict):
        autoranged = a.get("autorange") is True and b.get("autorange") is True  # plotly.js sized it to the chart
        for key in a.keys() | b.keys():
            if not (path == "[1]" and key in PRESENTATION) and not (autoranged and key == "range"):
                yield from differences(a.get(key), b.get(key), f"{path}.{key}")
    elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            yield from differences(x, y, f"{path}[{i}]")
    elif a != b:
        yield path, math.inf


def compare(loaded: list[dict], alone: list[dict]) -> list[str]:
    """One line per figure that differs (by more than ATOL anywhere) from its URL's figure opened alone."""
    problems = []
    for under_load, single in zip(loaded, alone, strict=True):
        if len(under_load["figures"]) != len(single["figures"]) or not under_load["figures"]:
            problems.append(f"{under_load['path']}: {len(under_load['figures'])} figures vs {len(single['figures'])}")
            continue
        for i, (a, b) in enumerate(zip(under_load["figures"], single["figures"], strict=True)):
            found = sorted(differences(json.loads(a), json.loads(b)), key=lambda d: -d[1])
            if found and found[0][1] > ATOL:
                where, size = found[0]
                problems.append(
                    f"{under_load['path']}: figure {i} differs in {len(found)} values, most at {where} (by {size:.3g})"
                )
    return problems


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def report(loaded: list[dict], alone: list[dict], problems: list[str], wall: float) -> list[str]:
    firsts = [r["first_chart"] for r in loaded if math.isfinite(r["first_chart"])] or [math.nan]
    figures = sum(len(r["figures"]) for r in loaded)
    errors = [f"{r['path']}: {r['error']}" for r in loaded + alone if r["error"]]
    verdict = "all equal" if not problems else f"{len(problems)} differ"
    lines = [
        "# Load test: concurrent browser sessions on `streamlit run`",
        "",
        f"{len(loaded)} Playwright contexts (Debian chromium) opened at once on a fresh server (cold caches),",
        "each a lab with its own seed; the same URLs then opened one at a time on a second fresh server.",
        f"Machine: {os.cpu_count()} CPU cores "
        f"(shared, load average {os.getloadavg()[1]:.1f} over the last 5 min at the end); wall time of the "
        f"concurrent pass {wall:.0f} s.",
        "",
        f"Summary: {len(loaded)} sessions, {figures} figures {verdict} with single sessions; time to first chart "
        f"p50 {statistics.median(firsts):.1f} s, p95 {percentile(firsts, 0.95):.1f} s "
        f"(alone: p50 {statistics.median(r['first_chart'] for r in alone):.1f} s); sessions with an error: {len(errors)}",
        "",
        "| URL | figures | first chart, under load (s) | idle, under load (s) | first chart, alone (s) | equal |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for under_load, single in zip(loaded, alone, strict=True):
        equal = "no" if any(p.startswith(under_load["path"] + ":") for p in problems) else "yes"
        lines.append(
            f"| `{under_load['path']}` | {len(under_load['figures'])} | {under_load['first_chart']:.1f} | "
            f"{under_load['idle']:.1f} | {single['first_chart']:.1f} | {equal} |"
        )
    lines += ["", *[f"- {p}" for p in problems + errors]]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sessions", type=int, default=8)
    parser.add_argument("--quick", action="store_true", help="3 sessions, printed only (results not written)")
    parser.add_argument("--url", help="the concurrent pass against this running server (e.g. `make cluster`)")
    args = parser.parse_args()
    count = 3 if args.quick else args.sessions
    paths = [f"/{LABS[i % len(LABS)].slug}?seed={i + 1}" for i in range(count)]
    before, start = fingerprint(), time.perf_counter()
    loaded = asyncio.run(sessions(paths, concurrent=True, url=args.url))
    wall = time.perf_counter() - start
    alone = asyncio.run(sessions(paths, concurrent=False))
    problems = compare(loaded, alone)
    if fingerprint() != before:
        problems.insert(0, "the app's sources changed during the run: the comparison is void, rerun on a quiet tree")
    publish("loadtest", report(loaded, alone, problems, wall), quick=args.quick)


if __name__ == "__main__":
    main()
