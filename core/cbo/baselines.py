"""The comparison methods of "Gradient is All You Need?": consensus hopping, gradient descent, annealed Langevin.

Same calling convention and the same :class:`CBOState` records as :func:`core.cbo.run`, so the page
can draw all paths from one start with one plotting function.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch

from core.cbo.config import check_alpha, check_steps
from core.cbo.consensus import gibbs_mean
from core.cbo.objectives import Objective
from core.cbo.state import (
    CBOState,
    as_batch,
    check_objective,
    check_particle_steps,
    evaluate,
    finite_runs,
    initial_energy,
    make_state,
)
from core.device import generator
from core.errors import OptiscopeError, check_int, check_positive, check_range, check_seed

# The page's comparison paths (Riedl et al., Fig. 2): GD takes lr·dt = 2e-3, twice the paper's 1e-3 step and still
# stable on Rastrigin, for 1000 steps instead of 1e4 (a path, not a convergence study); CH hops with the paper's σ = .7.
GD_DT, GD_STEPS, GD_EVERY = 2e-3, 1000, 5
CH_SIGMA, CH_STEPS = 0.7, 100
MAX_HOP_SIGMA = 1e6  # wider hops than this only sample float overflow


def consensus_hopping(
    objective: Callable[[torch.Tensor], torch.Tensor],
    x0: torch.Tensor,
    *,
    alpha: float = 100.0,
    sigma: float = 0.7,
    n_particles: int = 200,
    steps: int = 100,
    seed: int = 0,
    device: torch.device | str | None = None,
) -> Iterator[CBOState]:
    r"""Consensus hopping (CH): https://arxiv.org/abs/2306.09778

    ``x_{k+1} = v_alpha`` of ``n_particles`` samples from ``N(x_k, sigma^2 I)``. Because
    ``exp(-alpha f) N(x_k, sigma^2)`` ∝ ``exp(-alpha [f + ||x - x_k||^2 / (2 alpha sigma^2)])``, for large
    ``n_particles`` and alpha the hop is the proximal (implicit GD) step with ``tau = alpha sigma^2``;
    at finite N it is that step plus O(N^-1/2) noise.

    Args:
        objective (`Callable`): (..., d) -> (...).
        x0 (`torch.Tensor`): the start, (d,) or (M, d) for M independent runs.
        alpha (`float`, defaults to `100.0`), sigma (`float`, defaults to `0.7`): weights and sampling width.
        n_particles (`int`, defaults to `200`): samples per hop, >= 2.
        steps (`int`, defaults to `100`), seed (`int`, defaults to `0`), device: as in :func:`core.cbo.run`.

    Yields:
        :class:`CBOState` whose ``x`` are the samples of the hop and ``consensus`` the new iterate
        (step 0: ``x`` is the start as a single particle).

    Shapes:
        x0: (d,) or (M, d) -> state.x: (N, d) / (M, N, d), state.consensus: (d,) / (M, d)

    >>> from core.cbo.objectives import quadratic
    >>> last = list(consensus_hopping(quadratic, torch.ones(2), alpha=1.0, sigma=0.3, n_particles=10_000, steps=1))[-1]
    >>> torch.allclose(last.consensus, torch.ones(2) / 1.09, atol=0.02)
    True
    """
    alpha, sigma = check_alpha("alpha", alpha), check_range("sigma", sigma, 0.0, MAX_HOP_SIGMA)
    n_particles, steps, seed = (
        check_int("n_particles", n_particles, 2),
        check_steps("steps", steps),
        check_seed(seed),
    )
    start = torch.as_tensor(x0)
    if start.dim() not in (1, 2):
        raise OptiscopeError(f"Expected `x0` of shape (d,) or (M, d), but got {tuple(start.shape)}")
    points, single = as_batch(start.unsqueeze(-2), min_particles=1, device=device)  # (M, 1, d)
    check_objective(objective, points.shape[-1])
    check_particle_steps(points.shape[0], n_particles, points.shape[-1], steps)
    g = generator(seed, points.device)
    return _hop(objective, points, single, g, float(alpha), float(sigma), n_particles, steps)


def _hop(objective, points, single, g, alpha, sigma, n, steps) -> Iterator[CBOState]:
    with torch.no_grad():
        fx = initial_energy(objective, points)  # (M, 1)
        v = points[:, 0]  # (M, d)
        div = ~finite_runs(fx, v)
        yield make_state(0, 1.0, points, fx, v, alpha, div, single)
        m, d = v.shape
        for k in range(1, steps + 1):
            xi = torch.randn((m, n, d), generator=g, device=v.device, dtype=v.dtype)
            samples = v.unsqueeze(-2) + sigma * xi  # (M, N, d)
            fs = evaluate(objective, samples)
            v_new = gibbs_mean(samples, fs, alpha)
            bad = ~finite_runs(fs, v_new) | div
            v_new = torch.where(bad.view(-1, 1), v, v_new)
            div, v = bad, v_new
            yield make_state(k, 1.0, samples, fs, v, alpha, div, single)
            if bool(div.all()):
                return


def annealed_langevin(
    objective: Callable[[torch.Tensor], torch.Tensor],
    x0: torch.Tensor,
    *,
    lr: float = 1.0,
    dt: float = 1e-3,
    sigma: float = 10.0,
    steps: int = 10_000,
    every: int = 1,
    seed: int = 0,
    device: torch.device | str | None = None,
) -> Iterator[CBOState]:
    r"""Annealed Langevin dynamics (Langevin): https://arxiv.org/abs/2306.09778

    ``x <- x - lr dt grad f(x) + sigma / log(k + 1) sqrt(dt) xi`` for k = 1, 2, ... (Riedl et al.'s
    ``GDLangevin.m``); ``sigma = 0`` is plain gradient descent. Gradients come from torch autograd.
    Every particle is an independent chain; ``consensus`` is their mean (the point itself when N = 1).

    Args:
        objective (`Callable`): differentiable (..., d) -> (...).
        x0 (`torch.Tensor`): (N, d) or (M, N, d) starting points (N >= 1).
        lr (`float`, defaults to `1.0`), dt (`float`, defaults to `1e-3`): the step is ``lr * dt``.
        sigma (`float`, defaults to `10.0`): initial temperature of the annealing.
        steps, every, seed, device: as in :func:`core.cbo.run`.

    Shapes:
        x0: (N, d) or (M, N, d) -> state.x like x0

    >>> from core.cbo.objectives import quadratic
    >>> last = list(annealed_langevin(quadratic, torch.ones(1, 2), sigma=0.0, dt=0.1, steps=50))[-1]
    >>> bool(last.x.abs().max() < 0.01)
    True
    """
    lr, dt, sigma = check_positive("lr", lr), check_positive("dt", dt), check_positive("sigma", sigma, strict=False)
    steps, every, seed = check_steps("steps", steps), check_steps("every", every), check_seed(seed)
    x, single = as_batch(x0, min_particles=1, device=device)
    check_objective(objective, x.shape[-1])
    check_particle_steps(*x.shape, steps)
    g = generator(seed, x.device)
    return _langevin(objective, x, single, g, lr, dt, sigma, steps, every)


def _value_and_grad(objective, x):
    with torch.enable_grad():
        xr = x.detach().requires_grad_(True)
        fx = evaluate(objective, xr)
        (grad,) = torch.autograd.grad(fx.sum(), xr)
    return fx.detach(), grad


def _langevin(objective, x, single, g, lr, dt, sigma, steps, every) -> Iterator[CBOState]:
    initial_energy(objective, x)
    fx, grad = _value_and_grad(objective, x)
    div = ~finite_runs(fx, x.mean(dim=-2))
    yield make_state(0, dt, x, fx, x.mean(dim=-2), 0.0, div, single)
    any_div = bool(div.any())
    for k in range(1, steps + 1):
        x_new = x - lr * dt * grad
        if sigma > 0:
            xi = torch.randn(x.shape, generator=g, device=x.device, dtype=x.dtype)
            x_new = x_new + sigma / math.log(k + 1) * math.sqrt(dt) * xi
        fx_new, grad_new = _value_and_grad(objective, x_new)
        bad = ~(finite_runs(fx_new, x_new.mean(dim=-2)) & torch.isfinite(grad_new).flatten(1).all(-1)) | div
        newly = bool((bad & ~div).any())  # the one host sync per step
        if any_div or newly:  # freeze blown-up chains at their last finite state
            keep = bad.view(-1, 1, 1)
            x_new, grad_new = torch.where(keep, x, x_new), torch.where(keep, grad, grad_new)
            fx_new = torch.where(bad.view(-1, 1), fx, fx_new)
            div, any_div = bad, True
        x, fx, grad = x_new, fx_new, grad_new
        if k % every == 0 or k == steps or newly:
            yield make_state(k, dt, x, fx, x.mean(dim=-2), 0.0, div, single)
        if any_div and bool(div.all()):
            return


def gradient_descent(
    objective: Callable[[torch.Tensor], torch.Tensor],
    x0: torch.Tensor,
    *,
    lr: float = 1.0,
    dt: float = 1e-3,
    steps: int = 10_000,
    every: int = 1,
    device: torch.device | str | None = None,
) -> Iterator[CBOState]:
    r"""Gradient descent (GD): https://arxiv.org/abs/2306.09778

    ``x <- x - lr dt grad f(x)``: :func:`annealed_langevin` at zero temperature (deterministic).

    Shapes:
        x0: (N, d) or (M, N, d) -> state.x like x0

    >>> from core.cbo.objectives import quadratic
    >>> last = list(gradient_descent(quadratic, torch.ones(1, 2), dt=0.5, steps=3))[-1]
    >>> last.x  # each step halves x on 1/2 ||x||^2
    tensor([[0.1250, 0.1250]])
    """
    return annealed_langevin(objective, x0, lr=lr, dt=dt, sigma=0.0, steps=steps, every=every, device=device)


@dataclass(frozen=True)
class ComparisonPath:
    """A method's path from the common start, and how far its end is from x*.

    Shapes:
        points: (T, d)
    """

    points: torch.Tensor
    error: float  # ||x_T - x*||_inf


def comparison_paths(
    objective: Objective, start: torch.Tensor, *, alpha: float = 100.0, n_particles: int = 200, seed: int = 0
) -> dict[str, ComparisonPath]:
    r"""GD and CH paths beside CBO ("Gradient is All You Need?", Fig. 2): https://arxiv.org/abs/2306.09778

    Gradient descent (``GD_DT``, ``GD_STEPS``, every ``GD_EVERY``-th point) and consensus hopping
    (``CH_SIGMA``, ``CH_STEPS`` hops of ``n_particles`` samples) from one start, in float64 (float32 on mps).

    Shapes:
        start: (d,) -> paths["GD"].points: (GD_STEPS / GD_EVERY + 1, d), paths["CH"].points: (CH_STEPS + 1, d)

    >>> from core.cbo.objectives import OBJECTIVES
    >>> paths = comparison_paths(OBJECTIVES["GrandCanyon3noisy"], torch.tensor([8.0, 8.0]))
    >>> paths["GD"].error > 1.0, paths["CH"].error < 0.25  # GD stalls in a ripple, CH reaches x* = 0
    (True, True)
    """
    if not isinstance(objective, Objective):
        raise OptiscopeError(f"Expected `objective` to be an Objective, but got {type(objective).__name__}")
    start = torch.as_tensor(start)
    start = start.to(torch.float32 if start.device.type == "mps" else torch.float64)
    gd = gradient_descent(objective, start[None], dt=GD_DT, steps=GD_STEPS, every=GD_EVERY)
    ch = consensus_hopping(
        objective, start, alpha=alpha, sigma=CH_SIGMA, n_particles=n_particles, steps=CH_STEPS, seed=seed
    )
    paths = {"GD": torch.stack([s.x[0] for s in gd]), "CH": torch.stack([s.consensus for s in ch])}
    x_star = objective.minimiser(start.shape[-1], start.device, start.dtype)
    return {k: ComparisonPath(p, float((p[-1] - x_star).abs().max())) for k, p in paths.items()}
