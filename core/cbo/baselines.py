"""The comparison methods of "Gradient is All You Need?": consensus hopping, gradient descent, annealed Langevin.

Same calling convention and the same :class:`CBOState` records as :func:`core.cbo.run`, so the page
can draw all paths from one start with one plotting function.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

import torch

from core.cbo.consensus import consensus
from core.cbo.dynamics import run
from core.cbo.state import (
    CBOState,
    as_batch,
    check_positive,
    check_steps,
    evaluate,
    finite_runs,
    initial_energy,
    make_state,
)
from core.device import generator


def consensus_hopping(
    objective: Callable[[torch.Tensor], torch.Tensor],
    x0,
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
    check_positive("alpha", alpha, strict=False)
    check_positive("sigma", sigma, strict=False)
    check_steps(steps)
    if int(n_particles) != n_particles or n_particles < 2:
        raise ValueError(f"Expected `n_particles` >= 2, but got {n_particles}")
    p = torch.as_tensor(x0)
    if p.dim() not in (1, 2):
        raise ValueError(f"Expected `x0` of shape (d,) or (M, d), but got {tuple(p.shape)}")
    points, single = as_batch(p.unsqueeze(-2), min_particles=1, device=device)  # (M, 1, d)
    g = generator(seed, points.device)
    return _hop(objective, points, single, g, alpha, sigma, int(n_particles), int(steps))


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
            v_new = consensus(samples, fs, alpha)
            bad = ~finite_runs(fs, v_new) | div
            v_new = torch.where(bad.view(-1, 1), v, v_new)
            div, v = bad, v_new
            yield make_state(k, 1.0, samples, fs, v, alpha, div, single)
            if bool(div.all()):
                return


def annealed_langevin(
    objective: Callable[[torch.Tensor], torch.Tensor],
    x0,
    *,
    lr: float = 1.0,
    dt: float = 1e-3,
    sigma: float = 10.0,
    steps: int = 10_000,
    seed: int = 0,
    every: int = 1,
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
        steps, seed, every, device: as in :func:`core.cbo.run`.

    Shapes:
        x0: (N, d) or (M, N, d) -> state.x like x0

    >>> from core.cbo.objectives import quadratic
    >>> last = list(annealed_langevin(quadratic, torch.ones(1, 2), sigma=0.0, dt=0.1, steps=50))[-1]
    >>> bool(last.x.abs().max() < 0.01)
    True
    """
    check_positive("lr", lr)
    check_positive("dt", dt)
    check_positive("sigma", sigma, strict=False)
    check_steps(steps)
    check_steps(every)
    x, single = as_batch(x0, min_particles=1, device=device)
    g = generator(seed, x.device)
    return _langevin(objective, x, single, g, lr, dt, sigma, int(steps), int(every))


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
    for k in range(1, steps + 1):
        x_new = x - lr * dt * grad
        if sigma > 0:
            xi = torch.randn(x.shape, generator=g, device=x.device, dtype=x.dtype)
            x_new = x_new + sigma / math.log(k + 1) * math.sqrt(dt) * xi
        fx_new, grad_new = _value_and_grad(objective, x_new)
        bad = ~(finite_runs(fx_new, x_new.mean(dim=-2)) & torch.isfinite(grad_new).flatten(1).all(-1)) | div
        newly = bool((bad & ~div).any())
        keep = bad.view(-1, 1, 1)
        x = torch.where(keep, x, x_new)
        fx = torch.where(bad.view(-1, 1), fx, fx_new)
        grad = torch.where(keep, grad, grad_new)
        div = bad
        if k % every == 0 or k == steps or newly:
            yield make_state(k, dt, x, fx, x.mean(dim=-2), 0.0, div, single)
        if bool(div.all()):
            return


def gradient_descent(objective, x0, *, lr: float = 1.0, dt: float = 1e-3, steps: int = 10_000, every: int = 1, device=None):
    r"""Gradient descent (GD): https://arxiv.org/abs/2306.09778

    ``x <- x - lr dt grad f(x)``: :func:`annealed_langevin` at zero temperature (deterministic).

    Shapes:
        x0: (N, d) or (M, N, d) -> state.x like x0

    >>> from core.cbo.objectives import OBJECTIVES
    >>> last = list(gradient_descent(OBJECTIVES["GrandCanyon3noisy"], torch.tensor([[8.0, 8.0]]), dt=0.01, steps=1000, every=1000))[-1]
    >>> [round(v, 2) for v in last.consensus.tolist()]  # stalls far from the minimiser (0, 0)
    [6.62, 7.55]
    """
    return annealed_langevin(objective, x0, lr=lr, dt=dt, sigma=0.0, steps=steps, every=every, device=device)


METHODS: dict[str, Callable[..., Iterator[CBOState]]] = {
    "CBO": run,
    "Consensus hopping": consensus_hopping,
    "Gradient descent": gradient_descent,
    "Annealed Langevin": annealed_langevin,
}
