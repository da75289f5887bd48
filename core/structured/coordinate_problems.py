"""The problems of the coordinate-descent section: Nutini et al.'s dataset recipes at a CPU-friendly size."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from core.errors import check_choice, check_int, check_positive

PROBLEMS = {
    "least-squares": "Least squares (dataset A recipe)",
    "logistic": "ℓ2-regularized logistic (dataset B recipe)",
    "lasso": "ℓ1-regularized least squares (Lasso)",
    "quadratic-2d": "2-D quadratic (intuition)",
}


@dataclass(frozen=True)
class CoordinateProblem:
    """``F(x) = f(x) + l1 ||x||_1`` on R^d, with what the selection rules need.

    ``curvature`` is a matrix M with ``M >= Hessian of f`` everywhere (the Hessian itself for quadratics):
    ``L_i = M_ii`` are the coordinate Lipschitz constants and ``M_bb`` the block bounds.

    Shapes:
        x0: (d,), curvature: (d, d)
    """

    name: str
    smooth: Callable[[torch.Tensor], torch.Tensor]
    gradient: Callable[[torch.Tensor], torch.Tensor]
    curvature: torch.Tensor
    l1: float
    f_star: float
    x0: torch.Tensor

    @property
    def d(self) -> int:
        return self.x0.numel()

    def objective(self, x: torch.Tensor) -> torch.Tensor:
        return self.smooth(x) + self.l1 * x.abs().sum()


def dataset_a(n: int, p: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Nutini et al.'s dataset-A recipe (their datasets.py): biased Gaussian columns scaled by 10 N(0, 1), kept
    with probability 10 log(n) / n; a 10%-sparse w; ``b = A w + N(0, 1)``. Returns (A, w, noise)."""
    rng = np.random.default_rng(seed)
    a = (rng.standard_normal((n, p)) + 1.0) * (10.0 * rng.standard_normal(p))
    a = a * (rng.random((n, p)) < min(1.0, 10 * math.log(n) / n))
    w = rng.standard_normal(p) * (rng.random(p) < 0.1)
    return a, w, rng.standard_normal(n)


def _quadratic(name, a, b, l1, f_star, device) -> CoordinateProblem:
    a_t, b_t = (torch.tensor(v, dtype=torch.float64, device=device) for v in (a, b))
    q, c = a_t.T @ a_t, a_t.T @ b_t  # f = 1/2 x'Qx - c'x + 1/2 ||b||^2
    half_b2 = 0.5 * float(b_t @ b_t)
    return CoordinateProblem(
        name=name,
        smooth=lambda x: 0.5 * x @ (q @ x) - c @ x + half_b2,
        gradient=lambda x: q @ x - c,
        curvature=q,
        l1=l1,
        f_star=f_star,
        x0=torch.zeros(a.shape[1], dtype=torch.float64, device=device),
    )


def least_squares(n: int, p: int, seed: int, device) -> CoordinateProblem:
    a, w, noise = dataset_a(n, p, seed)
    b = a @ w + noise
    residual = b - a @ np.linalg.lstsq(a, b, rcond=None)[0]
    return _quadratic("least-squares", a, b, 0.0, 0.5 * float(residual @ residual), device)


def lasso(n: int, p: int, seed: int, device) -> CoordinateProblem:
    """Lasso with ``l1 = 0.1 ||A'b||_inf`` (a sparse solution); F* from cvxpy/CLARABEL."""
    a, w, noise = dataset_a(n, p, seed)
    b = a @ w + noise
    l1 = 0.1 * float(np.abs(a.T @ b).max())
    return _quadratic("lasso", a, b, l1, _lasso_optimum(a, b, l1), device)


def _lasso_optimum(a: np.ndarray, b: np.ndarray, l1: float) -> float:
    import cvxpy as cp

    x = cp.Variable(a.shape[1])
    problem = cp.Problem(cp.Minimize(0.5 * cp.sum_squares(a @ x - b) + l1 * cp.norm1(x)))
    problem.solve(solver=cp.CLARABEL, tol_gap_abs=1e-12, tol_gap_rel=1e-12, tol_feas=1e-12)
    return float(problem.value)


