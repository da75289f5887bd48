"""Gradient sliding (GS) for ``f + h + χ``: https://arxiv.org/abs/2602.04161

Wu, Xu, Zhang, "Restart-free (accelerated) gradient sliding" (2026) minimise ``Ψ = f + h + χ`` with f L-smooth,
h M-Lipschitz and nonsmooth, χ simple and μ-strongly convex: O(log 1/ε) gradients of f and O(1/ε) subgradients
of h. Their restart-free schedule could not be read (only the abstract is available), so this is the method it
replaces: Lan's gradient sliding (Lan 2016, https://arxiv.org/abs/1406.0919) restarted in phases, each phase
halving a bound on the gap. The baseline is the proximal subgradient method, one ∇f and one h′ per step.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import torch

from core.errors import OptiscopeError, check_budget, check_choice, check_int, check_positive, check_range
from core.structured._start import check_finite, check_problem, check_tensor, start_point
from core.structured.sliding_problems import WEIGHT_RANGE, CompositeProblem

METHODS = {
    "sliding": "Gradient sliding, restarted in phases (Lan)",
    "subgradient": "Proximal subgradient method",
}
RESTARTS = {
    "halving": "D from a gap bound halved every phase (no oracle)",
    "oracle": "D from the true gap Ψ(x̄) − Ψ* at each restart (uses Ψ*)",
}
MAX_SUBGRADIENTS = 2e7  # h' evaluations one run may spend


@dataclass(frozen=True)
class SlidingConfig:
    """Settings of :func:`run`.

    Args:
        method (`str`, defaults to `"sliding"`): a key of :data:`METHODS`.
        steps (`int`, defaults to `500`): the most gradient evaluations of f (outer steps).
        tol (`float`, defaults to `1e-6`): stop at ``Ψ - Ψ* <= tol (Ψ(x0) - Ψ*)``.
        max_inner (`int`, defaults to `100000`): cap on the inner (subgradient) steps of one outer step.
        max_subgradients (`int`, defaults to `2000000`): cap on all h' evaluations (the run stops there).
        every (`int`, defaults to `1`): yield every ``every``-th outer step (plus the first, the last and phase ends).
        restart (`str`, defaults to `"halving"`): how a phase sets D >= ||x - x*||² (see :data:`RESTARTS`).
    """

    method: str = "sliding"
    steps: int = 500
    tol: float = 1e-6
    max_inner: int = 100_000
    max_subgradients: int = 2_000_000
    every: int = 1
    restart: str = "halving"

    def __post_init__(self) -> None:
        check_choice("method", self.method, METHODS)
        check_choice("restart", self.restart, RESTARTS)
        check_int("steps", self.steps, 1)
        check_positive("tol", self.tol, strict=False)
        check_int("max_inner", self.max_inner, 1)
        check_int("max_subgradients", self.max_subgradients, 1)
        check_int("every", self.every, 1)
        check_budget("subgradient evaluations", self.max_subgradients, MAX_SUBGRADIENTS)


@dataclass(frozen=True)
class SlidingState:
    """After one outer step (one ∇f); ``x`` is the output point (GS's x̄, the subgradient method's weighted average).

    Shapes:
        x: (n,)
    """

    step: int
    x: torch.Tensor
    objective: float
    gap: float  # Ψ(x) - Ψ*
    relative_gap: float
    gradients: int  # ∇f evaluations
    subgradients: int  # h' evaluations
    phase: int  # restart phase (0 for the subgradient method)
    inner_steps: int  # subgradient steps of this outer step
    status: str  # "running", "converged", "max steps", "subgradient budget spent"


def run(
    problem: CompositeProblem,
    *,
    x0: torch.Tensor | None = None,
    config: SlidingConfig = SlidingConfig(),
    device: torch.device | str | None = None,
) -> Iterator[SlidingState]:
    r"""Gradient sliding (GS) restarted in phases, or the proximal subgradient method: https://arxiv.org/abs/2602.04161

    GS, outer step k (γ_k = 3/(k+2), β_k = 9L(1 - P_T)/(2(k+1)), T_k = ⌈M²(k+1)³/(D L²)⌉):
    ``x_ = (1-γ)x̄ + γx; g = ∇f(x_)``; then T_k prox-sliding steps
    ``u_t = argmin <g + h'(u_{t-1}), u> + β(||u - x||²/2 + p_t ||u - u_{t-1}||²/2) + χ(u)`` (p_t = t/2) averaged with
    θ_t = 2(t+1)/(t(t+3)); ``x = u_T``, ``x̄ = (1-γ)x̄ + γ ũ_T``. A phase has N = ⌈4 sqrt(L/μ)⌉ outer steps and
    D = 2Δ/μ with Δ = Ψ(x0)/2^s, a bound on the gap (Ψ >= 0 here), so neither D nor Ψ* is an oracle input;
    ``restart="oracle"`` takes Δ = Ψ(x̄) - Ψ* instead (fewer phases, but it needs Ψ*).
    Deterministic: no seed.

    Args:
        problem (`CompositeProblem`): from :func:`make_problem`.
        x0 (`torch.Tensor`, optional): (n,), defaults to ``problem.x0``.
        config (`SlidingConfig`): method, stopping and budgets.
        device (`torch.device`, optional): the problem's device (where ``make_problem(..., device=)`` built it).

    Shapes:
        x0: (n,) -> state.x: (n,)

    >>> from core.structured.sliding_problems import make_problem
    >>> last = list(run(make_problem("tv-denoising"), config=SlidingConfig(tol=1e-4)))[-1]
    >>> last.status, last.gradients < 300 < last.subgradients  # about 250 gradients and 1400 subgradients
    ('converged', True)
    """
    _check_composite(problem)
    x = start_point(problem.x0, x0, device)
    if float(problem.objective(x)) <= problem.psi_star:
        raise OptiscopeError("Expected `x0` with a positive gap Ψ(x0) - Ψ*, but it is already optimal")
    loop = _sliding if config.method == "sliding" else _subgradient
    return loop(problem, x, config)


def _check_composite(problem: CompositeProblem) -> None:
    check_problem(problem, CompositeProblem)
    n = problem.x0.numel()
    m = check_tensor("problem.a", problem.a).shape[0]
    check_tensor("problem.a", problem.a, (m, n))
    check_tensor("problem.b", problem.b, (m,))
    check_tensor("problem.signal", problem.signal, (n,))
    check_range("problem.tv", problem.tv, *WEIGHT_RANGE)
    check_range("problem.mu", problem.mu, *WEIGHT_RANGE)
    check_finite("problem.psi_star", problem.psi_star)


class _Tracker:
    """Oracle counts and the states: one place that decides what a step yields and when the run stops."""

    def __init__(self, problem: CompositeProblem, x: torch.Tensor, config: SlidingConfig) -> None:
        self.problem, self.config = problem, config
        self.gap0 = float(problem.objective(x)) - problem.psi_star
        self.gradients = self.subgradients = 0

    def state(self, k: int, x: torch.Tensor, phase: int, inner: int, status: str = "running") -> SlidingState:
        value = float(self.problem.objective(x))
        gap = value - self.problem.psi_star
        return SlidingState(
            k, x.detach().clone(), value, gap, gap / self.gap0, self.gradients, self.subgradients, phase, inner, status
        )

    def final(self, s: SlidingState) -> SlidingState | None:
        """``s`` with its final status if the run stops here, else None."""
        if s.relative_gap <= self.config.tol:
            return _with_status(s, "converged")
        if s.step >= self.config.steps:
            return _with_status(s, "max steps")
        if self.subgradients >= self.config.max_subgradients:
            return _with_status(s, "subgradient budget spent")
        return None


def _with_status(s: SlidingState, status: str) -> SlidingState:
    return SlidingState(**{**s.__dict__, "status": status})


def _subgradient(problem: CompositeProblem, x: torch.Tensor, config: SlidingConfig) -> Iterator[SlidingState]:
    """x <- prox_{ηχ}(x - η(∇f + h')), η_k = min(2/(μ(k+1)), 1/(L+μ)); output: the k-weighted average."""
    track = _Tracker(problem, x, config)
    average = x
    yield track.state(0, average, 0, 0)
    for k in range(1, config.steps + 1):
        step = min(2 / (problem.mu * (k + 1)), 1 / (problem.lipschitz + problem.mu))
        direction = problem.gradient(x) + problem.subgradient(x)
        track.gradients += 1
        track.subgradients += 1
        x = (x - step * direction) / (1 + step * problem.mu)  # prox of (μ/2)||x||²
        average = average + 2 / (k + 1) * (x - average)
        s = track.state(k, average, 0, 1)
        done = track.final(s)
        if done is not None:
            yield done
            return
        if k % config.every == 0:
            yield s


def _sliding(problem: CompositeProblem, x: torch.Tensor, config: SlidingConfig) -> Iterator[SlidingState]:
    track = _Tracker(problem, x, config)
    lipschitz, mu = problem.lipschitz, problem.mu
    per_phase = math.ceil(4 * math.sqrt(lipschitz / mu))
    bound = float(problem.objective(x))  # Ψ >= 0, so Ψ(x0) bounds the first gap
    x_bar, step, phase = x, 0, 0
    yield track.state(0, x_bar, 0, 0)
    while True:
        phase += 1
        if config.restart == "oracle":
            bound = float(problem.objective(x_bar)) - problem.psi_star
        diameter = 2 * bound / mu  # ||x - x*||² <= 2 gap / μ
        x = x_bar
        for k in range(1, per_phase + 1):
            inner = min(
                math.ceil(problem.nonsmooth_lipschitz**2 * (k + 1) ** 3 / (diameter * lipschitz**2)),
                config.max_inner,
                config.max_subgradients - track.subgradients,
            )
            gamma = 3 / (k + 2)
            g = problem.gradient((1 - gamma) * x_bar + gamma * x)
            track.gradients += 1
            beta = 9 * lipschitz * (1 - 2 / ((inner + 1) * (inner + 2))) / (2 * (k + 1))
            x, x_tilde = _prox_sliding(problem, g, x, beta, max(inner, 1))
            track.subgradients += max(inner, 1)
            x_bar = (1 - gamma) * x_bar + gamma * x_tilde
            step += 1
            s = track.state(step, x_bar, phase, max(inner, 1))
            done = track.final(s)
            if done is not None:
                yield done
                return
            if step % config.every == 0 or k == per_phase:
                yield s
        bound /= 2


def _prox_sliding(problem: CompositeProblem, g, x, beta: float, steps: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Lan's PS procedure with χ = (μ/2)||u||², whose argmin is closed-form (fused: this loop is the hot path)."""
    difference = problem.difference_matrix  # D, (n-1, n)
    pull = beta * x - g
    u, u_avg = x, x.clone()
    for t in range(1, steps + 1):
        p, theta = t / 2, 2 * (t + 1) / (t * (t + 3))
        h_prime = difference.T @ torch.sign(difference @ u)  # h'(u) / tv
        u = torch.add(pull, h_prime, alpha=-problem.tv).add_(u, alpha=beta * p).div_(beta * (1 + p) + problem.mu)
        u_avg.mul_(1 - theta).add_(u, alpha=theta)
    return u, u_avg
