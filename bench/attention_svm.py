"""Transformers-as-SVM benchmark: time per training step and per SVM solve, plus the paper's curve.

    python bench/attention_svm.py [--quick]

No anchor to beat (issue 7): the table reports seconds and the step/solve ratios between sizes. The
second table is the paper's experiment (local_converge: n=6, T=8, d=10, normalized GD, η=0.1) over seeds:
median / min correlation with the matching SVM at k = 100, 500, 2000, with the conventions on and off.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _common import publish

from core.attention_svm import correlation, make_problem, optimal_tokens, solve_svm, train, train_batch


def time_steps(n, T, d, param, steps):
    p = make_problem(n, T, d, seed=0)
    it = train(p, param=param, steps=steps)
    next(it)
    t = time.perf_counter()
    for _ in it:
        pass
    return (time.perf_counter() - t) / steps


def time_solves(n, T, d, norm, repeats):
    problems = [make_problem(n, T, d, seed=s) for s in range(repeats + 1)]
    solve_svm(problems[0], optimal_tokens(problems[0]), norm)  # first call canonicalizes the cached program
    t = time.perf_counter()
    for p in problems[1:]:
        solve_svm(p, optimal_tokens(p), norm)
    return (time.perf_counter() - t) / repeats


def _solve_worker(args, queue):
    queue.put(time_solves(*args))


def time_solves_capped(n, T, d, norm, repeats, cap_s):
    """`time_solves` in a child process, None if it takes more than `cap_s` seconds (dense KKT at d = 50)."""
    queue = mp.Queue()
    proc = mp.Process(target=_solve_worker, args=((n, T, d, norm, repeats), queue))
    proc.start()
    proc.join(cap_s)
    if proc.is_alive():
        proc.terminate()
        proc.join()
        return None
    return queue.get()


def _ms(x):
    return "timeout" if x is None else f"{x * 1e3:.1f} ms"


def paper_curve(seeds, steps=2000):
    problems = [make_problem(6, 8, 10, seed=s) for s in range(seeds)]
    rows = []
    for param in ("W", "KQ"):
        for conventions in (True, False):
            kept = {}
            for s in train_batch(problems, param=param, steps=steps, lr=0.1, conventions=conventions):
                if s.step in (100, 500, steps):
                    kept[s.step] = s
            sel = kept[steps].selected
            norm = "fro" if param == "W" else "nuc"
            svms = [solve_svm(p, sel[b], norm) for b, p in enumerate(problems)]
            cells = []
            for k in (100, 500, steps):
                c = np.array([correlation(kept[k].W[b], svms[b]) for b in range(seeds)])
                cells.append(f"{np.median(c):.4f} ({c.min():.3f})")
            rows.append(f"| {param} | {'on' if conventions else 'off'} | " + " | ".join(cells) + " |")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="fewer steps/solves/seeds, < 60 s")
    args = parser.parse_args()
    steps, repeats, seeds = (200, 3, 5) if args.quick else (2000, 10, 20)
    lines = ["# Transformers as SVMs: timings", "",
             f"CPU, float64, {steps} steps / {repeats} solves per cell (`--quick`={args.quick}). No anchor (issue 7).",
             "", "| size (n, T, d) | step W | step KQ | SVM fro (SOCP) | SVM nuc (SDP) |", "|---|---|---|---|---|"]
    base, ratios = None, ""
    for n, T, d in ((6, 8, 10), (50, 50, 50)):
        s_w, s_kq = time_steps(n, T, d, "W", steps), time_steps(n, T, d, "KQ", steps)
        reps = repeats if d <= 10 else 1
        cap = 1 if args.quick and d > 10 else 120  # the d = 50 solves run past any quick budget
        f, u = (time_solves_capped(n, T, d, norm, reps, cap) for norm in ("fro", "nuc"))
        cells = [s_w, s_kq, f, u]
        ratio = "" if base is None else " / ".join("—" if a is None else f"×{a / b:.0f}"
                                                   for a, b in zip(cells, base, strict=True))
        base = base or cells
        lines.append(f"| {n}, {T}, {d} | {s_w * 1e3:.3f} ms | {s_kq * 1e3:.3f} ms | {_ms(f)} | {_ms(u)} |")
        ratios = ratios if not ratio else f"| ratio 50³ / paper | {ratio.replace(' / ', ' | ')} |"
    lines += [ratios, ""]
    lines.append(f"`timeout`: the SVM did not finish within {cap} s (CLARABEL on a dense {49 * 50}×{50 * 50} constraint matrix).")
    lines += ["", f"## Paper experiment, {seeds} seeds: median (min) correlation with the matching SVM", "",
              "| param | conventions | k = 100 | k = 500 | k = 2000 |", "|---|---|---|---|---|", *paper_curve(seeds)]
    publish("attention_svm", lines, quick=args.quick)


if __name__ == "__main__":
    main()
