"""Learning-rules benchmark: NoProp-DT vs backprop through the same chain vs an MLP (wall time per epoch on digits,
peak CUDA memory where there is a GPU), and RRR iterations and time per solve on XOR 2-3-1 and the 2-bit multiplier.

    python bench/learning_rules.py [--quick] [--device cuda]
"""

from __future__ import annotations

import argparse
import itertools
import platform
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._common import publish  # noqa: E402
from core.data.digits import load_digits_split  # noqa: E402
from core.learning_rules import noprop_run, rrr_run  # noqa: E402
from core.runs import last_state  # noqa: E402


def multiplier_2bit() -> tuple[torch.Tensor, torch.Tensor]:
    """All 16 products of two 2-bit numbers as ±1 bits: inputs (16, 4), targets (16, 4)."""
    rows = [(a, b) for a, b in itertools.product(range(4), repeat=2)]
    bits = lambda n, k: [1.0 if (n >> i) & 1 else -1.0 for i in range(k)]  # noqa: E731
    return torch.tensor([bits(a, 2) + bits(b, 2) for a, b in rows]), torch.tensor([bits(a * b, 4) for a, b in rows])


def noprop_rows(epochs: int, device: str) -> list[str]:
    data = load_digits_split(0.2)
    rows, base = [], None
    for method in ("noprop", "backprop_chain", "mlp"):
        if device == "cuda":
            torch.cuda.reset_peak_memory_stats()
        start = time.perf_counter()
        last = last_state(noprop_run(data, method=method, steps=epochs, seed=0, device=device))
        per_epoch = (time.perf_counter() - start) / epochs
        base = base or per_epoch
        memory = f"{torch.cuda.max_memory_allocated() / 2**20:.1f} MiB" if device == "cuda" else "n/a (CPU)"
        rows.append(
            f"| {method} | {per_epoch:.3f} | {per_epoch / base:.2f}× | {memory} | {last.accuracy_noise_free:.3f} |"
        )
    return rows


def rrr_row(name: str, inputs, targets, hidden, steps: int, n_runs: int) -> str:
    start = time.perf_counter()
    solved_at = torch.full((n_runs,), -1)
    for state in rrr_run(inputs, targets, hidden=hidden, steps=steps, n_runs=n_runs, every=10, seed=0):
        solved_at = torch.where(state.solved & (solved_at < 0), state.step, solved_at)
    seconds = time.perf_counter() - start
    ok = solved_at[solved_at > 0].float()
    mean = f"{ok.mean():.0f}" if len(ok) else "–"
    return f"| {name} | {len(ok)}/{n_runs} within {steps} | {mean} | {seconds / state.step * 1e3:.1f} ms ({n_runs} runs batched) |"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    torch.set_num_threads(1)
    epochs, mult_steps = (2, 200) if args.quick else (5, 2000)
    lines = [
        "# Learning rules benchmark",
        "",
        f"{platform.processor() or platform.machine()}, torch {torch.__version__}, one thread, device {args.device}.",
        "",
        f"## NoProp-DT vs backprop on digits (T = 10, {epochs} epochs, 1,437 train / 360 test)",
        "",
        "| method | s / epoch (incl. test eval) | ratio to NoProp | peak memory | test acc (noise-free) |",
        "|---|---|---|---|---|",
        *noprop_rows(epochs, args.device),
        "",
        "## RRR (σ = 3, β = .2, γ = 1e-3, gapstop .01)",
        "",
        "| task | solved | mean iterations to solve | time per iteration |",
        "|---|---|---|---|",
        rrr_row("XOR 2-3-1", *_xor(), (3,), 1000, 20),
        rrr_row("2-bit multiplier 4-4-4-4", *multiplier_2bit(), (4, 4), mult_steps, 5),
    ]
    publish("learning_rules", lines, quick=args.quick)


def _xor() -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.tensor([[-1.0, -1.0], [-1.0, 1.0], [1.0, -1.0], [1.0, 1.0]])
    return x, -(x[:, :1] * x[:, 1:])


if __name__ == "__main__":
    main()
