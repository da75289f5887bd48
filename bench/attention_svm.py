"""Transformers-as-SVM benchmark: time per training step and per SVM solve, plus the paper's curve.

    python bench/attention_svm.py [--quick]

No anchor to beat (issue 7): the table reports seconds and the step/solve ratios between sizes. The
second table is the paper's experiment (local_converge: n=6, T=8, d=10, normalized GD, η=0.1) over seeds:
median / min correlation with the matching SVM at k = 100, 500, 2000, with the conventions on and off.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _common import publish

from core.attention_svm import correlation, make_problem, run, solve_svm
from core.attention_svm.svm import SVM_BUDGET


def time_steps(n, T, d, param, steps):
    p = make_problem(n=n, T=T, d=d, seed=0)
    it = run(p, param=param, steps=steps)
    next(it)
    t = time.perf_counter()
    for _ in it:
        pass
    return (time.perf_counter() - t) / steps


def time_solves(n, T, d, norm, repeats):
    problems = [make_problem(n=n, T=T, d=d, seed=s) for s in range(repeats + 1)]
    solve_svm(problems[0], problems[0].optimal, norm=norm)  # first call canonicalizes the cached program
    t = time.perf_counter()
    for p in problems[1:]:
        solve_svm(p, p.optimal, norm=norm)
    return (time.perf_counter() - t) / repeats


def _ms(x):
    return x if isinstance(x, str) else f"{x * 1e3:.3f} ms" if x < 0.01 else f"{x * 1e3:.1f} ms"


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
    parser.add_argument("--quick", action="store_true", help="fewer steps/solves/seeds, < 60 s")
    args = parser.parse_args()
    steps, repeats, seeds = (200, 3, 5) if args.quick else (2000, 10, 20)
    lines = [
        "# Transformers as SVMs: timings",
        "",
        f"CPU, float64, {steps} steps / {repeats} solves per cell (`--quick`={args.quick}). No anchor (issue 7). "
        f"Load average at the start: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores (timings scale with it).",
        "",
        "| size (n, T, d) | step W | step KQ | SVM fro (SOCP) | SVM nuc (SDP) |",
        "|---|---|---|---|---|",
    ]
    base = None
    for n, T, d in ((6, 8, 10), (12, 12, 16), (50, 50, 50)):
        cells = [time_steps(n, T, d, param, steps) for param in ("w", "kq")]
        fits = n * (T - 1) * d * d <= SVM_BUDGET
        reps = repeats if d <= 10 else 1
        cells += [time_solves(n, T, d, norm, reps) if fits else "refused (budget)" for norm in ("fro", "nuc")]
        base = base or cells
        lines.append(f"| {n}, {T}, {d} | " + " | ".join(map(_ms, cells)) + " |")
    ratios = ["—" if isinstance(a, str) else f"×{a / b:.0f}" for a, b in zip(cells, base, strict=True)]
    lines += [f"| ratio 50³ / paper | {' | '.join(ratios)} |", ""]
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
    publish("attention_svm", lines, quick=args.quick)


if __name__ == "__main__":
    main()
