r"""Bilevel Optimization under unbounded smoothness (BO-REP): https://arxiv.org/abs/2401.09587

``min_x Φ(x) = f(x, y*(x))`` with ``y*(x) = argmin_y g(x, y)`` (g strongly convex in y), where the upper
level is (L₀, L₁)-smooth: its curvature grows with its gradient, so no fixed step is safe everywhere.
BO-REP: initialization refinement (``refine_steps`` SGD steps on y before the loop), periodic lower-level
updates (``inner_steps`` SGD steps every ``interval`` iterations), one SGD step per iteration on the
linear-system variable ``z ≈ [∇²_yy g]⁻¹ ∇_y f``, the hypergradient estimate ``∇_x f − ∇²_xy g z`` (Hessian-
vector products only), momentum, and the **normalized** step ``x ← x − η m / ‖m‖``. The baseline (single-loop
AID, :meth:`BOREPConfig.aid`) uses the same oracles with an un-normalized step.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace

import numpy as np
import torch

from core.bilevel.checks import check_tensor
from core.device import generator
from core.errors import OptiscopeError, check_budget, check_int, check_positive, check_range, check_seed

Batched = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (M, dx), (M, dy) -> (M,)
DIVERGED = 1e6  # |x| beyond this counts as diverged (the run is frozen there)
MAX_WORK = 2e7  # run-iterations M · steps


@dataclass(frozen=True)
class UnboundedBilevel:
    """Upper ``f(x, y)`` and lower ``g(x, y)``, batched over runs, and the true ``∇Φ`` when it is known."""

    upper: Batched
    lower: Batched
    grad_phi: Callable[[torch.Tensor], torch.Tensor] | None = None  # (M, dx) -> (M, dx)
    phi: Callable[[torch.Tensor], torch.Tensor] | None = None  # (M, dx) -> (M,)
    dim_y: int = 2
    # closed-form oracles, when known, replace autograd (a toy's iteration is otherwise all autograd overhead)
    lower_grad_y: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None  # ∇_y g
    upper_grads: Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]] | None = None  # ∇_x f, ∇_y f
    lower_hvps: Callable[..., tuple[torch.Tensor, torch.Tensor]] | None = None  # (x, y, z) -> ∇²_xy g z, ∇²_yy g z


def quartic_toy() -> UnboundedBilevel:
    r"""A 2-D toy whose upper level is not L-smooth: ``g = ½ yᵀHy − xᵀy`` with ``H = diag(1, 2)``, ``f = Σ y⁴/4 − y²/2``.

    Then ``y*(x) = H⁻¹x``, ``Φ(x) = f(H⁻¹x)`` and ``∇Φ(x) = H⁻¹ (u³ − u)`` at ``u = H⁻¹x``: the Hessian of Φ grows
    like ``‖∇Φ‖^{2/3}``, without bound. Minima at ``x = (±1, ±2)``.

    >>> toy = quartic_toy()
    >>> toy.grad_phi(torch.tensor([[6.0, 8.0]])).norm().round()
    tensor(212.)
    """
    h = torch.tensor([1.0, 2.0], dtype=torch.float64)

    def upper(x, y):
        return (y**4 / 4 - y**2 / 2).sum(-1)

    def lower(x, y):
        return 0.5 * (h.to(y) * y**2).sum(-1) - (x * y).sum(-1)

    def grad_phi(x):
        u = x / h.to(x)
        return (u**3 - u) / h.to(x)

    def phi(x):
        return upper(x, x / h.to(x))

    def lower_grad_y(x, y):
        return h.to(y) * y - x

    def upper_grads(x, y):
        return torch.zeros_like(x), y**3 - y

    def lower_hvps(x, y, z):
        return -z, h.to(z) * z

    return UnboundedBilevel(upper, lower, grad_phi, phi, 2, lower_grad_y, upper_grads, lower_hvps)


@dataclass(frozen=True)
class BOREPConfig:
    """BO-REP's settings (defaults: the reference note's toy run); :meth:`aid` gives the un-normalized baseline."""

    lr: float = 0.05  # η, the upper step (a length when normalized)
    momentum: float = 0.9  # β
    normalized: bool = True
    interval: int = 2  # I: refresh y every I iterations
    inner_steps: int = 5  # N: SGD steps on y at each refresh
    refine_steps: int = 50  # N₀: initialization refinement
    inner_lr: float = 0.3  # SGD step on y
    z_lr: float = 0.2  # ν, SGD step on the linear-system variable z
    noise: float = 0.1  # σ of the Gaussian noise on every oracle

    def __post_init__(self) -> None:
        for name in ("lr", "inner_lr", "z_lr"):
            check_positive(name, getattr(self, name))
        check_positive("noise", self.noise, strict=False)
        check_range("momentum", self.momentum, 0.0, 0.999)
        check_int("interval", self.interval)
        check_int("inner_steps", self.inner_steps)
        check_int("refine_steps", self.refine_steps, low=0)

    @classmethod
    def aid(cls, lr: float, **changes) -> BOREPConfig:
        """Single-loop AID: one y step and one z step per iteration, no refinement, no momentum, ``x ← x − η ĝ``."""
        return replace(cls(lr=lr, momentum=0.0, normalized=False, interval=1, inner_steps=1, refine_steps=0), **changes)


@dataclass(frozen=True)
class BOREPState:
    """One iteration of M independent runs: iterates, the true and estimated hypergradient norms, oracle counters."""

    step: int
    x: torch.Tensor  # (M, dx)
    y: torch.Tensor  # (M, dy)
    grad_phi_norm: torch.Tensor  # ‖∇Φ(x)‖ (NaN if unknown), (M,)
    estimate_norm: torch.Tensor  # ‖ĝ‖ of the hypergradient estimate, (M,)
    momentum_norm: torch.Tensor  # ‖m‖, (M,)
    refreshed: bool  # y was refreshed at this iteration
    diverged: torch.Tensor  # (M,) bool: |x| > 1e6 or not finite (frozen since)
    grad_g_calls: int
    hvp_calls: int
    grad_f_calls: int


def bo_rep(
    problem: UnboundedBilevel,
    x0: torch.Tensor,
    *,
    config: BOREPConfig = BOREPConfig(),
    steps: int = 3000,
    every: int = 1,
    seed: int = 0,
    device: torch.device | str | None = None,
) -> Iterator[BOREPState]:
    r"""Bilevel Optimization under unbounded smoothness (BO-REP): https://arxiv.org/abs/2401.09587

    Args:
        problem (`UnboundedBilevel`): batched f and g (and ∇Φ for reporting).
        x0 (`torch.Tensor`): (dx,) or (M, dx) starts of M independent runs (y and z start at 0).
        config (`BOREPConfig`, defaults to BO-REP): use ``BOREPConfig.aid(lr)`` for the baseline.
        steps (`int`, defaults to `3000`), every (`int`, defaults to `1`): iterations, and yield every k-th.
        seed (`int`, defaults to `0`): the oracle noise.
        device: where to compute (default: x0's device).

    Shapes:
        x0: (dx,) or (M, dx) -> state.x: (M, dx), state.grad_phi_norm: (M,)

    >>> x0 = torch.tensor([[30.0, 40.0]], dtype=torch.float64)
    >>> first_below(list(bo_rep(quartic_toy(), x0, steps=1200)), tol=0.1)  # first step with ‖∇Φ‖ < 0.1
    array([1113])
    >>> bool(list(bo_rep(quartic_toy(), x0, config=BOREPConfig.aid(0.005), steps=1200))[-1].diverged)
    True
    """
    if not isinstance(config, BOREPConfig):
        raise OptiscopeError(f"Expected `config` to be a BOREPConfig, but got {type(config).__name__}")
    steps, every, seed = check_int("steps", steps), check_int("every", every), check_seed(seed)
    check_problem(problem)
    x = check_tensor("x0", x0, dims=(1, 2)).to(device or x0.device)
    x = x.unsqueeze(0) if x.dim() == 1 else x
    check_budget("run-iterations M·steps", len(x) * steps, MAX_WORK)
    return _loop(problem, x, config, steps, every, generator(seed, x.device))


def check_problem(problem: UnboundedBilevel) -> None:
    if not isinstance(problem, UnboundedBilevel):
        raise OptiscopeError(f"Expected `problem` to be an UnboundedBilevel, but got {type(problem).__name__}")
    check_int("problem.dim_y", problem.dim_y, high=10**6)


def _check_shapes(problem: UnboundedBilevel, x: torch.Tensor, y: torch.Tensor) -> None:
    """The problem's functions must take (M, dx) and (M, dim_y) and return (M,): checked once, on the start."""
    try:
        shapes = {tuple(problem.lower(x, y).shape), tuple(problem.upper(x, y).shape)}
    except RuntimeError as err:  # a mismatch of x0 or dim_y with the problem's own sizes
        raise OptiscopeError(f"The problem does not take x {tuple(x.shape)} and y {tuple(y.shape)}: {err}") from None
    if shapes != {(len(x),)}:
        raise OptiscopeError(f"Expected f and g to return one value per run ({len(x)},), but got {shapes}")


class _Oracles:
    """Noisy first-order oracles and their counters (one object per run: nothing carries over between runs)."""

    def __init__(self, problem: UnboundedBilevel, noise: float, gen: torch.Generator) -> None:
        self.problem, self.noise, self.gen = problem, noise, gen
        self.grad_g = self.hvp = self.grad_f = 0

    def _noisy(self, value: torch.Tensor) -> torch.Tensor:
        if self.noise == 0:
            return value
        return value + self.noise * torch.randn(value.shape, generator=self.gen, device=value.device, dtype=value.dtype)

    def lower_step(self, x: torch.Tensor, y: torch.Tensor, lr: float) -> torch.Tensor:
        self.grad_g += 1
        if self.problem.lower_grad_y is not None:
            return y - lr * self._noisy(self.problem.lower_grad_y(x, y))
        with torch.enable_grad():
            yr = y.detach().requires_grad_(True)
            (gy,) = torch.autograd.grad(self.problem.lower(x, yr).sum(), yr)
        return y - lr * self._noisy(gy)

    def upper_grads(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        self.grad_f += 1
        if self.problem.upper_grads is not None:
            return tuple(self._noisy(g) for g in self.problem.upper_grads(x, y))
        with torch.enable_grad():
            xr, yr = x.detach().requires_grad_(True), y.detach().requires_grad_(True)
            fx, fy = torch.autograd.grad(
                self.problem.upper(xr, yr).sum(), (xr, yr), materialize_grads=True, allow_unused=True
            )
        return self._noisy(fx), self._noisy(fy)

    def hvps(self, x: torch.Tensor, y: torch.Tensor, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(∇²_xy g z, ∇²_yy g z)`` from one double-backward pass (two oracle calls)."""
        self.hvp += 2
        if self.problem.lower_hvps is not None:
            return tuple(self._noisy(h) for h in self.problem.lower_hvps(x, y, z))
        with torch.enable_grad():
            xr, yr = x.detach().requires_grad_(True), y.detach().requires_grad_(True)
            (gy,) = torch.autograd.grad(self.problem.lower(xr, yr).sum(), yr, create_graph=True)
            hx, hy = torch.autograd.grad((gy * z).sum(), (xr, yr), materialize_grads=True, allow_unused=True)
        return self._noisy(hx), self._noisy(hy)


def _loop(problem, x, cfg, steps, every, gen) -> Iterator[BOREPState]:
    oracles = _Oracles(problem, cfg.noise, gen)
    y = x.new_zeros(len(x), problem.dim_y)
    _check_shapes(problem, x, y)
    z, m = torch.zeros_like(y), torch.zeros_like(x)
    diverged = torch.zeros(len(x), dtype=torch.bool, device=x.device)
    estimate = x.new_full((len(x),), float("nan"))

    def state(k: int, refreshed: bool) -> BOREPState:
        true = problem.grad_phi(x).norm(dim=-1) if problem.grad_phi else x.new_full((len(x),), float("nan"))
        return BOREPState(
            k, x, y, true, estimate, m.norm(dim=-1), refreshed, diverged, oracles.grad_g, oracles.hvp, oracles.grad_f
        )

    for _ in range(cfg.refine_steps):
        y = oracles.lower_step(x, y, cfg.inner_lr)
    yield state(0, cfg.refine_steps > 0)
    for k in range(steps):
        refreshed = k % cfg.interval == 0
        if refreshed:
            for _ in range(cfg.inner_steps):
                y = oracles.lower_step(x, y, cfg.inner_lr)
        fx, fy = oracles.upper_grads(x, y)
        hxz, hyz = oracles.hvps(x, y, z)
        z = z - cfg.z_lr * (hyz - fy)
        g_hat = fx - hxz
        m = cfg.momentum * m + (1 - cfg.momentum) * g_hat
        scale = m.norm(dim=-1, keepdim=True).clamp_min(1e-12) if cfg.normalized else 1.0
        x_new = x - cfg.lr * m / scale
        bad = diverged | ~torch.isfinite(x_new).all(-1) | (x_new.abs() > DIVERGED).any(-1)
        x = torch.where(bad.unsqueeze(-1), x, x_new)  # a diverged run is frozen at its last finite point
        y, z, m = (torch.where(bad.unsqueeze(-1), t.nan_to_num(), t) for t in (y, z, m))
        diverged, estimate = bad, g_hat.norm(dim=-1)
        if (k + 1) % every == 0 or k + 1 == steps or bool(diverged.all()):
            yield state(k + 1, refreshed)
        if bool(diverged.all()):
            return


def first_below(states: list[BOREPState], *, tol: float) -> np.ndarray:
    """Per run, the first step with ``‖∇Φ(x)‖ < tol`` (−1: never; frozen diverged runs never count)."""
    norms = torch.stack([s.grad_phi_norm for s in states]).cpu().numpy()  # (T, M)
    ok = (norms < tol) & ~torch.stack([s.diverged for s in states]).cpu().numpy()
    steps = np.array([s.step for s in states])
    return np.where(ok.any(0), steps[ok.argmax(0)], -1)
