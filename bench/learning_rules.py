"""Learning-rules benchmark: NoProp-DT vs backprop through the same chain vs an MLP (wall time per epoch on digits,
peak CUDA memory where there is a GPU), and RRR iterations and time per solve on XOR 2-3-1 and the 2-bit multiplier.

    python bench/learning_rules.py [--quick] [--device cuda]
"""

from __future__ import annotations

import argparse
import itertools
import platform
import sys
from functools import partial
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._common import interleaved, publish, quiet  # noqa: E402
from core.data.digits import load_digits_split  # noqa: E402
from core.learning_rules import noprop_run, rrr_run  # noqa: E402
from core.runs import last_state  # noqa: E402


def multiplier_2bit() -> tuple[torch.Tensor, torch.Tensor]:
    """All 16 products of two 2-bit numbers as ±1 bits: inputs (16, 4), targets (16, 4)."""
    rows = [(a, b) for a, b in itertools.product(range(4), repeat=2)]
    bits = lambda n, k: [1.0 if (n >> i) & 1 else -1.0 for i in range(k)]  # noqa: E731
    return torch.tensor([bits(a, 2) + bits(b, 2) for a, b in rows]), torch.tensor([bits(a * b, 4) for a, b in rows])


def noprop_rows(epochs: int, device: str, repeats: int) -> tuple[list[str], dict[str, float]]:
    """Whole training runs, the three methods interleaved; seconds per epoch."""
    data = load_digits_split(0.2)
    last, peak = {}, {}

    def train(method: str) -> None:
        if device == "cuda":
            torch.cuda.reset_peak_memory_stats()
        last[method] = last_state(noprop_run(data, method=method, steps=epochs, seed=0, device=device))
        peak[method] = f"{torch.cuda.max_memory_allocated() / 2**20:.1f} MiB" if device == "cuda" else "n/a (CPU)"

    methods = ("noprop", "backprop_chain", "mlp")
    timings = {
        m: t.per(epochs) for m, t in interleaved({m: partial(train, m) for m in methods}, repeats=repeats).items()
    }
    base = timings["noprop"]
    rows = [
        f"| {m} | {timings[m].show('s')} | {timings[m].median / base.median:.2f}× | {peak[m]} | "
        f"{last[m].accuracy_noise_free:.3f} |"
        for m in methods
    ]
    headline = {
        "NoProp s / epoch": base.median,
        "backprop chain / NoProp time (×)": timings["backprop_chain"].median / base.median,
        "NoProp test accuracy": last["noprop"].accuracy_noise_free,
    }
    return rows, headline


def rrr_solved(name: str, inputs, targets, hidden, steps: int, n_runs: int) -> str:
    solved_at = torch.full((n_runs,), -1)
    for state in rrr_run(inputs, targets, hidden=hidden, steps=steps, n_runs=n_runs, every=10, seed=0):
        solved_at = torch.where(state.solved & (solved_at < 0), state.step, solved_at)
    ok = solved_at[solved_at > 0].float()
    return f"| {name} | {len(ok)}/{n_runs} within {steps} | {f'{ok.mean():.0f}' if len(ok) else '–'} |"


def rrr_rows(tasks: dict[str, tuple], steps: int, repeats: int) -> list[str]:
    """Solved counts from one full run per task; time per iteration from interleaved runs of ``steps`` iterations."""
    calls = {
        name: lambda x=x, y=y, hidden=hidden, n=n: last_state(rrr_run(x, y, hidden=hidden, steps=steps, n_runs=n))
        for name, (x, y, hidden, _, n) in tasks.items()
    }
    timings = interleaved(calls, repeats=repeats)
    return [
        f"{rrr_solved(name, *task)} {timings[name].per(steps).show()} ({task[-1]} runs batched) |"
        for name, task in tasks.items()
    ]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    torch.set_num_threads(1)
    epochs, mult_steps, repeats = (2, 200, 5) if args.quick else (5, 2000, 5)
    tasks = {  # inputs, targets, hidden, iterations for the solved count, runs batched
        "XOR 2-3-1": (*_xor(), (3,), 1000, 20),
        "2-bit multiplier 4-4-4-4": (*multiplier_2bit(), (4, 4), mult_steps, 5),
    }
    quiet()
    noprop, headline = noprop_rows(epochs, args.device, repeats)
    lines = [
        "# Learning rules benchmark",
        "",
        f"{platform.processor() or platform.machine()}, torch {torch.__version__}, one thread, device {args.device}. "
        f"Times: median (min–max) over {repeats} interleaved rounds.",
        "",
        f"## NoProp-DT vs backprop on digits (T = 10, {epochs} epochs, 1,437 train / 360 test)",
        "",
        "| method | s / epoch (incl. test eval) | ratio to NoProp | peak memory | test acc (noise-free) |",
        "|---|---|---|---|---|",
        *noprop,
        "",
        "## RRR (σ = 3, β = .2, γ = 1e-3, gapstop .01)",
        "",
        "| task | solved | mean iterations to solve | time per iteration (runs of 100) |",
        "|---|---|---|---|",
        *rrr_rows(tasks, 100, repeats),
    ]
    publish("learning_rules", lines, quick=args.quick, headline=headline)


def _xor() -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.tensor([[-1.0, -1.0], [-1.0, 1.0], [1.0, -1.0], [1.0, 1.0]])
    return x, -(x[:, :1] * x[:, 1:])


if __name__ == "__main__":
    main()
