"""Cluster benchmark: 1 vs N replicas behind HAProxy with Redis, driven by bench/loadtest.py's browser sessions.

    python bench/cluster.py [--sessions 24] [--replicas 1 3] [--quick]

For each topology a fresh `deploy/cluster.py start` (cold caches, a fresh Redis), then ``--sessions``
Playwright contexts at once through the load balancer: default views of every lab (``/slug?seed=k``) and,
every third session, one heavy view shared by the class (the CBO phase diagram, "Compute" clicked).
Measured: p50/p95 time to first chart (default views) and to the phase chart (heavy view), how often the
heavy view was computed vs read from the store, Redis hits and misses, CPU seconds and peak memory per
replica. On the largest topology (if more than one replica), two faults with the sessions still open:
a replica is killed (its sessions must reconnect to another and show the same figures; the others must
not notice) and then Redis is stopped (new sessions must still be served). Results: bench/results/cluster.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "deploy"))
sys.path.insert(0, str(ROOT))
import cluster  # noqa: E402
import loadtest  # noqa: E402
from _common import publish  # noqa: E402

from core.runs import last_state  # noqa: E402
from pages._labs import LABS  # noqa: E402

HEAVY = "/cbo?phase_d=2"  # one lesson's phase diagram, opened by a third of the class
PHASE_CHART = (
    "() => Array.from(document.querySelectorAll('.js-plotly-plot')).some(gd => gd.layout?.yaxis?.title?.text === 'σ')"
)
COMPUTE = "Compute the phase diagram"
HEAVY_TIMEOUT_MS = 900_000  # 24 cells of ~4 s each on a quiet core, computed while the class loads its pages
REPLICA_COOKIE = "OPTISCOPE_REPLICA"
TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def peak_mb(pid: int) -> float:
    line = next(x for x in Path(f"/proc/{pid}/status").read_text().splitlines() if x.startswith("VmHWM"))
    return int(line.split()[1]) / 1024


def redis_counts() -> dict[str, int]:
    import redis

    client = redis.Redis(port=cluster.LOCAL["redis"])
    stats, commands = client.info("stats"), client.info("commandstats")
    return {
        "hits": stats["keyspace_hits"],
        "misses": stats["keyspace_misses"],
        "writes": commands.get("cmdstat_set", {}).get("calls", 0),
    }


async def open_view(browser, url: str, heavy: bool) -> dict:
    """A session kept open: seconds to its first chart (heavy: to the phase chart), figures, replica."""
    context = await browser.new_context(viewport={"width": 1400, "height": 1000})
    page = await context.new_page()
    record = {"url": url, "heavy": heavy, "first_chart": math.nan, "figures": [], "error": None, "page": page}
    start = time.perf_counter()
    try:
        await page.goto(url, timeout=loadtest.TIMEOUT_MS)
        await page.wait_for_selector(loadtest.CONNECTED, timeout=loadtest.TIMEOUT_MS)
        await page.wait_for_function(loadtest.FIRST_CHART, timeout=loadtest.TIMEOUT_MS, polling=100)
        if heavy:
            await settle(page)
            button = page.get_by_role("button", name=COMPUTE)
            if await button.count():  # absent when the store already holds the diagram
                await button.click()
            await page.wait_for_function(PHASE_CHART, timeout=HEAVY_TIMEOUT_MS, polling=200)
        record["first_chart"] = time.perf_counter() - start
        await settle(page)
        record["figures"] = await page.evaluate(loadtest.FIGURES)
        record["error"] = await exception_box(page)
    except Exception as err:  # a timeout is a finding, reported with the rest
        record["error"] = f"{type(err).__name__}: {str(err).splitlines()[0][:200]}"
    cookies = {c["name"]: c["value"] for c in await context.cookies()}
    record["replica"] = cookies.get(REPLICA_COOKIE, "?")
    return record


async def settle(page) -> None:
    for _ in range(2):  # idle may come before the first run, and a rerun may follow it
        await page.wait_for_function(loadtest.SETTLED, timeout=loadtest.TIMEOUT_MS)
        await page.wait_for_timeout(500)
    await page.wait_for_function(loadtest.SETTLED, timeout=loadtest.TIMEOUT_MS)


async def exception_box(page) -> str | None:
    box = page.locator("[data-testid='stException']")
    return f"exception box: {(await box.first.inner_text())[:200]}" if await box.count() else None


def same_figures(before: list[str], after: list[str]) -> bool:
    if len(before) != len(after) or not before:
        return False
    worst = [
        max((d for _, d in loadtest.differences(json.loads(a), json.loads(b))), default=0.0)
        for a, b in zip(before, after, strict=True)
    ]
    return max(worst) <= loadtest.ATOL


async def reconnected(record: dict) -> dict:
    """After its replica died: the session's time to reconnect and redraw, and whether it shows the same view."""
    page, start = record["page"], time.perf_counter()
    result = {"url": record["url"], "from": record["replica"], "seconds": math.nan, "same": False, "error": None}
    try:
        await page.wait_for_function(f'() => document.querySelector("{loadtest.CONNECTED}") === null', timeout=60_000)
        await page.wait_for_selector(loadtest.CONNECTED, timeout=loadtest.TIMEOUT_MS)
        chart = PHASE_CHART if record["heavy"] else loadtest.FIRST_CHART
        await page.wait_for_function(chart, timeout=loadtest.TIMEOUT_MS, polling=200)
        await settle(page)
        result["seconds"] = time.perf_counter() - start
        result["same"] = same_figures(record["figures"], await page.evaluate(loadtest.FIGURES))
        result["error"] = await exception_box(page)
    except Exception as err:
        result["error"] = f"{type(err).__name__}: {str(err).splitlines()[0][:200]}"
    result["to"] = {c["name"]: c["value"] for c in await page.context.cookies()}.get(REPLICA_COOKIE, "?")
    return result


