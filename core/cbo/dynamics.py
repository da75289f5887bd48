"""The CBO particle loop: Euler-Maruyama steps of the consensus-based SDE as an iterator of states."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

import torch

from core.cbo.config import DEFAULT_CONFIG, CBOConfig, check_seed, check_steps
from core.cbo.consensus import gibbs_mean
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
from core.errors import OptiscopeError


def cbo_update(
    x: torch.Tensor, v: torch.Tensor, xi: torch.Tensor, *, lam: float, sigma: float, dt: float, noise: str
) -> torch.Tensor:
    """One Euler-Maruyama step of CBO: https://arxiv.org/abs/1604.05648

    ``x - lam dt (x - v) + sigma sqrt(dt) D(x - v) xi`` (pure; ``xi`` is consumed), where
    D(u) = diag(u) (anisotropic) or ||u|| I (isotropic).

    Shapes:
        x: (M, N, d), v: (M, d), xi: (M, N, d) -> (M, N, d)

    >>> cbo_update(torch.ones(1, 1, 2), torch.zeros(1, 2), torch.zeros(1, 1, 2), lam=1.0, sigma=1.0, dt=0.5,
    ...            noise="anisotropic")
    tensor([[[0.5000, 0.5000]]])
    """
    diff = x - v.unsqueeze(-2)  # (M, N, d)
    s = sigma * math.sqrt(dt)
    if noise == "anisotropic":
        # x + diff * (s xi - lam dt): one fused pass instead of three
        return torch.addcmul(x, diff, xi.mul_(s).sub_(lam * dt))
    scale = diff.norm(dim=-1, keepdim=True) * s  # (M, N, 1)
    return torch.addcmul(x.sub(diff, alpha=lam * dt), scale, xi)


def run(
    objective: Callable[[torch.Tensor], torch.Tensor],
    x0: torch.Tensor,
    *,
    config: CBOConfig = DEFAULT_CONFIG,
    steps: int = 1000,
    every: int = 1,
    seed: int = 0,
    device: torch.device | str | None = None,
) -> Iterator[CBOState]:
    r"""Consensus-based optimization (CBO): https://arxiv.org/abs/1604.05648

    Particles drift to the consensus point ``v_alpha`` (the Gibbs-weighted mean, see :func:`consensus`)
    and explore with noise proportional to their distance from it:
    ``dX = -lam (X - v) dt + sigma D(X - v) dW``. Anisotropic noise (Carrillo et al. 2021,
    https://arxiv.org/abs/1909.09249) scales each coordinate separately and works in high d.
    Everything is checked when called; the run does no work until the first ``next``.

    Args:
        objective (`Callable`): maps (..., d) tensors to (...) energies, e.g. ``OBJECTIVES["Rastrigin"]``.
        x0 (`torch.Tensor`): initial particles, (N, d) or (M, N, d) for M independent runs.
        config (`CBOConfig`, defaults to `CBOConfig()`): alpha, lam, sigma, dt, noise and the alpha schedule.
        steps (`int`, defaults to `1000`): number of steps, >= 1.
        every (`int`, defaults to `1`): yield every ``every``-th step (plus step 0, the last one, and divergence).
        seed (`int`, defaults to `0`): seed of the noise (a private ``torch.Generator``; same seed, same run).
        device (`torch.device`, optional): where to compute; defaults to ``x0``'s device.

    Yields:
        :class:`CBOState` at step 0 and after each (``every``-th) step. A run whose values become
        non-finite is frozen at its last finite state and flagged in ``diverged_runs``; the iterator stops
        early once every run has diverged, with ``diverged=True``. It never yields NaN particles.

    Raises:
        OptiscopeError: for bad input, or past the budget of ``PARTICLE_STEP_BUDGET`` particle-steps M·N·d·steps.

    Shapes:
        x0: (N, d) or (M, N, d); state.x like x0; state.energy: (N,) / (M, N); state.consensus: (d,) / (M, d)

    >>> from core.cbo.objectives import OBJECTIVES
    >>> x0 = torch.rand(10, 50, 2, generator=torch.Generator().manual_seed(0)) * 6 - 3  # (M, N, d)
    >>> last = list(run(OBJECTIVES["Rastrigin"], x0, config=CBOConfig(sigma=0.5), steps=300, seed=0))[-1]
    >>> last.step, last.consensus.shape, last.diverged
    (300, torch.Size([10, 2]), False)
    """
    if not isinstance(config, CBOConfig):
        raise OptiscopeError(f"Expected `config` to be a CBOConfig, but got {type(config).__name__}")
    steps, every, seed = check_steps("steps", steps), check_steps("every", every), check_seed(seed)
    x, single = as_batch(x0, device=device)
    check_objective(objective, x.shape[-1])
    check_particle_steps(*x.shape, steps)
    return _loop(objective, x, single, generator(seed, x.device), config, steps, every)


def _loop(objective, x, single, g, config: CBOConfig, steps: int, every: int) -> Iterator[CBOState]:
    alpha, dt = config.alpha, config.dt
    with torch.no_grad():
        fx = initial_energy(objective, x)  # (M, N)
        v = gibbs_mean(x, fx, alpha)  # (M, d)
        div = ~finite_runs(fx, v)  # (M,) runs that start at +inf energies count as diverged
        yield make_state(0, dt, x, fx, v, alpha, div, single)
        any_div = bool(div.any())
        for k in range(1, steps + 1):
            xi = torch.randn(x.shape, generator=g, device=x.device, dtype=x.dtype)
            x_new = cbo_update(x, v, xi, lam=config.lam, sigma=config.sigma, dt=dt, noise=config.noise)
            alpha = min(alpha * config.alpha_growth, config.alpha_max) if config.alpha_growth != 1.0 else alpha
            fx_new = evaluate(objective, x_new)
            v_new = gibbs_mean(x_new, fx_new, alpha)
            bad = ~finite_runs(fx_new, v_new) | div
            newly = bool((bad & ~div).any())  # the one host sync per step
            if any_div or newly:
                # freeze blown-up runs at their last finite state instead of propagating NaN
                keep = bad.view(-1, 1, 1)
                x_new = torch.where(keep, x, x_new)
                fx_new = torch.where(bad.view(-1, 1), fx, fx_new)
                v_new = torch.where(bad.view(-1, 1), v, v_new)
                div, any_div = bad, True
            x, fx, v = x_new, fx_new, v_new
            if k % every == 0 or k == steps or newly or (any_div and bool(div.all())):
                yield make_state(k, dt, x, fx, v, alpha, div, single)
            if any_div and bool(div.all()):
                return
