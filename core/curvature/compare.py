"""GNS with every Hessian approximation against gradient descent on one problem, as flat rows to plot.

The softmax Fisher (650 × 650 from 1,797 outer products, then an eigendecomposition, every iteration) costs
about a minute of CPU for 200 iterations, so the page reads the comparison precomputed at the longest budget
it offers: ``python -m core.curvature.compare`` rewrites ``assets/curvature_gns.json`` (no randomness: x₀ = 0).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import torch

from core.curvature.gns import GNSState, gns, gradient_descent
from core.curvature.problems import Problem, logistic_digits, softmax_digits
from core.errors import check_budget, check_choice, check_int

PROBLEMS: dict[str, Callable[[], Problem]] = {"logistic": logistic_digits, "softmax": softmax_digits}
ASSET = Path(__file__).resolve().parents[2] / "assets" / "curvature_gns.json"
MAX_ITERATIONS = 200  # the longest comparison shipped (and the page's slider maximum)
CONVERGED = 1e-11  # ‖∇f‖ at which the exact-Hessian run that sets f* stops


def f_star(problem: Problem) -> float:
    """The optimum, from exact-Hessian GNS run to ‖∇f‖ ≤ 1e-11 (9 iterations on softmax, 8 on logistic)."""
    x0 = torch.zeros(problem.d, dtype=torch.float64)
    return min(s.f for s in gns(problem, x0, steps=30, tol=CONVERGED))


def runs(problem: Problem, *, steps: int) -> dict[str, Iterator[GNSState]]:
    """GNS with each Hessian approximation of ``problem`` (exact stops when converged), and gradient descent."""
    x0 = torch.zeros(problem.d, dtype=torch.float64)
    out = {name: gns(problem, x0, hessian=name, steps=steps, tol=CONVERGED) for name in problem.hessians}
    return out | {"gradient descent": gradient_descent(problem, x0, steps=steps)}


def comparison(problem_key: str, *, steps: int) -> dict:
    """``{"f_star", "rows"}``: one row per iteration and method (iteration, f, gap, γ, solves, accepted)."""
    problem = PROBLEMS[check_choice("problem", problem_key, tuple(PROBLEMS))]()
    check_budget("iterations", check_int("steps", steps), MAX_ITERATIONS)
    best = f_star(problem)
    rows = [
        {
            "method": name,
            "iteration": s.step,
            "f": s.f,
            "gap": max(s.f - best, 1e-16),  # a log axis: the optimum itself is drawn at 1e-16
            "gamma": s.gamma,
            "solves": s.solves,
            "accepted": s.accepted,
        }
        for name, states in runs(problem, steps=steps).items()
        for s in states
    ]
    return {"f_star": best, "rows": rows}


def load_comparison(problem_key: str, *, steps: int) -> dict:
    """The shipped comparison cut at ``steps`` iterations (``steps`` ≤ ``MAX_ITERATIONS``)."""
    check_choice("problem", problem_key, tuple(PROBLEMS))
    check_budget("iterations", check_int("steps", steps), MAX_ITERATIONS)
    shipped = json.loads(ASSET.read_text())[problem_key]
    return {"f_star": shipped["f_star"], "rows": [r for r in shipped["rows"] if r["iteration"] <= steps]}


def _main() -> None:
    torch.set_num_threads(1)
    meta = {"code": "python -m core.curvature.compare", "steps": MAX_ITERATIONS, "x0": 0, "l2": 1e-3}
    shipped = {key: comparison(key, steps=MAX_ITERATIONS) for key in PROBLEMS}
    ASSET.write_text(json.dumps(meta | shipped, separators=(",", ":")) + "\n")
    print(f"wrote {ASSET}")


if __name__ == "__main__":
    _main()