async def untouched(record: dict) -> bool:
    """A session on a live replica: still connected, same figures, no exception."""
    page = record["page"]
    connected = await page.locator(loadtest.CONNECTED).count() == 1
    return connected and same_figures(record["figures"], await page.evaluate(loadtest.FIGURES))


def paths_for(count: int) -> list[tuple[str, bool]]:
    views = []
    for i in range(count):
        heavy = i % 3 == 2
        views.append((HEAVY, True) if heavy else (f"/{LABS[i % len(LABS)].slug}?seed={i + 1}", False))
    return views


async def faults(browser, base: str, records: list[dict]) -> dict:
    """Kill the replica holding the most sessions, then stop Redis and open fresh sessions."""
    victim = statistics.mode(r["replica"] for r in records)
    on_victim = [r for r in records if r["replica"] == victim]
    others = [r for r in records if r["replica"] != victim and not r["error"]]
    cluster.kill(victim, grace_s=0.0)  # SIGTERM then SIGKILL at once: a crash, not a drain
    moved = await asyncio.gather(*(reconnected(r) for r in on_victim))
    calm = await asyncio.gather(*(untouched(r) for r in others))
    cluster.kill("redis", grace_s=0.0)
    views = [(HEAVY, True), (f"/{LABS[0].slug}?seed=1", False), (HEAVY, True), (f"/{LABS[1].slug}?seed=2", False)]
    after = await asyncio.gather(*(open_view(browser, base + p, h) for p, h in views))
    warned = {p.stem: p.read_text(errors="replace").count("is unavailable") for p in cluster.RUN.glob("app*.log")}
    return {"victim": victim, "moved": moved, "calm": calm, "after_redis": after, "warnings": warned}


