"""Reward-free exploration benchmark: wall time per episode per explorer, and episodes to ε as H grows.

Anchor: pymdptoolbox's ``FiniteHorizon`` value iteration (numpy) against ours on the same chain and rewards,
timed in the same run. The explorers have no library to compare with (no public UCRL-RFE / HF-UCRL-RFE++
code exists, notes §3), so their table is measured, not compared.

    python bench/exploration.py [--quick] [--full]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import platform
import statistics
import sys
import warnings
from functools import partial
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import mdptoolbox.mdp  # noqa: E402

from bench._common import interleaved, publish, quiet  # noqa: E402
from core.exploration import (  # noqa: E402
    EXPLORER_NAMES,
    EXPLORERS,
    ExploreConfig,
    chain_mdp,
    chain_rewards,
    run,
    scaling,
    value_iteration,
)
from core.runs import last_state  # noqa: E402

EPSILON = 0.01


def toolbox_values(kernel: np.ndarray, paid: list[np.ndarray], horizon: int) -> list[np.ndarray]:
    """pymdptoolbox's finite-horizon values (S, H+1) for each reward."""
    solved = [mdptoolbox.mdp.FiniteHorizon(kernel, p, 1.0, horizon) for p in paid]
    for problem in solved:
        problem.run()
    return [problem.V for problem in solved]


def planning_rows(horizons, repeats: int) -> tuple[list[str], dict[str, float]]:
    mdp, rewards = chain_mdp(), chain_rewards()
    kernel = mdp.transitions.permute(1, 0, 2).numpy()
    rows, headline = [], {}
    for horizon in horizons:
        paid = [(r / horizon).unsqueeze(1).expand(-1, 2).numpy() for r in rewards]
        library = partial(toolbox_values, kernel, paid, horizon)
        ours = partial(value_iteration, mdp.transitions, rewards, horizon=horizon)
        # pymdptoolbox prints a convergence warning for every undiscounted solve
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            t = interleaved({"ours": ours, "pymdptoolbox": library}, repeats=repeats)
            values = library()
        diff = max(abs(v - ours().values[i].T.numpy()).max() for i, v in enumerate(values))
        ratio = headline[f"pymdptoolbox / ours, H = {horizon} (×)"] = t["ours"].ratio(t["pymdptoolbox"])
        rows.append(f"| {horizon} | {t['ours'].show()} | {t['pymdptoolbox'].show()} | {ratio:.1f}× | {diff:.1e} |")
    return rows, headline


def episode_rows(horizons, steps: int, repeats: int) -> list[str]:
    """Per episode: exploration only, and with planning + evaluation, every explorer interleaved per horizon."""
    mdp, rewards = chain_mdp(), chain_rewards()
    cells = {key: [] for key in EXPLORERS}
    for horizon in horizons:
        calls = {}
        for key in EXPLORERS:
            config = ExploreConfig(explorer=key, horizon=horizon)
            # every=steps: exploration only; every episode: + planning and evaluating the 13 rewards
            for kind, every in (("explore", steps), ("plan", 1)):
                calls[key, kind] = partial(_episodes, mdp, rewards, config, steps, every)
        t = interleaved(calls, repeats=repeats)
        for key in EXPLORERS:
            cells[key].append(f"{t[key, 'explore'].per(steps).show()} / {t[key, 'plan'].per(steps).show()}")
    return [f"| {EXPLORER_NAMES[key]} | " + " | ".join(row) + " |" for key, row in cells.items()]


def _episodes(mdp, rewards, config: ExploreConfig, steps: int, every: int) -> None:
    last_state(run(mdp, rewards, config=config, steps=steps, every=every))


def scaling_rows(horizons, steps: int, seeds) -> list[str]:
    mdp, rewards = chain_mdp(), chain_rewards()
    tables = [last_state(scaling(mdp, rewards, horizons=horizons, epsilon=EPSILON, steps=steps, seed=s)) for s in seeds]
    rows = []
    for i, key in enumerate(tables[0].explorers):
        cells = []
        for j in range(len(horizons)):
            found = [int(t.episodes[i, j]) for t in tables]
            reached = [k for k in found if k >= 0]
            median = f"{statistics.median(reached):g}" if len(reached) == len(found) else "—"
            cells.append(f"{median} ({', '.join(str(k) if k >= 0 else f'>{steps}' for k in found)})")
        rows.append(f"| {EXPLORER_NAMES[key]} | " + " | ".join(cells) + " |")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="H ∈ {12, 24}, K = 30, one seed; prints only")
    parser.add_argument("--full", action="store_true", help="episodes to ε within K ≤ 100, not 50")
    args = parser.parse_args()
    torch.set_num_threads(1)
    # Episodes to ε run every explorer K episodes per horizon and seed (about half the run at K = 100). A cell that
    # settles at k ≤ 50 within K = 100 reads the same at K = 50; a `>50` cell may settle between 50 and 100.
    k_max = 100 if args.full else 50
    horizons, steps, seeds = ((12, 24), 30, (0,)) if args.quick else ((12, 24, 48, 96), k_max, (0, 1, 2))
    timed_steps, repeats = (3, 5) if args.quick else (10, 5)  # episodes per timed run: K runs × 5 would not fit
    quiet()
    planning, headline = planning_rows(horizons, repeats)
    head = " | ".join(f"H = {h}" for h in horizons)
    lines = [
        "# Reward-free exploration benchmark",
        "",
        f"{platform.processor() or platform.machine()}, torch {torch.__version__}, numpy {np.__version__}, "
        f"1 thread, float64, the 12-state segmented chain (d = 5), 13 rewards. Times: median (min–max) over "
        f"{repeats} interleaved rounds; ratios of medians.",
        "",
        "## Value iteration vs pymdptoolbox FiniteHorizon (13 rewards)",
        "",
        "| H | ours | pymdptoolbox | pymdptoolbox / ours | max |ΔV| |",
        "|---|---|---|---|---|",
        *planning,
        "",
        f"## Wall time per episode, runs of {timed_steps} episodes: exploration only / with planning + evaluation "
        "of 13 rewards (exploration only still plans for the first and last episode it yields)",
        "",
        f"| explorer | {head} |",
        "|---" * (len(horizons) + 1) + "|",
        *episode_rows(horizons, timed_steps, repeats),
        "",
        f"## Episodes to ε = {EPSILON} (worst of 13 rewards stays ≤ ε from then on), K ≤ {steps}, seeds {seeds}",
        "",
        "Median over seeds (per-seed values; `>K`: not settled within K; — when a seed did not settle)"
        + ("." if args.full or args.quick else "; `--full` runs K ≤ 100."),
        "",
        f"| explorer | {head} |",
        "|---" * (len(horizons) + 1) + "|",
        *scaling_rows(horizons, steps, seeds),
    ]
    publish("exploration", lines, quick=args.quick, headline=headline)


if __name__ == "__main__":
    main()
