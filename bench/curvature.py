"""Curvature benchmark: M-FAC IHVP vs a dense solve and vs CG on Fisher-vector products; GNS wall time.

Gradients are per-sample cross-entropy gradients of the zoo's ``digits-mlp-converged`` (d = 4,810; ``--quick``:
the output layer only, d = 650), float64. CG is ``core.bilevel.linear_solve.cg`` on the matrix-free product
F̂v = λv + Gᵀ(Gv)/m (the landscape lab has no CG-on-HVP solver). GNS: digits logistic and softmax, x₀ = 0,
L2 1e-3, until f − f* < 1e-10 or the iteration cap: iterations and solves counted, and the CPU seconds of that
one run (not repeated: a softmax Fisher run takes minutes; five of each would not fit `make bench`).

    python bench/curvature.py [--quick] [--full]
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._common import interleaved_keeping, publish, quiet  # noqa: E402
from core import curvature, zoo  # noqa: E402
from core.bilevel.linear_solve import cg  # noqa: E402
from core.curvature import compare  # noqa: E402
from core.curvature.pruning import per_sample_grads  # noqa: E402
from core.landscape.models import digits_batch  # noqa: E402

DAMP = 1e-4
# GNS iteration caps; gradient descent gets ten times as many. Softmax's Fisher GNS never reaches 1e-10 and costs
# ~0.1 s an iteration, so its cap sets the run's length: 100 by default, 300 with --full (+20 s).
GNS_CAPS = {"logistic": 3000, "softmax": 100}
FULL_CAPS = {"logistic": 3000, "softmax": 300}
GD_CAPS = {"logistic": 30_000, "softmax": 3000}


def fisher_matvec(g: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
    return lambda v: DAMP * v + g.T @ (g @ v) / len(g)


def relative_error(y: torch.Tensor, exact: torch.Tensor) -> float:
    return float((y - exact).norm() / exact.norm())


def ihvp_rows(grads: torch.Tensor, x: torch.Tensor, repeats: int) -> tuple[list[str], dict[str, float]]:
    rows, headline, dense = [], {}, None
    for m in (16, 64, 256):
        g = grads[:m]
        fisher = DAMP * torch.eye(g.shape[1], dtype=g.dtype) + g.T @ g / m
        static = curvature.StaticMFAC(g, DAMP)
        calls = {
            "setup": lambda g=g: curvature.StaticMFAC(g, DAMP),
            "ihvp": lambda static=static: static.ihvp(x),
            "cg": lambda g=g: cg(fisher_matvec(g), x, maxiter=2000, tol=1e-12),
        }
        if dense is None:  # a dense solve costs the same d × d work at every m: timed with the first
            calls["dense"] = lambda fisher=fisher: torch.linalg.solve(fisher, x)
        t, out = interleaved_keeping(calls, repeats=repeats)  # out: each call's result in its last timed round
        dense = dense or t["dense"]
        exact = out["dense"] if "dense" in out else torch.linalg.solve(fisher, x)  # ~2 s each at d = 4,810
        solved = out["cg"]
        error = partial(relative_error, exact=exact)
        rows.append(
            f"| {m} | {t['setup'].show()} | {t['ihvp'].show()} | {error(static.ihvp(x)):.1e} | {dense.show()} | "
            f"{t['cg'].show()} ({solved.iterations} it) | {error(solved.x):.1e} | {t['ihvp'].ratio(dense):.0f}× | "
            f"{t['ihvp'].ratio(t['cg']):.0f}× |"
        )
        headline = {
            f"dense / M-FAC IHVP, m = {m} (×)": t["ihvp"].ratio(dense),
            f"CG / M-FAC IHVP, m = {m} (×)": t["ihvp"].ratio(t["cg"]),
            f"M-FAC IHVP, m = {m} (ms)": 1e3 * t["ihvp"].median,
        }
    return rows, headline  # the headline is the largest window's


def gns_rows(caps: dict[str, int]) -> list[str]:
    """Iterations and solves to f − f* < 1e-10, and the CPU seconds of that one run (not repeated: seconds long)."""
    rows = []
    for key, make in (("logistic", curvature.logistic_digits), ("softmax", curvature.softmax_digits)):
        problem = make()
        x0 = torch.zeros(problem.d, dtype=torch.float64)
        f_star = compare.f_star(problem)
        methods = {name: curvature.gns(problem, x0, hessian=name, steps=caps[key]) for name in problem.hessians}
        methods["gradient descent"] = curvature.gradient_descent(problem, x0, steps=GD_CAPS[key])
        for name, states in methods.items():
            reached, solves, start = None, 0, time.process_time()
            for state in states:
                solves += state.solves
                if state.f - f_star < 1e-10:
                    reached = state.step
                    break
            seconds = time.process_time() - start
            rows.append(f"| {key} | {name} | {reached or f'> {state.step}'} | {solves} | {seconds:.2f} |")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--full", action="store_true", help="GNS capped at 300 iterations on softmax, not 100")
    args = parser.parse_args()
    quick, caps = args.quick, FULL_CAPS if args.full else GNS_CAPS
    torch.set_num_threads(1)
    x, y = digits_batch("train")
    grads = per_sample_grads(zoo.load("digits-mlp-converged").eval(), x[:256], y[:256])
    grads = grads[:, -650:] if quick else grads
    v = torch.randn(grads.shape[1], dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    repeats = 5
    quiet()
    ihvp, headline = ihvp_rows(grads, v, repeats)
    lines = [
        "# Curvature benchmark",
        "",
        f"{platform.processor() or platform.machine()}, 1 thread, torch {torch.__version__}, float64, "
        f"d = {grads.shape[1]}, λ = {DAMP:g}. Times: median (min–max) over {repeats} interleaved rounds of M-FAC "
        "setup (once per window), one M-FAC IHVP, CG (tol 1e-12) and, with the first window, the dense solve (the "
        "same d × d solve at every m). Ratios: of medians.",
        "",
        "| m | M-FAC setup | M-FAC IHVP | M-FAC rel. error | dense solve | CG | CG rel. error "
        "| dense / M-FAC IHVP | CG / M-FAC IHVP |",
        "|---|---|---|---|---|---|---|---|---|",
        *ihvp,
        "",
        "GNS vs gradient descent (backtracking) to f − f* < 1e-10 (iterations and solves: exact counts; CPU s: "
        f"process time of one run, capped at the iteration limit: GNS {caps['logistic']} on logistic, "
        f"{caps['softmax']} on softmax{'' if args.full else ' (300 with --full)'}; gradient descent "
        f"{GD_CAPS['logistic']} and {GD_CAPS['softmax']}):",
        "",
        "| problem | method | iterations | solves / trials | CPU s |",
        "|---|---|---|---|---|",
        *gns_rows(caps),
    ]
    publish("curvature", lines, quick=quick, headline=headline)


if __name__ == "__main__":
    main()
