"""The composite problem of the gradient-sliding section: TV-regularized least squares with a ridge term."""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
import torch

from core.device import generator
from core.errors import check_choice, check_range, check_seed

WEIGHT_RANGE = (1e-6, 1e3)  # tv and mu where CLARABEL still certifies Ψ* to 1e-12
PROBLEMS = {"tv-denoising": "TV-regularized least squares: recover a piecewise-constant signal"}


@dataclass(frozen=True)
class CompositeProblem:
    """``Ψ(x) = f(x) + h(x) + χ(x)`` with ``f = ||Ax - b||²/2`` (L-smooth), ``h = tv ||Dx||_1`` (M-Lipschitz),
    ``χ = μ/2 ||x||²``; D is the first difference. Ψ* comes from cvxpy/CLARABEL at tolerance 1e-12.

    Shapes:
        a: (m, n), b: (m,), x0, signal: (n,)
    """

    name: str
    a: torch.Tensor
    b: torch.Tensor
    tv: float
    mu: float
    x0: torch.Tensor
    signal: torch.Tensor  # the piecewise-constant truth behind b
    psi_star: float

    @property
    def lipschitz(self) -> float:
        return float(torch.linalg.matrix_norm(self.a, 2)) ** 2

    @property
    def difference_matrix(self) -> torch.Tensor:
        """D, (n - 1, n): (Dx)_i = x_{i+1} - x_i."""
        return torch.diff(torch.eye(self.x0.numel(), dtype=self.a.dtype, device=self.a.device), dim=0)

    @property
    def nonsmooth_lipschitz(self) -> float:
        """M >= ||h'(x)||: tv ||D'||_2 sqrt(n - 1)."""
        d = self.difference_matrix
        return self.tv * float(torch.linalg.matrix_norm(d, 2)) * math.sqrt(d.shape[0])

    def gradient(self, x: torch.Tensor) -> torch.Tensor:
        return self.a.T @ (self.a @ x - self.b)

    def subgradient(self, x: torch.Tensor) -> torch.Tensor:
        """tv D' sign(Dx)."""
        s = torch.sign(torch.diff(x))
        return self.tv * (torch.nn.functional.pad(s, (1, 0)) - torch.nn.functional.pad(s, (0, 1)))

    def objective(self, x: torch.Tensor) -> torch.Tensor:
        r = self.a @ x - self.b
        return 0.5 * r @ r + self.tv * torch.diff(x).abs().sum() + 0.5 * self.mu * x @ x


def tv_problem(
    n: int = 50, m: int = 40, *, tv: float = 0.05, mu: float = 0.05, noise: float = 0.1, seed: int = 0, device=None
) -> CompositeProblem:
    """A piecewise-constant signal seen through ``m`` Gaussian measurements (A ~ N(0, 1/m)) with noise."""
    gen = generator(seed, "cpu")
    jumps = torch.randint(1, n, (4,), generator=gen).sort().values
    levels = torch.randn(5, generator=gen, dtype=torch.float64)
    signal = levels[torch.bucketize(torch.arange(n), jumps, right=True)]
    a = torch.randn((m, n), generator=gen, dtype=torch.float64) / math.sqrt(m)
    b = a @ signal + noise * torch.randn(m, generator=gen, dtype=torch.float64)
    psi_star = _optimum(a.numpy(), b.numpy(), tv, mu)
    device = device or "cpu"
    return CompositeProblem(
        "tv-denoising",
        a.to(device),
        b.to(device),
        tv,
        mu,
        torch.zeros(n, dtype=torch.float64, device=device),
        signal.to(device),
        psi_star,
    )


def _optimum(a: np.ndarray, b: np.ndarray, tv: float, mu: float) -> float:
    import cvxpy as cp

    x = cp.Variable(a.shape[1])
    psi = 0.5 * cp.sum_squares(a @ x - b) + tv * cp.norm1(cp.diff(x)) + 0.5 * mu * cp.sum_squares(x)
    problem = cp.Problem(cp.Minimize(psi))
    problem.solve(solver=cp.CLARABEL, tol_gap_abs=1e-12, tol_gap_rel=1e-12, tol_feas=1e-12)
    return float(problem.value)


def make_problem(name: str, *, tv: float = 0.05, mu: float = 0.05, seed: int = 0, device=None) -> CompositeProblem:
    """A problem from :data:`PROBLEMS`.

    >>> p = make_problem("tv-denoising")
    >>> round(p.lipschitz, 2), round(p.nonsmooth_lipschitz, 2), 0 < p.psi_star < float(p.objective(p.x0))
    (3.84, 0.7, True)
    """
    check_choice("problem", name, PROBLEMS)
    tv, mu = check_range("tv", tv, *WEIGHT_RANGE), check_range("mu", mu, *WEIGHT_RANGE)
    return _cached(tv, mu, check_seed(seed), str(torch.device(device or "cpu")))


@functools.lru_cache(maxsize=8)
def _cached(tv: float, mu: float, seed: int, device: str) -> CompositeProblem:
    return tv_problem(tv=tv, mu=mu, seed=seed, device=device)
