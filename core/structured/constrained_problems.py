"""Equality-constrained test problems: Hock–Schittkowski (HS6, HS7, HS28, HS48, HS51) and constrained logistic regression."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from core.device import generator
from core.errors import OptiscopeError, check_choice, check_positive

PROBLEMS = {
    "hs7": "HS7: log(1 + x₁²) − x₂ on a quartic curve",
    "hs6": "HS6: (1 − x₁)² on a parabola",
    "hs28": "HS28: convex quadratic, 1 linear constraint",
    "hs48": "HS48: convex quadratic, 2 linear constraints",
    "hs51": "HS51: convex quadratic, 3 linear constraints",
    "logreg": "Logistic regression on a sphere ∩ 10 hyperplanes (breast cancer)",
}


@dataclass(frozen=True)
class ConstrainedProblem:
    """``min f(x) s.t. c(x) = 0`` with twice-differentiable torch functions (derivatives by ``torch.func``).

    Shapes:
        x0: (n,); constraints(x): (m,); x_star: (n,) or None where no closed form is known
    """

    name: str
    objective: Callable[[torch.Tensor], torch.Tensor]
    constraints: Callable[[torch.Tensor], torch.Tensor]
    x0: torch.Tensor
    x_star: torch.Tensor | None = None

    @property
    def n(self) -> int:
        return self.x0.numel()


def _t(values, device) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float64, device=device)


def _hock_schittkowski(name: str, device) -> ConstrainedProblem:
    if name == "hs6":
        return ConstrainedProblem(
            name,
            lambda x: (1 - x[0]) ** 2,
            lambda x: (10 * (x[1] - x[0] ** 2)).reshape(1),
            _t([-1.2, 1.0], device),
            _t([1.0, 1.0], device),
        )
    if name == "hs7":
        return ConstrainedProblem(
            name,
            lambda x: torch.log1p(x[0] ** 2) - x[1],
            lambda x: ((1 + x[0] ** 2) ** 2 + x[1] ** 2 - 4).reshape(1),
            _t([2.0, 2.0], device),
            _t([0.0, math.sqrt(3.0)], device),
        )
    if name == "hs28":
        return linear_qp(
            name,
            lambda x: (x[0] + x[1]) ** 2 + (x[1] + x[2]) ** 2,
            [[1.0, 2.0, 3.0]],
            [1.0],
            [-4.0, 1.0, 1.0],
            [0.5, -0.5, 0.5],
            device,
        )
    if name == "hs48":
        return linear_qp(
            name,
            lambda x: (x[0] - 1) ** 2 + (x[1] - x[2]) ** 2 + (x[3] - x[4]) ** 2,
            [[1.0, 1, 1, 1, 1], [0, 0, 1, -2, -2]],
            [5.0, -3.0],
            [3.0, 5, -3, 2, -2],
            [1.0] * 5,
            device,
        )
    return linear_qp(
        name,
        lambda x: (x[0] - x[1]) ** 2 + (x[1] + x[2] - 2) ** 2 + (x[3] - 1) ** 2 + (x[4] - 1) ** 2,
        [[1.0, 3, 0, 0, 0], [0, 0, 1, 1, -2], [0, 1, 0, 0, -1]],
        [4.0, 0, 0],
        [2.5, 0.5, 2, -1, 0.5],
        [1.0] * 5,
        device,
    )


def linear_qp(name: str, objective, a, b, x0, x_star=None, device=None) -> ConstrainedProblem:
    """``min objective(x) s.t. A x = b``, refusing inconsistent or redundant constraints (a singular KKT system).

    >>> linear_qp("bad", lambda x: x @ x, [[1.0, 1.0], [2.0, 2.0]], [1.0, 3.0], [0.0, 0.0])
    Traceback (most recent call last):
    core.errors.OptiscopeError: Expected consistent constraints A x = b, but rank A = 1 < rank [A | b] = 2: no x satisfies them
    """
    a_t, b_t = _t(a, device), _t(b, device)
    check_linear_constraints(a_t, b_t)
    return ConstrainedProblem(
        name, objective, lambda x: a_t @ x - b_t, _t(x0, device), None if x_star is None else _t(x_star, device)
    )


def check_linear_constraints(a: torch.Tensor, b: torch.Tensor) -> None:
    """Raise for ``A x = b`` with no solution, or with dependent rows (the KKT matrix is then singular)."""
    rank = int(torch.linalg.matrix_rank(a))
    augmented = int(torch.linalg.matrix_rank(torch.cat([a, b[:, None]], 1)))
    if augmented > rank:
        raise OptiscopeError(
            f"Expected consistent constraints A x = b, but rank A = {rank} < rank [A | b] = "
            f"{augmented}: no x satisfies them"
        )
    if rank < a.shape[0]:
        raise OptiscopeError(
            f"Expected independent constraints, but {a.shape[0]} rows of A have rank {rank}: "
            "the KKT matrix [[B, Aᵀ], [A, 0]] is singular (drop the redundant rows)"
        )


def constrained_logistic(radius: float = 1.0, *, rows: int = 10, seed: int = 2023, device=None) -> ConstrainedProblem:
    """Hong et al.'s constrained logistic regression: ``mean log(1 + exp(-y X x))`` s.t. ``A x = b``, ``||x||^2 = r^2``.

    X: sklearn's breast-cancer data (569 x 30) scaled to [-1, 1]; A, b ~ N(0, 1) with ``rows`` rows; x0 = 1.
    Refused when infeasible: the plane ``A x = b`` misses the sphere when its closest point to 0 is outside it.
    """
    from sklearn.datasets import load_breast_cancer

    check_positive("radius", radius)
    data = load_breast_cancer()
    lo, hi = data.data.min(0), data.data.max(0)
    x_data = _t(2 * (data.data - lo) / (hi - lo) - 1, device)
    y = _t(2.0 * data.target - 1, device)
    gen = generator(seed, "cpu")
    a = torch.randn((rows, x_data.shape[1]), generator=gen, dtype=torch.float64).to(x_data.device)
    b = torch.randn(rows, generator=gen, dtype=torch.float64).to(x_data.device)
    check_linear_constraints(a, b)
    closest = float(torch.linalg.lstsq(a.cpu(), b.cpu()[:, None]).solution.norm())  # min-norm solution of A x = b
    if closest > radius:
        raise OptiscopeError(
            f"Expected a feasible problem, but the sphere ||x|| = {radius:g} misses the plane A x = b "
            f"(its closest point has norm {closest:.3f}): raise `radius` above {closest:.3f}"
        )
    yx = y[:, None] * x_data

    def constraints(x):
        return torch.cat([a @ x - b, (x @ x - radius**2).reshape(1)])

    return ConstrainedProblem(
        "logreg",
        lambda x: torch.nn.functional.softplus(-(yx @ x)).mean(),
        constraints,
        torch.ones(x_data.shape[1], dtype=torch.float64, device=x_data.device),
    )


def make_problem(name: str, *, radius: float = 1.0, device=None) -> ConstrainedProblem:
    """A problem from :data:`PROBLEMS` (``radius`` is the logistic problem's sphere).

    >>> p = make_problem("hs7")
    >>> p.x0.tolist(), abs(float(p.constraints(p.x_star)[0])) < 1e-12
    ([2.0, 2.0], True)
    """
    check_choice("problem", name, PROBLEMS)
    return _cached(name, float(radius), str(torch.device(device or "cpu")))


@functools.lru_cache(maxsize=16)
def _cached(name: str, radius: float, device: str) -> ConstrainedProblem:
    return constrained_logistic(radius, device=device) if name == "logreg" else _hock_schittkowski(name, device)
