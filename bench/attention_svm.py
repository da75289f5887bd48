"""Transformers-as-SVM benchmark: time per training step and per SVM solve, plus the paper's curve.

    python bench/attention_svm.py [--quick]

No anchor to beat (issue 7): the table reports seconds and the step/solve ratios between sizes. The
second table is the paper's experiment (local_converge: n=6, T=8, d=10, normalized GD, η=0.1) over seeds:
median / min correlation with the matching SVM at k = 100, 500, 2000, with the conventions on and off.
"""

from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _common import Timing, interleaved, publish, quiet

from core.attention_svm import correlation, make_problem, run, solve_svm
from core.attention_svm.svm import SVM_BUDGET
from core.runs import last_state


def time_cells(n: int, T: int, d: int, steps: int, repeats: int) -> dict[str, Timing]:
    """Per training step (W, KQ) and per SVM solve (fro, nuc, where within the budget), interleaved."""
    p = make_problem(n=n, T=T, d=d, seed=0)
    calls = {param: lambda param=param: last_state(run(p, param=param, steps=steps)) for param in ("w", "kq")}
    if n * (T - 1) * d * d <= SVM_BUDGET:
        problems = itertools.cycle([make_problem(n=n, T=T, d=d, seed=s) for s in range(1, repeats + 2)])
        for norm in ("fro", "nuc"):
            calls[norm] = lambda norm=norm: solve_svm(q := next(problems), q.optimal, norm=norm)
    timings = interleaved(calls, repeats=repeats)  # the warm-up round canonicalizes the cached SVM programs
    return {key: t.per(steps) if key in ("w", "kq") else t for key, t in timings.items()}


def paper_curve(seeds, steps=2000):
    problems = [make_problem(n=6, T=8, d=10, seed=s) for s in range(seeds)]
    rows = []
    for param in ("w", "kq"):
        for conventions in (True, False):
            kept = {}
            for s in run(problems, param=param, steps=steps, lr=0.1, conventions=conventions):
                if s.step in (100, 500, steps):
                    kept[s.step] = s
            sel = kept[steps].selected
            norm = "fro" if param == "w" else "nuc"
            svms = [solve_svm(p, sel[b], norm=norm) for b, p in enumerate(problems)]
            cells = []
            for k in (100, 500, steps):
                c = np.array([correlation(kept[k].W[b], svms[b]) for b in range(seeds)])
                cells.append(f"{np.median(c):.4f} ({c.min():.3f})")
            rows.append(f"| {param.upper()} | {'on' if conventions else 'off'} | " + " | ".join(cells) + " |")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="fewer steps and seeds, about a minute")
    args = parser.parse_args()
    steps, repeats, seeds = (100, 5, 5) if args.quick else (500, 5, 20)
    quiet()
    lines = [
        "# Transformers as SVMs: timings",
        "",
        f"CPU, float64; a training step: median (min–max) over {repeats} interleaved runs of {steps} steps; an SVM "
        f"solve: over {repeats} interleaved solves, each on another problem (`--quick`={args.quick}). No anchor "
        "(issue 7).",
        "",
        "| size (n, T, d) | step W | step KQ | SVM fro (SOCP) | SVM nuc (SDP) |",
        "|---|---|---|---|---|",
    ]
    cells = {size: time_cells(*size, steps, repeats) for size in ((6, 8, 10), (12, 12, 16), (50, 50, 50))}
    for size, timing in cells.items():
        shown = [timing[k].show() if k in timing else "refused (budget)" for k in ("w", "kq", "fro", "nuc")]
        lines.append(f"| {', '.join(map(str, size))} | " + " | ".join(shown) + " |")
    paper, largest = cells[6, 8, 10], cells[50, 50, 50]
    lines += [
        f"| ratio 50³ / paper | ×{paper['w'].ratio(largest['w']):.0f} | ×{paper['kq'].ratio(largest['kq']):.0f} | — | — |",
        "",
    ]
    lines.append(
        f"`refused (budget)`: n(T − 1)·d² = {49 * 50 * 50**2:,} constraint entries is past the lab's SVM budget "
        f"({SVM_BUDGET:,}); before the budget, these solves ran past 120 s (a dense KKT system)."
    )
    lines += [
        "",
        f"## Paper experiment, {seeds} seeds: median (min) correlation with the matching SVM",
        "",
        "| param | conventions | k = 100 | k = 500 | k = 2000 |",
        "|---|---|---|---|---|",
        *paper_curve(seeds),
    ]
    names = {"w": "step W (ms)", "kq": "step KQ (ms)", "fro": "SVM fro (ms)", "nuc": "SVM nuc (ms)"}
    headline = {names[key]: 1e3 * t.median for key, t in paper.items()}
    publish("attention_svm", lines, quick=args.quick, headline=headline)


if __name__ == "__main__":
    main()