async def topology(replicas: int, count: int, with_faults: bool, on_ray: bool) -> dict:
    from playwright.async_api import async_playwright

    base = cluster.start(replicas)
    try:
        warm_s, warmed = warm(on_ray)
        pids = {name: pid for name, pid in cluster.running().items() if name.startswith("app")}
        cpu_before = {name: cpu_seconds(pid) for name, pid in pids.items()}
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(executable_path=loadtest.CHROMIUM, args=loadtest.FLAGS)
            start = time.perf_counter()
            records = await asyncio.gather(*(open_view(browser, base + p, h) for p, h in paths_for(count)))
            wall = time.perf_counter() - start
            cpu = {name: cpu_seconds(pid) - cpu_before[name] for name, pid in pids.items()}
            memory = {name: peak_mb(pid) for name, pid in pids.items()}
            counts = redis_counts()
            fault = await faults(browser, base, records) if with_faults else None
            await browser.close()
    finally:
        cluster.stop()
    return {
        "warm": (warm_s, "Ray, 2 workers" if on_ray else "locally", warmed),
        "replicas": replicas,
        "records": records,
        "wall": wall,
        "cpu": cpu,
        "memory": memory,
        "redis": counts,
        "faults": fault,
    }


def _p(values: list[float], q: float) -> str:
    finite = [v for v in values if math.isfinite(v)]
    return f"{loadtest.percentile(finite, q):.1f}" if finite else "n/a"


def summary_row(run: dict) -> str:
    records = run["records"]
    default = [r["first_chart"] for r in records if not r["heavy"]]
    heavy = [r["first_chart"] for r in records if r["heavy"]]
    writes, errors = run["redis"]["writes"] - 1, sum(1 for r in records if r["error"])  # minus the warm-up's write
    cpu = ", ".join(f"{run['cpu'][n]:.0f}" for n in sorted(run["cpu"]))
    memory = ", ".join(f"{run['memory'][n]:.0f}" for n in sorted(run["memory"]))
    spread = ", ".join(f"{n}: {sum(r['replica'] == n for r in records)}" for n in sorted(run["cpu"]))
    return (
        f"| {run['replicas']} | {len(records)} | {_p(default, 0.5)} / {_p(default, 0.95)} | {_p(heavy, 0.5)} / {_p(heavy, 0.95)} "
        f"| {len(heavy)} requests, computed {writes}× ({1 - writes / max(1, len(heavy)):.0%} served without computing) "
        f"| {run['redis']['hits']} / {run['redis']['misses']} | {cpu} | {memory} | {spread} | {run['wall']:.0f} | {errors} |"
    )


def fault_lines(fault: dict) -> list[str]:
    moved, after = fault["moved"], fault["after_redis"]
    lines = [
        "",
        f"## Faults (sessions still open): replica `{fault['victim']}` killed (SIGKILL), then Redis stopped",
        "",
        f"- {len(moved)} sessions were on `{fault['victim']}`: {sum(m['same'] for m in moved)} reconnected and show the "
        f"same figures as before the kill; seconds to redraw p50 {_p([m['seconds'] for m in moved], 0.5)}, max "
        f"{_p([m['seconds'] for m in moved], 1.0)}.",
        f"- {len(fault['calm'])} sessions on the other replicas: {sum(fault['calm'])} still connected with unchanged figures.",
        f"- Redis stopped: {len(after)} new sessions ({sum(r['heavy'] for r in after)} on the heavy view): "
        f"{sum(1 for r in after if not r['error'] and r['figures'])} served (first chart p50 "
        f"{_p([r['first_chart'] for r in after], 0.5)} s); 'Redis ... unavailable' warnings per replica log: {fault['warnings']}.",
        "",
        "| session | replica before → after | seconds to redraw | same view | error |",
        "|---|---|---:|---|---|",
    ]
    lines += [
        f"| `{m['url'].split('/', 3)[-1]}` | {m['from']} → {m['to']} | {m['seconds']:.1f} | {'yes' if m['same'] else 'no'} | {m['error'] or ''} |"
        for m in moved
    ]
    lines += [
        f"- after Redis stopped, `{r['url'].split('/', 3)[-1]}` on {r['replica']}: {r['error']}"
        for r in after
        if r["error"]
    ]
    return lines


