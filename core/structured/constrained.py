"""Adaptive sketched Newton on the exact augmented Lagrangian (AdaSketch-Newton): https://arxiv.org/abs/2305.18379

Hong, Na, Mahoney, Kolar, "Constrained optimization via exact augmented Lagrangian and randomized iterative
sketching" (ICML 2023). Each iteration solves the Newton-KKT system ``[[B, G'], [G, 0]] z = -(∇L, c)`` only
approximately, by randomized sketching stopped at an adaptive accuracy, and line-searches on
``L_eta = f + c'λ + eta1/2 ||c||^2 + eta2/2 ||∇_x L||^2``; the penalties grow when the inexact step is not a
descent direction of it. Constants follow the authors' ``Param.jl``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch.func import grad, hessian, jacrev

from core.device import generator
from core.errors import OptiscopeError, check_budget, check_choice, check_int, check_positive, check_range, check_seed
from core.structured._start import check_problem, start_point
from core.structured.constrained_problems import ConstrainedProblem
from core.structured.sketch import SOLVERS, Sketch

MAX_SWEEPS_TOTAL = 5e7  # sweeps one run may spend (about a minute of numpy on one core)
THETAS = {"constant": "θ = 1 (linear rate)", "decaying": "θ_k = 1/(k+1) (superlinear rate)"}


@dataclass(frozen=True)
class SketchConfig:
    """Settings of :func:`run`; defaults are the authors' (``Param.jl``).

    Args:
        solver (`str`, defaults to `"kaczmarz"`): a key of :data:`SOLVERS`.
        steps (`int`, defaults to `50`): the most Newton iterations.
        tol (`float`, defaults to `1e-6`): stop at KKT residual ``||(∇_x L, c)|| <= tol``.
        eta1 (`float`, defaults to `1.0`), eta2 (`float`, defaults to `0.1`): initial penalties of L_eta.
        accuracy (`float`, defaults to `0.1`): initial δ of the sketch stopping rule.
        xi_b (`float`, defaults to `0.1`): the Hessian shift used when the reduced Hessian is not positive definite.
        beta (`float`, defaults to `0.1`): Armijo slope, in (0, 0.5).
        nu (`float`, defaults to `1.5`): penalty growth factor, > 1.
        theta (`str`, defaults to `"constant"`): ``"constant"`` or ``"decaying"`` (see :data:`THETAS`).
        max_sweeps (`int`, defaults to `100000`): sketch sweeps per Newton iteration (the authors' cap).
    """

    solver: str = "kaczmarz"
    steps: int = 50
    tol: float = 1e-6
    eta1: float = 1.0
    eta2: float = 0.1
    accuracy: float = 0.1
    xi_b: float = 0.1
    beta: float = 0.1
    nu: float = 1.5
    theta: str = "constant"
    max_sweeps: int = 100_000

    def __post_init__(self) -> None:
        check_choice("solver", self.solver, SOLVERS)
        check_int("steps", self.steps, 1, 10_000)
        check_positive("tol", self.tol)
        for name in ("eta1", "eta2", "accuracy", "xi_b"):
            check_positive(name, getattr(self, name))
        check_range("beta", self.beta, 1e-6, 0.499)
        check_range("nu", self.nu, 1.01, 100.0)
        check_choice("theta", self.theta, THETAS)
        check_int("max_sweeps", self.max_sweeps, 1)
        check_budget(
            "sketch sweeps (steps x max_sweeps)",
            self.steps * self.max_sweeps,
            MAX_SWEEPS_TOTAL,
            hint="Lower `steps` or `max_sweeps`.",
        )


@dataclass(frozen=True)
class NewtonState:
    """One Newton iteration (step 0: the start). ``sweeps`` are this iteration's sketch sweeps.

    Shapes:
        x: (n,), multipliers: (m,)
    """

    step: int
    x: torch.Tensor
    multipliers: torch.Tensor
    objective: float
    kkt: float  # ||(∇_x L, c)||
    violation: float  # ||c(x)||, the constraint violation
    error: float  # ||x - x*|| (NaN when x* is unknown)
    alpha: float  # the line-search step that led here
    sweeps: int
    total_sweeps: int
    accuracy: float  # δ, the sketch's adaptive accuracy
    eta1: float
    eta2: float
    modified: bool  # whether the Hessian was shifted to make the reduced Hessian positive definite
    gradients: int  # evaluations of (∇f, ∇c)
    hessians: int  # evaluations of ∇²L
    status: str  # "running", "converged", "max steps", or why it stopped


@dataclass(frozen=True)
class _Point:
    x: torch.Tensor
    lam: torch.Tensor
    f: torch.Tensor
    c: torch.Tensor
    jac: torch.Tensor  # G, (m, n)
    grad_l: torch.Tensor  # ∇_x L, (n,)

    @property
    def kkt(self) -> float:
        return float(torch.cat([self.grad_l, self.c]).norm())


def run(
    problem: ConstrainedProblem,
    *,
    x0: torch.Tensor | None = None,
    multipliers: torch.Tensor | None = None,
    config: SketchConfig = SketchConfig(),
    seed: int = 0,
    device: torch.device | str | None = None,
) -> Iterator[NewtonState]:
    r"""AdaSketch-Newton (exact augmented Lagrangian + randomized sketching): https://arxiv.org/abs/2305.18379

    Args:
        problem (`ConstrainedProblem`): from :func:`make_problem` or :func:`linear_qp`.
        x0 (`torch.Tensor`, optional): (n,), defaults to ``problem.x0``.
        multipliers (`torch.Tensor`, optional): λ0, (m,); defaults to ones (the authors' start).
        config (`SketchConfig`): solver, accuracy and merit constants.
        seed (`int`, defaults to `0`): seeds the sketches.
        device (`torch.device`, optional): the problem's device (where ``make_problem(..., device=)`` built it).

    Raises:
        OptiscopeError: bad settings, or a singular KKT system at ``x0`` (dependent constraint gradients).

    Shapes:
        x0: (n,) -> state.x: (n,), state.multipliers: (m,)

    >>> from core.structured.constrained_problems import make_problem
    >>> last = list(run(make_problem("hs7")))[-1]
    >>> last.status, round(last.x[1].item(), 6), last.alpha
    ('converged', 1.732051, 1.0)
    """
    check_problem(problem, ConstrainedProblem)
    seed = check_seed(seed)
    x = start_point(problem.x0, x0, device)
    m = problem.constraints(x).numel()
    lam = torch.ones(m, dtype=x.dtype, device=x.device) if multipliers is None else torch.as_tensor(multipliers).to(x)
    if lam.shape != (m,):
        raise OptiscopeError(f"Expected `multipliers` of shape ({m},), but got {tuple(lam.shape)}")
    check_budget("KKT unknowns n + m", x.numel() + m, 2000)
    start = _evaluate(problem, x, lam)
    rank_gap = _smallest_eigenvalue(start.jac @ start.jac.T)
    if rank_gap <= 1e-10 * max(1.0, float(start.jac.norm()) ** 2):
        raise OptiscopeError(
            f"Expected independent constraint gradients at `x0`, but λ_min(G Gᵀ) = {rank_gap:.2e}: "
            "the KKT system is singular there (redundant or inconsistent constraints)"
        )
    return _loop(problem, start, config, generator(seed, "cpu"))


def _evaluate(problem, x, lam) -> _Point:
    g, jac = grad(problem.objective)(x), jacrev(problem.constraints)(x)
    return _Point(
        x, lam, problem.objective(x).detach(), problem.constraints(x).detach(), jac.detach(), (g + jac.T @ lam).detach()
    )


def _smallest_eigenvalue(m: torch.Tensor) -> float:
    return float(torch.linalg.eigvalsh(m)[0])


def _lagrangian_hessian(problem, p: _Point) -> torch.Tensor:
    return hessian(lambda x: problem.objective(x) + p.lam @ problem.constraints(x))(p.x).detach()


def _merit(p: _Point, eta1: float, eta2: float) -> float:
    return float(p.f + p.c @ p.lam + 0.5 * eta1 * p.c @ p.c + 0.5 * eta2 * p.grad_l @ p.grad_l)


def _merit_gradient(p: _Point, h: torch.Tensor, eta1: float, eta2: float) -> torch.Tensor:
    """∇L_eta = (∇_x L + eta1 G'c + eta2 H ∇_x L, c + eta2 G ∇_x L) with H = ∇²_x L (the exact form)."""
    gx = p.grad_l + eta1 * p.jac.T @ p.c + eta2 * h @ p.grad_l
    return torch.cat([gx, p.c + eta2 * p.jac @ p.grad_l])


def _modified_hessian(h: torch.Tensor, jac: torch.Tensor, xi_b: float) -> tuple[torch.Tensor, bool]:
    """H, or H + (xi_b + ||H||) I when the reduced Hessian Z'HZ (Z: null space of G) is not positive definite."""
    n, m = jac.shape[1], jac.shape[0]
    if n > m:
        q, _ = torch.linalg.qr(jac.T, mode="complete")
        z = q[:, m:]
        if _smallest_eigenvalue(z.T @ h @ z) >= 1e-6:
            return h, False
    elif n == m:
        return h, False
    shift = xi_b + float(torch.linalg.matrix_norm(h, 2))
    return h + shift * torch.eye(n, dtype=h.dtype, device=h.device), True


def _trial_accuracy(beta: float, eta1: float, eta2: float, upsilon: float, psi: float) -> float:
    """δ_trial: the sketch accuracy under which the inexact step is a descent direction of L_eta."""
    return (0.5 - beta) * eta2 / ((1 + eta1 + eta2) * upsilon**2 * psi**2)


def _loop(problem, p: _Point, config: SketchConfig, gen) -> Iterator[NewtonState]:
    eta1, eta2, delta = config.eta1, config.eta2, config.accuracy
    counts = {"gradients": 1, "hessians": 0, "sweeps": 0}
    n, m = p.x.numel(), p.c.numel()
    alpha, sweeps, modified = 1.0, 0, False

    def state(k, status):
        err = float("nan") if problem.x_star is None else float((p.x - problem.x_star.to(p.x)).norm())
        return NewtonState(
            k,
            p.x.clone(),
            p.lam.clone(),
            float(p.f),
            p.kkt,
            float(p.c.norm()),
            err,
            alpha,
            sweeps,
            counts["sweeps"],
            delta,
            eta1,
            eta2,
            modified,
            counts["gradients"],
            counts["hessians"],
            status,
        )

    for k in range(config.steps + 1):
        if p.kkt <= config.tol:
            yield state(k, "converged")
            return
        if k == config.steps:
            yield state(k, "max steps")
            return
        xi_g = _smallest_eigenvalue(p.jac @ p.jac.T)
        if xi_g < 1e-2:  # the authors' abort: the constraint gradients have become (nearly) dependent
            yield state(k, f"stopped: singular KKT system (λ_min(G Gᵀ) = {xi_g:.2e})")
            return
        yield state(k, "running")
        h = _lagrangian_hessian(problem, p)
        counts["hessians"] += 1
        b_mat, modified = _modified_hessian(h, p.jac, config.xi_b)
        kkt_matrix = torch.cat([torch.cat([b_mat, p.jac.T], 1), torch.cat([p.jac, p.jac.new_zeros(m, m)], 1)])
        rhs = -torch.cat([p.grad_l, p.c])
        psi = 20 * max(float(torch.linalg.matrix_norm(b_mat, 2)) ** 2, 1.0) / (min(xi_g, 1.0) * min(config.xi_b, 1.0))
        upsilon = max(float(torch.linalg.matrix_norm(p.jac, 2)), float(torch.linalg.matrix_norm(h, 2)), 1.0)
        k_norm = float(torch.linalg.matrix_norm(kkt_matrix, 2))
        theta = 1.0 if config.theta == "constant" else 1.0 / (k + 1)
        sketch = Sketch(kkt_matrix, rhs, config.solver, gen)
        delta = max(min(delta, _trial_accuracy(config.beta, eta1, eta2, upsilon, psi)), 1e-6)
        for _ in range(100):  # penalty updates; each one tightens δ, so this ends
            sketch.sweep(theta * delta * float(rhs.norm()) / (k_norm * psi), config.max_sweeps)
            z = sketch.solution()
            slope = float(_merit_gradient(p, h, eta1, eta2) @ z)
            if slope <= -0.5 * eta2 * float(rhs @ rhs):
                break
            eta1, eta2 = config.nu**2 * eta1, eta2 / config.nu
            delta = max(min(delta / config.nu**4, _trial_accuracy(config.beta, eta1, eta2, upsilon, psi)), 1e-12)
        sweeps = sketch.sweeps
        counts["sweeps"] += sweeps
        merit, alpha = _merit(p, eta1, eta2), 1.0
        for _ in range(60):  # Armijo backtracking on L_eta
            trial = _evaluate(problem, p.x + alpha * z[:n], p.lam + alpha * z[n:])
            counts["gradients"] += 1
            if _merit(trial, eta1, eta2) <= merit + config.beta * alpha * slope:
                break
            alpha /= 2
        else:
            yield state(k + 1, "stopped: the line search found no decrease (the sketch was too inexact)")
            return
        p = trial
