"""Optimizer race benchmark: a full mini-AlgoPerf race on one thread, its cost and its score table.

Every optimizer of ``RACE`` (the real packages at their frozen defaults) × every workload × 3 seeds, one
process, one torch thread. Reported: CPU time (``time.process_time``, which the machine's other load does not
inflate) and wall time, per workload; the AlgoPerf scores on both clocks and both target sets; and our exact
score against AlgoPerf's own integration (``np.trapz`` over 100 τ points, run here as ``np.trapezoid``).

    python bench/optimizer_race.py [--quick] [--save] [--asset]

``--asset`` scores the shipped race instead of rerunning it; its cost column is then the studies' own training
CPU seconds (evaluation and set-up excluded), as recorded when the asset was made.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from importlib.metadata import version
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._common import publish, quiet  # noqa: E402
from core.optimizer_race import RACE, WORKLOADS, performance_profile, race_times, score  # noqa: E402
from core.optimizer_race.studies import PACKAGES, SEEDS, load_race, save_race, study  # noqa: E402

LIMIT_S = 300.0  # the bar: a full race in at most 5 minutes on one thread


def run_race(workloads, seeds) -> tuple[list, dict[str, float], dict[str, float]]:
    """All studies, with the CPU and wall seconds each workload took."""
    studies, cpu, wall = [], {}, {}
    for w in workloads:
        c0, t0 = time.process_time(), time.perf_counter()
        studies += [study(w, o, seed=s) for o in RACE for s in seeds]
        cpu[w], wall[w] = time.process_time() - c0, time.perf_counter() - t0
        print(f"{w}: {cpu[w]:.1f} s CPU, {wall[w]:.1f} s wall", flush=True)
    return studies, cpu, wall


def shipped_race() -> tuple[list, dict[str, float], dict[str, float]]:
    """The shipped studies (made in several processes: no process CPU or wall time to report)."""
    studies = list(load_race())
    return studies, dict.fromkeys(WORKLOADS, float("nan")), dict.fromkeys(WORKLOADS, float("nan"))


def algoperf_trapezoid(times, points: int = 100) -> dict[str, float]:
    """AlgoPerf's ``compute_leaderboard_score``: trapezoid over ``linspace(1, 4, points)``, normalized by 3."""
    taus = np.linspace(1.0, 4.0, points)
    return {k: float(np.trapezoid(rho, taus) / 3.0) for k, rho in performance_profile(times, taus).items()}


def score_table(studies) -> tuple[list[str], float]:
    """Scores on both clocks and target sets, and the largest gap to AlgoPerf's own integration."""
    views = [(kind, clock) for kind in ("strict", "relaxed") for clock in ("steps", "seconds")]
    scores, worst = {}, 0.0
    for kind, clock in views:
        targets = {k: w.target if kind == "strict" else w.relaxed_target for k, w in WORKLOADS.items()}
        times = race_times(studies, targets, clock=clock)
        scores[kind, clock] = score(times)
        trap = algoperf_trapezoid(times)
        worst = max(worst, max(abs(trap[k] - scores[kind, clock][k]) for k in trap))
    header = "| optimizer | " + " | ".join(f"{kind}, {clock}" for kind, clock in views) + " |"
    lines = [header, "|---|" + "---|" * len(views)]
    order = sorted(RACE, key=lambda k: -scores["strict", "steps"][k])
    lines += [f"| {k} | " + " | ".join(f"{scores[v][k]:.3f}" for v in views) + " |" for k in order]
    return [
        *lines,
        "",
        f"Exact score vs AlgoPerf's 100-point trapezoid: max |Δ| = {worst:.4f} (over all views).",
    ], worst


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="digits_softmax only, one seed (not written)")
    parser.add_argument("--save", action="store_true", help="also write the race to assets/optimizer_race.json")
    parser.add_argument("--asset", action="store_true", help="score the shipped race instead of rerunning it")
    args = parser.parse_args()
    torch.set_num_threads(1)
    workloads, seeds = (["digits_softmax"], (0,)) if args.quick else (list(WORKLOADS), SEEDS)
    quiet()
    studies, cpu, wall = shipped_race() if args.asset else run_race(workloads, seeds)
    scores, worst = score_table(studies)
    if args.save and not args.quick:
        save_race(studies)
    total_cpu, total_wall = sum(cpu.values()), sum(wall.values())
    train = {w: sum(s.seconds[-1] for s in studies if s.workload == w) for w in workloads}
    packages = ", ".join(f"{p} {version(p)}" for p in PACKAGES)
    lines = [
        "# Optimizer race benchmark: a full mini-AlgoPerf race on one thread",
        "",
        f"{len(RACE)} optimizers × {len(workloads)} workloads × {len(seeds)} seeds = {len(studies)} studies; "
        f"torch threads 1; {platform.machine()}; {packages}; {'quick' if args.quick else 'full'} run"
        f"{' (scored from the shipped assets/optimizer_race.json)' if args.asset else ''}. One race, not repeated "
        "(it is the thing timed, minutes long); process CPU time is what the machine's other load inflates least.",
        "",
        "| workload | process CPU s | training-step CPU s | wall s |",
        "|---|---|---|---|",
        *[f"| {w} | {cpu[w]:.1f} | {train[w]:.1f} | {wall[w]:.1f} |" for w in workloads],
        f"| **total** | **{total_cpu:.1f}** | **{sum(train.values()):.1f}** | **{total_wall:.1f}** |",
        "",
        f"Bar: ≤ {LIMIT_S:.0f} s on one thread. Process CPU {total_cpu:.1f} s: "
        f"{'met' if total_cpu <= LIMIT_S else 'NOT met'}; wall {total_wall:.1f} s on a shared machine: "
        f"{'met' if total_wall <= LIMIT_S else 'NOT met'} (wall includes the other jobs' load; nan = not measured).",
        "",
        "## AlgoPerf scores (τ_max = 4; median over seeds; a miss or a ratio > 4 scores 0 on that workload)",
        "",
        *scores,
    ]
    headline = {"race process CPU (s)": total_cpu, "race wall (s)": total_wall, "score max |Δ| vs AlgoPerf": worst}
    publish("optimizer_race", lines, quick=args.quick, headline=headline)


if __name__ == "__main__":
    main()
