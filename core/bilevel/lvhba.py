r"""Lagrangian value function Hessian-free bilevel algorithm (LV-HBA): https://arxiv.org/abs/2401.16164

Problem: ``min F(x, y)`` s.t. ``(x, y) ∈ C`` and ``y ∈ argmin_θ {f(x, θ) : g(x, θ) ≤ 0}``. The lower level
is replaced by its proximal Lagrangian value function
``v_γ(x, y, z) = min_θ max_λ f(x, θ) + λᵀg(x, θ) + ‖θ − y‖²/(2γ₁) − ‖λ − z‖²/(2γ₂)``, and one loop runs
a gradient step on ``(θ, λ)`` (the inner min-max), a projected step on ``(x, y)`` for the penalized
``F/c_k + f − v_γ`` with ``c_k = c₀ (k+1)^p``, and a step on the proximal centre ``z``. First-order only.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch

from core.bilevel.checks import check_tensor
from core.errors import OptiscopeError, check_budget, check_int, check_positive, check_range

Scalar = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
MAX_WORK = 5e9  # steps × (dim x + dim y): about a minute of CPU


@dataclass(frozen=True)
class ConstrainedBilevel:
    """``min F(x, y)`` over ``C`` with ``y`` a solution of ``min_θ f(x, θ) s.t. g(x, θ) ≤ 0``, and what is known of it."""

    upper: Scalar  # F(x, y) -> ()
    lower: Scalar  # f(x, y) -> ()
    constraint: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # g(x, y) -> (m,)
    project: Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]  # onto C
    x_star: torch.Tensor | None = None
    y_star: torch.Tensor | None = None
    multiplier_star: torch.Tensor | None = None
    # closed-form gradients (x, y) -> (∇_x, ∇_y), when known, replace autograd: a toy step is otherwise all overhead
    upper_grads: Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]] | None = None
    lower_grads: Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]] | None = None
    constraint_vjp: Callable[..., tuple[torch.Tensor, torch.Tensor]] | None = None  # (x, y, λ) -> ∇(λᵀg)

    def __post_init__(self) -> None:
        for name in ("x_star", "y_star", "multiplier_star"):
            if getattr(self, name) is not None:
                check_tensor(name, getattr(self, name), dims=(1,))


def coupled_toy(
    *, n: int = 100, dtype: torch.dtype = torch.float64, device: torch.device | str | None = None
) -> ConstrainedBilevel:
    r"""The authors' toy (``Toy-example/LLC``): a coupled linear constraint and a known solution.

    ``F = ½‖x − y₂‖² + ½‖y₁ − 1‖²``, ``f = ½‖y₁‖² − xᵀy₁ + 1ᵀy₂``, ``g = 1ᵀx + 1ᵀy`` and
    ``C = {1ᵀx + 1ᵀy = 0}``; ``x ∈ ℝⁿ``, ``y = (y₁, y₂) ∈ ℝ²ⁿ``. Solution ``x* = −0.3``, ``y₁* = 0.7``,
    ``y₂* = −0.4`` (all coordinates) with multiplier ``λ* = −1`` (from ``∇_{y₂}: 1 + λ = 0``).

    >>> toy = coupled_toy(n=3)
    >>> float(toy.constraint(toy.x_star, toy.y_star).abs().max()) < 1e-12
    True
    """
    n = check_int("n", n, high=10**6)

    def upper(x, y):
        return 0.5 * ((x - y[n:]) ** 2).sum() + 0.5 * ((y[:n] - 1) ** 2).sum()

    def lower(x, y):
        return 0.5 * (y[:n] ** 2).sum() - x @ y[:n] + y[n:].sum()

    def constraint(x, y):
        return (x.sum() + y.sum()).reshape(1)

    def project(x, y):
        w = torch.cat([x, y])
        w = w - w.mean()  # the orthogonal projection onto {1ᵀw = 0}
        return w[:n], w[n:]

    def upper_grads(x, y):
        return x - y[n:], torch.cat([y[:n] - 1, y[n:] - x])

    def lower_grads(x, y):
        return -y[:n], torch.cat([y[:n] - x, torch.ones_like(y[n:])])

    def constraint_vjp(x, y, lam):
        return lam * torch.ones_like(x), lam * torch.ones_like(y)

    def full(value: float, size: int = n) -> torch.Tensor:
        return torch.full((size,), value, dtype=dtype, device=device)

    star = (full(-0.3), torch.cat([full(0.7), full(-0.4)]), full(-1.0, 1))
    return ConstrainedBilevel(upper, lower, constraint, project, *star, upper_grads, lower_grads, constraint_vjp)


@dataclass(frozen=True)
class LVHBAConfig:
    """Step sizes and proximal parameters. Defaults: the fork PerryChuh/LV-HBA ``LV-HBA-new.py``, which converges.

    (The original repository's toy settings, α = 0.008, β = 0.02, η = 0.01, u = 1000, c_k = 0.025 (k+1)^0.3,
    do not: ‖x − x*‖/‖x*‖ is 119 after 1500 iterations with λ swinging between ±1000.)
    """

    alpha: float = 0.005  # step on (x, y)
    beta: float = 0.002  # step on the proximal centre z
    eta: float = 0.03  # step on the inner (θ, λ)
    gamma1: float = 10.0  # proximal weight on θ − y
    gamma2: float = 10.0  # proximal weight on λ − z
    bound: float = 1.0  # u: λ ∈ [−u, u], z ∈ [0, u]
    c0: float = 1.0  # c_k = c0 (k + 1)^power weighs the upper objective as F / c_k
    power: float = 0.3
    multiplier0: float = 1.0  # λ₀ and z₀ (θ₀ = 1)

    def __post_init__(self) -> None:
        for name in ("alpha", "beta", "eta", "gamma1", "gamma2", "bound", "c0"):
            check_positive(name, getattr(self, name))
        check_range("power", self.power, 0.0, 0.5)  # the paper's schedules have p in (0, 1/2)
        check_range("multiplier0", self.multiplier0, -self.bound, self.bound)


@dataclass(frozen=True)
class LVHBAState:
    """One iteration: the iterates, the multiplier, and their distances to the known solution (NaN if unknown)."""

    step: int
    x: torch.Tensor
    y: torch.Tensor
    theta: torch.Tensor
    multiplier: torch.Tensor  # λ, (m,)
    z: torch.Tensor  # proximal centre of λ, (m,)
    error_x: float  # ‖x − x*‖ / ‖x*‖
    error_y: float
    violation: float  # ‖g(x, y)‖, the lower-level constraint at the iterate
    upper_value: float  # F(x, y)
    direction_norm: float  # ‖(d_x, d_y)‖, the penalized hypergradient surrogate
    penalty: float  # 1 / c_k, the weight of F
    gradient_calls: int  # gradient oracle calls so far (4 per iteration)


def _grads(fn: Scalar, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    with torch.enable_grad():
        xr, yr = x.detach().requires_grad_(True), y.detach().requires_grad_(True)
        gx, gy = torch.autograd.grad(fn(xr, yr), (xr, yr), allow_unused=True, materialize_grads=True)
    return gx, gy


def lv_hba(
    problem: ConstrainedBilevel,
    x0: torch.Tensor,
    y0: torch.Tensor,
    *,
    config: LVHBAConfig = LVHBAConfig(),
    steps: int = 5000,
    every: int = 1,
    device: torch.device | str | None = None,
) -> Iterator[LVHBAState]:
    r"""Lagrangian value function Hessian-free bilevel algorithm (LV-HBA): https://arxiv.org/abs/2401.16164

    Args:
        problem (`ConstrainedBilevel`): F, f, g, the projection onto C, and the solution if known.
        x0 (`torch.Tensor`), y0 (`torch.Tensor`): the start (need not lie in C: the first step projects).
        config (`LVHBAConfig`, defaults to the converging fork settings): step sizes, γ₁, γ₂, u, c_k.
        steps (`int`, defaults to `5000`): iterations. every (`int`, defaults to `1`): yield every k-th.
        device: where to compute (default: x0's device).

    Shapes:
        x0: (n,), y0: (p,) -> state.x: (n,), state.y, state.theta: (p,), state.multiplier: (m,)

    >>> toy = coupled_toy()
    >>> last = list(lv_hba(toy, 10 * torch.ones(100, dtype=torch.float64), 10 * torch.ones(200, dtype=torch.float64),
    ...                    steps=2000, every=2000))[-1]
    >>> round(last.error_x, 3), float(last.multiplier)
    (0.078, -1.0)
    """
    if not isinstance(config, LVHBAConfig):
        raise OptiscopeError(f"Expected `config` to be an LVHBAConfig, but got {type(config).__name__}")
    steps, every = check_int("steps", steps), check_int("every", every)
    if not isinstance(problem, ConstrainedBilevel):
        raise OptiscopeError(f"Expected `problem` to be a ConstrainedBilevel, but got {type(problem).__name__}")
    x0, y0 = check_tensor("x0", x0, dims=(1,)), check_tensor("y0", y0, dims=(1,))
    device = device or x0.device
    x0, y0 = x0.to(device), y0.to(device=device, dtype=x0.dtype)
    for name, star, start in (("x_star", problem.x_star, x0), ("y_star", problem.y_star, y0)):
        if star is not None and star.shape != start.shape:
            raise OptiscopeError(
                f"Expected the start to match `problem.{name}` {tuple(star.shape)}, but got {tuple(start.shape)}"
            )
    check_budget("iteration-coordinates steps·(n + p)", steps * (x0.numel() + y0.numel()), MAX_WORK)
    m = problem.constraint(x0, y0).numel()
    return _loop(problem, x0, y0, m, config, steps, every)


def _lagrangian_grads(problem: ConstrainedBilevel, x: torch.Tensor, theta: torch.Tensor, lam: torch.Tensor):
    """``∇[f + λᵀg](x, θ)`` at a fixed multiplier."""
    if problem.lower_grads is not None and problem.constraint_vjp is not None:
        (fx, fy), (gx, gy) = problem.lower_grads(x, theta), problem.constraint_vjp(x, theta, lam)
        return fx + gx, fy + gy
    return _grads(lambda x_, t_: problem.lower(x_, t_) + lam @ problem.constraint(x_, t_), x, theta)


def _penalized_grads(problem: ConstrainedBilevel, x: torch.Tensor, y: torch.Tensor, c: float):
    """``∇F/c + ∇f`` at ``(x, y)`` (in one backward pass when there are no closed forms; two oracle calls)."""
    if problem.upper_grads is not None and problem.lower_grads is not None:
        (ux, uy), (lx, ly) = problem.upper_grads(x, y), problem.lower_grads(x, y)
        return ux / c + lx, uy / c + ly
    return _grads(lambda x_, y_: problem.upper(x_, y_) / c + problem.lower(x_, y_), x, y)


def _relative(a: torch.Tensor, star: torch.Tensor | None) -> float:
    return float("nan") if star is None else float((a - star).norm() / star.norm())


def _loop(problem, x, y, m, cfg, steps, every) -> Iterator[LVHBAState]:
    theta = torch.ones_like(y)
    lam = torch.full((m,), cfg.multiplier0, dtype=x.dtype, device=x.device)
    z = lam.clone()
    direction = float("nan")

    def state(k: int) -> LVHBAState:
        return LVHBAState(
            k,
            x,
            y,
            theta,
            lam,
            z,
            _relative(x, problem.x_star),
            _relative(y, problem.y_star),
            float(problem.constraint(x, y).norm()),
            float(problem.upper(x, y)),
            direction,
            1.0 / (cfg.c0 * (k + 1) ** cfg.power),
            4 * k,
        )

    yield state(0)
    for k in range(steps):
        _, grad_theta = _lagrangian_grads(problem, x, theta, lam)
        grad_lam = -problem.constraint(x, theta) + (lam - z) / cfg.gamma2
        theta = theta - cfg.eta * (grad_theta + (theta - y) / cfg.gamma1)
        lam = (lam - cfg.eta * grad_lam).clamp(-cfg.bound, cfg.bound)
        c = cfg.c0 * (k + 1) ** cfg.power
        penalized_x, penalized_y = _penalized_grads(problem, x, y, c)
        value_x, _ = _lagrangian_grads(problem, x, theta, lam)
        d_x = penalized_x - value_x
        d_y = penalized_y - (y - theta) / cfg.gamma1
        x, y = problem.project(x - cfg.alpha * d_x, y - cfg.alpha * d_y)
        z = (z + cfg.beta * (lam - z) / cfg.gamma2).clamp(0.0, cfg.bound)
        direction = float(torch.cat([d_x, d_y]).norm())
        if not torch.isfinite(x).all() or not torch.isfinite(y).all():
            raise OptiscopeError(
                f"LV-HBA diverged at iteration {k + 1}: lower `alpha` and `eta` (now {cfg.alpha}, {cfg.eta})."
            )
        if (k + 1) % every == 0 or k + 1 == steps:
            yield state(k + 1)
