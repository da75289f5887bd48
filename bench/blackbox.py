"""Black-box benchmark: evaluations to target per method (the budget is the clock) and wall time per evaluation.

Every method runs on the reference note's procedural surrogates (tanh MLP d -> 64 -> 64 -> 8, target f ≤ 1e-4,
optimum 0), same seeds and budget: Optiscope's hybrid, direct search and attacks (``core.blackbox``), CMA-ES
(``cma``), CBO (``core.cbo``), and NOMAD's MADS (``PyNomadBBO``, the anchor for direct search; it has no
stop-at-target option, so it always spends the whole budget and runs on fewer seeds: it costs ~10-70 ms per
evaluation here).

    python bench/blackbox.py [--quick] [--d 10] [--seeds 10] [--nomad-seeds 3] [--budget 2000]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._common import publish  # noqa: E402
from core.blackbox import SOLVER_LABELS, SOLVERS, nomad, surrogate  # noqa: E402
from core.blackbox.compare import best_curve  # noqa: E402

GOAL = 1e-4


def ours(method: str, d: int, seeds: range, budget: int) -> tuple[list[float], float, int]:
    """Evaluations to target per seed (NaN = not reached), wall seconds and evaluations spent in all."""
    reached, spent, start = [], 0, time.perf_counter()
    for s in seeds:
        states = list(SOLVERS[method](surrogate(d, seed=s), budget=budget, goal=GOAL, seed=s))
        hit = np.flatnonzero(best_curve(states, budget) <= GOAL)
        reached.append(float(hit[0] + 1) if len(hit) else np.nan)
        spent += states[-1].evaluations  # a stalled run stops before its budget
    return reached, time.perf_counter() - start, spent


def nomad_runs(d: int, seeds: range, budget: int) -> tuple[list[float], float, int]:
    reached, spent, start = [], 0, time.perf_counter()
    for s in seeds:
        history = nomad(surrogate(d, seed=s), budget=budget, seed=s)
        hit = np.flatnonzero(history.best <= GOAL)
        reached.append(float(hit[0] + 1) if len(hit) else np.nan)
        spent += len(history.values)
    return reached, time.perf_counter() - start, spent


def row(label: str, reached: list[float], wall: float, spent: int, nomad_ms: float) -> str:
    hits = np.array(reached)
    ok = np.isfinite(hits)
    median = f"{np.median(hits[ok]):.0f}" if ok.any() else "–"
    per_eval = 1e3 * wall / spent
    return f"| {label} | {ok.sum()}/{len(hits)} | {median} | {per_eval:.3f} ms | {nomad_ms / per_eval:.1f}× |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="d = 10, 3 seeds, budget 500, NOMAD on 1 seed")
    parser.add_argument("--d", type=int, default=10)
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--nomad-seeds", type=int, default=3)
    parser.add_argument("--budget", type=int, default=2000)
    args = parser.parse_args()
    torch.set_num_threads(1)
    seeds, nomad_seeds, budget = range(args.seeds), range(args.nomad_seeds), args.budget
    if args.quick:
        seeds, nomad_seeds, budget = range(3), range(1), 500
    load = os.getloadavg()[0]
    results = {m: ours(m, args.d, seeds, budget) for m in SOLVERS}
    for m, (reached, wall, spent) in results.items():
        print(m, reached, f"{wall:.1f}s", spent, flush=True)
    anchor = nomad_runs(args.d, nomad_seeds, budget)
    print("nomad", anchor, flush=True)
    nomad_ms = 1e3 * anchor[1] / anchor[2]
    lines = [
        "# Black-box benchmark: evaluations to target and wall time per evaluation",
        "",
        f"torch {torch.__version__}, one thread; {platform.machine()}; {'--quick' if args.quick else 'full run'}; "
        f"load average {load:.1f} on {os.cpu_count()} cores at the start (a busy machine slows every wall time, "
        "not the evaluation counts).",
        f"Problems: procedural surrogates d = {args.d} (tanh MLP d-64-64-8, gain 1.5), seeds 0–{len(seeds) - 1} "
        f"(NOMAD: 0–{len(nomad_seeds) - 1}); target f ≤ {GOAL:g}; budget {budget} evaluations; our runs stop at the "
        "target, NOMAD spends its budget. Wall time per evaluation includes each method's own overhead "
        "(the attack's forward+backward passes, cma's and NOMAD's bookkeeping); the last column is NOMAD's time per "
        "evaluation divided by the method's.",
        "",
        "| method | reached target | median evaluations to target | wall time per evaluation | NOMAD ÷ method |",
        "|---|---|---|---|---|",
    ]
    lines += [row(SOLVER_LABELS[m], *results[m], nomad_ms) for m in SOLVERS]
    lines.append(row("NOMAD 4 MADS (PyNomadBBO, default options)", *anchor, nomad_ms))
    solved = {m: np.array(results[m][0]) for m in ("hybrid", "direct-search")}
    both = np.isfinite(solved["hybrid"]) & np.isfinite(solved["direct-search"])
    ratio = np.median(solved["direct-search"][both] / solved["hybrid"][both]) if both.any() else float("nan")
    lines += [
        "",
        f"Evaluations to target, direct search ÷ hybrid, median over the {both.sum()} seeds both reached: "
        f"{ratio:.2f}×.",
        "",
    ]
    publish("blackbox", lines, quick=args.quick)


if __name__ == "__main__":
    main()