def logistic(n: int, p: int, seed: int, device, ridge: float = 1.0) -> CoordinateProblem:
    """Dataset-B recipe: ``b = sign(A w)`` with 10% flips; f = sum softplus(-b a'x) + ridge/2 ||x||^2."""
    a, w, _ = dataset_a(n, p, seed)
    rng = np.random.default_rng(seed + 1)
    b = np.sign(a @ w) * np.where(rng.random(n) < 0.1, -1.0, 1.0)
    b[b == 0] = 1.0
    a_t, b_t = (torch.tensor(v, dtype=torch.float64, device=device) for v in (a, b))
    ya = b_t[:, None] * a_t  # (n, p)

    def smooth(x):
        return torch.nn.functional.softplus(-(ya @ x)).sum() + 0.5 * ridge * x @ x

    def gradient(x):
        return -ya.T @ torch.sigmoid(-(ya @ x)) + ridge * x

    eye = torch.eye(p, dtype=torch.float64, device=device)
    x0 = torch.zeros(p, dtype=torch.float64, device=device)
    return CoordinateProblem(
        "logistic",
        smooth,
        gradient,
        0.25 * ya.T @ ya + ridge * eye,
        0.0,
        _newton_minimum(smooth, gradient, ya, ridge, x0),
        x0,
    )


def _newton_minimum(smooth, gradient, ya, ridge, x) -> float:
    """f* of the (strongly convex) logistic problem by damped Newton to machine precision."""
    eye = torch.eye(x.numel(), dtype=x.dtype, device=x.device)
    for _ in range(100):
        g = gradient(x)
        if float(g.norm()) < 1e-10:
            break
        s = torch.sigmoid(ya @ x)
        step = torch.linalg.solve(ya.T @ (ya * (s * (1 - s))[:, None]) + ridge * eye, g)
        t, fx = 1.0, smooth(x)
        while smooth(x - t * step) > fx - 0.25 * t * (g @ step) and t > 1e-10:
            t /= 2
        x = x - t * step
    return float(smooth(x))


def quadratic_2d(device) -> CoordinateProblem:
    """``1/2 (x - x*)' Q (x - x*)`` with very different coordinate curvatures (Q_11 = 10, Q_22 = 1)."""
    q = torch.tensor([[10.0, 2.5], [2.5, 1.0]], dtype=torch.float64, device=device)
    x_star = torch.tensor([1.0, -1.0], dtype=torch.float64, device=device)
    return CoordinateProblem(
        name="quadratic-2d",
        smooth=lambda x: 0.5 * (x - x_star) @ (q @ (x - x_star)),
        gradient=lambda x: q @ (x - x_star),
        curvature=q,
        l1=0.0,
        f_star=0.0,
        x0=torch.tensor([-1.5, 3.0], dtype=torch.float64, device=device),
    )


def make_problem(name: str, *, n: int = 100, d: int = 300, seed: int = 1, device=None) -> CoordinateProblem:
    """A problem from :data:`PROBLEMS`; ``n`` rows and ``d`` variables (ignored by ``quadratic-2d``).

    >>> p = make_problem("least-squares", n=20, d=40)
    >>> p.d, p.f_star < 1e-12
    (40, True)
    """
    check_choice("problem", name, PROBLEMS)
    n, d = check_int("n", n, 2, 2000), check_int("d", d, 2, 2000)
    check_positive("seed", seed, strict=False)
    return _cached(name, n, d, int(seed), str(torch.device(device or "cpu")))


@functools.lru_cache(maxsize=16)
def _cached(name: str, n: int, d: int, seed: int, device: str) -> CoordinateProblem:
    if name == "quadratic-2d":
        return quadratic_2d(device)
    return {"least-squares": least_squares, "lasso": lasso, "logistic": logistic}[name](n, d, seed, device)
