"""Gradient-regularized Newton with the adaptive search on γ, and gradient descent with backtracking.

Gradient-Normalized Smoothness (GNS, Semenov, Jaggi, Doikov): https://arxiv.org/abs/2506.13710
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch

from core.curvature.problems import Problem
from core.errors import OptiscopeError, check_budget, check_choice, check_int, check_positive

MAX_EVALUATIONS = 200_000  # function-and-gradient evaluations one run may spend


@dataclass(frozen=True)
class GNSState:
    """One iteration: the iterate, f, ‖∇f‖, the radius γ_k used, whether the step was taken, and the solves."""

    step: int
    x: torch.Tensor
    f: float
    grad_norm: float
    gamma: float
    accepted: bool
    solves: int


def _value_and_grad(problem: Problem, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    x = x.detach().requires_grad_(True)
    value = problem.loss(x)
    (grad,) = torch.autograd.grad(value, x)
    return value.detach(), grad


def _check_start(problem: Problem, x0: torch.Tensor, steps: int) -> torch.Tensor:
    if not isinstance(problem, Problem):
        raise OptiscopeError(f"Expected `objective` to be a core.curvature Problem, but got {type(problem).__name__}")
    if (
        not isinstance(x0, torch.Tensor)
        or x0.shape != (problem.d,)
        or not x0.is_floating_point()
        or not torch.isfinite(x0).all()
    ):
        raise OptiscopeError(f"Expected `x0` to be a finite float tensor of shape ({problem.d},), but got {x0!r:.60}")
    check_int("steps", steps)
    return x0.to(problem.dtype)


def gns(
    objective: Problem,
    x0: torch.Tensor,
    *,
    hessian: str = "exact",
    gamma0: float = 1.0,
    steps: int = 50,
    gamma_min: float = 1e-9,
    max_search: int = 40,
    tol: float = 0.0,
) -> Iterator[GNSState]:
    r"""Gradient-regularized Newton (GNS, Algorithm 1): https://arxiv.org/abs/2506.13710

    ``x⁺ = x − (H + λI)⁻¹∇f`` with ``λ = ‖∇f‖/γ``. A trial is accepted iff
    ``f(x) − f(x⁺) ≥ ‖∇f(x⁺)‖² / (8λ)``: then γ ← 2γ; else γ ← max(γ/2, γ_min) and the same H is
    re-solved. H is diagonalised once per iteration and reused for every λ. Unlike the reference code, an
    exhausted search or an indefinite H + λI never moves x: the run yields a rejected state and stops.

    Args:
        objective (`Problem`): f with named Hessian approximations (``logistic_digits``, ``softmax_digits``).
        x0 (`Tensor`): the start, shape (d,).
        hessian (`str`, defaults to `"exact"`): a key of ``objective.hessians``.
        gamma0 (`float`, defaults to `1.0`), steps (`int`, defaults to `50`), gamma_min (`float`, defaults to
        `1e-9`), max_search (`int`, defaults to `40`): trials per iteration.
        tol (`float`, defaults to `0.0`): stop once ‖∇f‖ ≤ tol (a converged run spends no more Hessians).
    """
    x0 = _check_start(objective, x0, steps)
    check_choice("hessian", hessian, tuple(objective.hessians))
    gamma0, gamma_min = check_positive("gamma0", gamma0), check_positive("gamma_min", gamma_min)
    check_int("max_search", max_search)
    tol = check_positive("tol", tol, strict=False)
    check_budget("function evaluations (steps × max_search)", steps * max_search, MAX_EVALUATIONS)
    return _gns_loop(objective, x0, hessian, gamma0, steps, gamma_min, max_search, tol)


def _gns_loop(
    problem: Problem,
    x: torch.Tensor,
    hessian: str,
    gamma: float,
    steps: int,
    gamma_min: float,
    max_search: int,
    tol: float,
) -> Iterator[GNSState]:
    f, g = _value_and_grad(problem, x)
    last_h, eig = None, None
    for step in range(1, steps + 1):
        if g.norm() <= tol:
            return
        h = problem.hessians[hessian](x)
        if h is not last_h:  # a fixed bound is the same tensor every iteration: diagonalise it once
            last_h, eig = h, torch.linalg.eigh(h)
        evals, basis = eig
        g_basis = basis.T @ g
        for solves in range(1, max_search + 1):
            used = gamma
            lam = float(g.norm()) / used
            shifted = evals + lam
            if bool((shifted > 0).all()):
                x_new = x - basis @ (g_basis / shifted)
                f_new, g_new = _value_and_grad(problem, x_new)
                if torch.isfinite(f_new) and f - f_new >= g_new.square().sum() / (8 * lam):
                    gamma = 2 * gamma
                    x, f, g = x_new.detach(), f_new, g_new
                    yield GNSState(step, x, float(f), float(g.norm()), used, True, solves)
                    break
            if gamma <= gamma_min:
                yield GNSState(step, x, float(f), float(g.norm()), used, False, solves)
                return
            gamma = max(gamma / 2, gamma_min)
        else:
            yield GNSState(step, x, float(f), float(g.norm()), used, False, max_search)
            return


def gradient_descent(objective: Problem, x0: torch.Tensor, *, steps: int = 1000, lr: float = 1.0) -> Iterator[GNSState]:
    """Gradient descent with Armijo backtracking (the baseline): the step doubles after each success.

    States reuse ``GNSState`` with ``gamma`` the step size taken and ``solves`` the function evaluations.
    """
    x0 = _check_start(objective, x0, steps)
    check_positive("lr", lr)
    return _gd_loop(objective, x0, steps, lr)


def _gd_loop(problem: Problem, x: torch.Tensor, steps: int, lr: float) -> Iterator[GNSState]:
    f, g = _value_and_grad(problem, x)
    for step in range(1, steps + 1):
        lr, trials = 2 * lr, 0
        while True:
            trials += 1
            x_new = x - lr * g
            f_new = problem.loss(x_new.detach())
            if f_new <= f - 0.5 * lr * g.square().sum() or trials >= 60:
                break
            lr /= 2
        accepted = bool(f_new < f)
        if accepted:
            x = x_new.detach()
            f, g = _value_and_grad(problem, x)
        yield GNSState(step, x, float(f), float(g.norm()), lr, accepted, trials)
        if not accepted:
            return
