"""Black-box benchmark: evaluations to target per method (the budget is the clock) and wall time per evaluation.

Every method runs on the reference note's procedural surrogates (tanh MLP d -> 64 -> 64 -> 8, target f ≤ 1e-4,
optimum 0), same seeds and budget: Optiscope's hybrid, direct search and attacks (``core.blackbox``), CMA-ES
(``cma``), CBO (``core.cbo``), and NOMAD's MADS (``PyNomadBBO``, the anchor for direct search; it has no
stop-at-target option, so it always spends the whole budget, here a smaller one: it costs ~10-150 ms per
evaluation here).

    python bench/blackbox.py [--quick] [--d 10] [--seeds 10] [--budget 2000] [--nomad-budget 600]
"""

from __future__ import annotations

import argparse
import platform
import sys
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._common import Timing, interleaved, publish, quiet  # noqa: E402
from core.blackbox import SOLVER_LABELS, SOLVERS, nomad, surrogate  # noqa: E402
from core.blackbox.compare import best_curve  # noqa: E402

GOAL = 1e-4


def ours(method: str, d: int, seed: int, budget: int) -> tuple[float, int]:
    """Evaluations to target (NaN = not reached) and evaluations spent (a stalled run stops before its budget)."""
    states = list(SOLVERS[method](surrogate(d, seed=seed), budget=budget, goal=GOAL, seed=seed))
    hit = np.flatnonzero(best_curve(states, budget) <= GOAL)
    return (float(hit[0] + 1) if len(hit) else np.nan), states[-1].evaluations


def nomad_run(d: int, seed: int, budget: int) -> tuple[float, int]:
    history = nomad(surrogate(d, seed=seed), budget=budget, seed=seed)
    hit = np.flatnonzero(history.best <= GOAL)
    return (float(hit[0] + 1) if len(hit) else np.nan), len(history.values)


def seed_rounds(runs: dict[str, Callable[[int], tuple[float, int]]], seeds: range) -> dict[str, Method]:
    """One round per seed, every method once a round; time per evaluation per seed."""
    done: dict[str, list[tuple[float, int]]] = {name: [] for name in runs}
    calls = {name: lambda name=name: done[name].append(runs[name](seeds[len(done[name])])) for name in runs}
    timings = interleaved(calls, repeats=len(seeds), warmup=0)  # each round is a new problem: nothing to warm
    return {
        name: Method(
            [reached for reached, _ in done[name]],
            Timing.of([t / spent for t, (_, spent) in zip(timings[name].samples, done[name], strict=True)]),
        )
        for name in runs
    }


@dataclass(frozen=True)
class Method:
    reached: list[float]  # evaluations to target per seed, NaN = not reached
    per_eval: Timing  # seconds per evaluation, one sample per seed


def row(label: str, method: Method, anchor: Timing) -> str:
    hits = np.array(method.reached)
    ok = np.isfinite(hits)
    median = f"{np.median(hits[ok]):.0f}" if ok.any() else "–"
    return (
        f"| {label} | {ok.sum()}/{len(hits)} | {median} | {method.per_eval.show()} | "
        f"{method.per_eval.ratio(anchor):.1f}× |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="d = 10, 5 seeds, budget 500, NOMAD: 5 seeds of 50")
    parser.add_argument("--d", type=int, default=10)
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--budget", type=int, default=2000)
    parser.add_argument("--nomad-budget", type=int, default=600, help="NOMAD spends all of it: ~10-150 ms each")
    # NOMAD (~15 ms an evaluation, its whole budget every seed) is most of this benchmark's time: 3 seeds by default
    parser.add_argument(
        "--nomad-seeds", type=int, default=3, help="NOMAD's seeds, 0 … n − 1 (~9 s each; 5 = the full anchor)"
    )
    args = parser.parse_args()
    torch.set_num_threads(1)
    seeds, budget, nomad_budget = range(args.seeds), args.budget, args.nomad_budget
    nomad_seeds = range(args.nomad_seeds)
    if args.quick:
        seeds, budget, nomad_budget, nomad_seeds = range(5), 500, 50, range(5)
    quiet()
    results = seed_rounds({m: partial(ours, m, args.d, budget=budget) for m in SOLVERS}, seeds)
    anchor = seed_rounds({"nomad": partial(nomad_run, args.d, budget=nomad_budget)}, nomad_seeds)["nomad"]
    lines = [
        "# Black-box benchmark: evaluations to target and wall time per evaluation",
        "",
        f"torch {torch.__version__}, one thread; {platform.machine()}; {'--quick' if args.quick else 'full run'}.",
        f"Problems: procedural surrogates d = {args.d} (tanh MLP d-64-64-8, gain 1.5), seeds 0–{len(seeds) - 1} "
        f"(NOMAD: 0–{len(nomad_seeds) - 1}, budget {nomad_budget}); target f ≤ {GOAL:g}; budget {budget} evaluations; "
        "our runs stop at the target, NOMAD spends its budget (its smaller budget makes its reached count a lower "
        "bound). Wall time per evaluation includes each method's own overhead (the attack's forward+backward passes, "
        "cma's and NOMAD's bookkeeping): median (min–max) over seeds, one round per seed with every method once; the "
        "last column is NOMAD's median time per evaluation divided by the method's.",
        "",
        "| method | reached target | median evaluations to target | wall time per evaluation | NOMAD ÷ method |",
        "|---|---|---|---|---|",
    ]
    lines += [row(SOLVER_LABELS[m], results[m], anchor.per_eval) for m in SOLVERS]
    lines.append(row("NOMAD 4 MADS (PyNomadBBO, default options)", anchor, anchor.per_eval))
    solved = {m: np.array(results[m].reached) for m in ("hybrid", "direct-search")}
    both = np.isfinite(solved["hybrid"]) & np.isfinite(solved["direct-search"])
    ratio = np.median(solved["direct-search"][both] / solved["hybrid"][both]) if both.any() else float("nan")
    lines += [
        "",
        f"Evaluations to target, direct search ÷ hybrid, median over the {both.sum()} seeds both reached: "
        f"{ratio:.2f}×.",
        "",
    ]
    headline = {
        "hybrid: seeds reached (%)": 100 * float(np.isfinite(solved["hybrid"]).mean()),
        "direct search ÷ hybrid, evaluations to target (×)": float(ratio),
        "NOMAD ÷ hybrid, time per evaluation (×)": results["hybrid"].per_eval.ratio(anchor.per_eval),
    }
    publish("blackbox", lines, quick=args.quick, headline=headline)


if __name__ == "__main__":
    main()