def report(runs: list[dict], count: int) -> list[str]:
    load = os.getloadavg()
    lines = [
        "# Cluster: 1 vs N replicas behind HAProxy, Redis as the shared result cache",
        "",
        f"`python bench/cluster.py --sessions {count}` on {os.cpu_count()} "
        f"CPU cores that also run the browsers, HAProxy and Redis (load average at the end {load[0]:.1f}, {load[1]:.1f}, "
        f"{load[2]:.1f}). Each row: a fresh "
        "`deploy/cluster.py start` (cold replica caches, empty Redis), then the teacher's warm-up: the heavy view's sweep "
        "computed once (1 replica: locally; 3 replicas: on a local `ray start --head --num-cpus=2`) and written to Redis; "
        "then Playwright contexts (Debian chromium) all opened at once through HAProxy. Every third session opens the heavy "
        f"view `{HEAVY}` (the CBO phase diagram; Compute is clicked if the store does not hold it), the others `/lab?seed=k` "
        "over all labs. 'Computed' counts the heavy results the replicas wrote after the warm-up.",
        "",
        "| replicas | sessions | default views: first chart p50 / p95 (s) | heavy view: phase chart p50 / p95 (s) | heavy view computed | Redis hits / misses "
        "| CPU s per replica | peak MB per replica | sessions per replica | wall (s) | sessions with an error |",
        "|---:|---:|---|---|---|---|---|---|---|---:|---:|",
        *(summary_row(run) for run in runs),
    ]
    warmed = [run["warm"] for run in runs]
    lines += [
        "",
        *(f"- Warm-up {where}: {seconds:.0f} s for {result.total} cells." for seconds, where, result in warmed),
    ]
    if len(warmed) > 1:
        same = all(w[2] == warmed[0][2] for w in warmed)
        lines.append(
            f"- Ray and local sweeps identical: {'yes' if same else 'NO'} ({warmed[0][2].table(0).ravel().tolist()})."
        )
    for run in runs:
        lines += [
            f"- {run['replicas']} replica(s), `{r['url'].split('/', 3)[-1]}` on {r['replica']}: {r['error']}"
            for r in run["records"]
            if r["error"]
        ]
        if run["faults"]:
            lines += fault_lines(run["faults"])
    return lines


def warm(on_ray: bool) -> tuple[float, object]:
    """The teacher's warm-up: the heavy view's sweep computed once (here, or on a local Ray head with two
    workers) and written to the cluster's Redis under the key the page reads. Returns (seconds, result)."""
    from core import cbo, store, sweep

    # the grid of pages/cbo.py (PHASE_SIGMAS, PHASE_NS, PHASE) at the heavy view's phase_d = 2, seed 0, cpu
    sigmas, ns = (2.0, 4.0, 6.0, 7.0, 8.0, 9.0, 10.0, 12.0), (20, 40, 80)
    axes = {"config": [cbo.CBOConfig(alpha=30.0, sigma=s) for s in sigmas], "n_particles": ns}
    fixed = {"objective": cbo.OBJECTIVES["Rastrigin"], "d": 2, "runs": 10, "steps": 3000, "seed": 0, "device": "cpu"}
    address = ""
    if on_ray:
        import ray

        address = cluster.ray_start(workers=2)
        deadline = time.monotonic() + 300
        while not ray.is_initialized():
            try:
                ray.init(address=address, log_to_driver=False)
            except (ConnectionError, RuntimeError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(2)
    start = time.perf_counter()
    result = last_state(sweep.grid(cbo.success_rates, axes, fixed=fixed, address=address))
    seconds = time.perf_counter() - start
    key = store.view_key("cbo", {"phase_d": 2, "seed": 0, "device": "cpu"})
    store.ResultStore(f"redis://127.0.0.1:{cluster.LOCAL['redis']}/0").put(key, result)
    if on_ray:
        import ray

        ray.shutdown()
        cluster.kill("ray")
    return seconds, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sessions", type=int, default=24)
    parser.add_argument("--replicas", type=int, nargs="+", default=[1, 3])
    parser.add_argument("--quick", action="store_true", help="printed only (results not written)")
    args = parser.parse_args()
    faulted = max(args.replicas)  # the faults run on the largest topology
    # the largest topology warms the heavy view on Ray, the others locally: the report compares the two results
    runs = [asyncio.run(topology(n, args.sessions, n > 1 and n == faulted, n == faulted)) for n in args.replicas]
    publish("cluster", report(runs, args.sessions), quick=args.quick)


if __name__ == "__main__":
    main()
