"""The CBO particle loop: Euler-Maruyama steps of the consensus-based SDE as an iterator of states."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

import torch

from core.cbo.consensus import consensus
from core.cbo.state import (
    NOISES,
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


def cbo_update(x: torch.Tensor, v: torch.Tensor, xi: torch.Tensor, *, lam: float, sigma: float, dt: float, noise: str) -> torch.Tensor:
    """One Euler-Maruyama step ``x - lam dt (x - v) + sigma sqrt(dt) D(x - v) xi`` (pure; ``xi`` is consumed).

    D(u) = diag(u) (anisotropic) or ||u|| I (isotropic).

    Shapes:
        x: (M, N, d), v: (M, d), xi: (M, N, d) -> (M, N, d)
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
    x0,
    *,
    alpha: float = 30.0,
    lam: float = 1.0,
    sigma: float = 1.0,
    dt: float = 0.01,
    steps: int = 1000,
    noise: str = "anisotropic",
    seed: int = 0,
    alpha_growth: float = 1.0,
    alpha_max: float = 1e5,
    every: int = 1,
    device: torch.device | str | None = None,
) -> Iterator[CBOState]:
    r"""Consensus-based optimization (CBO): https://arxiv.org/abs/1604.05648

    Particles drift to the consensus point ``v_alpha`` (the Gibbs-weighted mean, see :func:`consensus`)
    and explore with noise proportional to their distance from it:
    ``dX = -lam (X - v) dt + sigma D(X - v) dW``. Anisotropic noise (Carrillo et al. 2021,
    https://arxiv.org/abs/1909.09249) scales each coordinate separately and works in high d.

    Args:
        objective (`Callable`): maps (..., d) tensors to (...) energies, e.g. ``OBJECTIVES["Rastrigin"]``.
        x0 (`torch.Tensor`): initial particles, (N, d) or (M, N, d) for M independent runs.
        alpha (`float`, defaults to `30.0`): inverse temperature of the consensus weights, >= 0.
        lam (`float`, defaults to `1.0`): drift strength, >= 0.
        sigma (`float`, defaults to `1.0`): noise strength, >= 0.
        dt (`float`, defaults to `0.01`): time step, > 0.
        steps (`int`, defaults to `1000`): number of steps, > 0.
        noise (`str`, defaults to `"anisotropic"`): ``"anisotropic"`` or ``"isotropic"``.
        seed (`int`, defaults to `0`): seed of the noise (a private ``torch.Generator``; same seed, same run).
        alpha_growth (`float`, defaults to `1.0`): CBXpy-style schedule ``alpha <- min(alpha * growth, alpha_max)``
            each step; 1.0 (the default) keeps alpha fixed. CBXpy's ``optimize()`` uses 1.05.
        alpha_max (`float`, defaults to `1e5`): cap of the schedule.
        every (`int`, defaults to `1`): yield every ``every``-th step (plus step 0, the last one, and divergence).
        device (`torch.device`, optional): where to compute; defaults to ``x0``'s device.

    Yields:
        :class:`CBOState` at step 0 and after each (``every``-th) step. A run whose values become
        non-finite is frozen at its last finite state and flagged in ``diverged_runs``; the iterator stops
        early once every run has diverged, with ``diverged=True``. It never yields NaN particles.

    Shapes:
        x0: (N, d) or (M, N, d); state.x like x0; state.energy: (N,) / (M, N); state.consensus: (d,) / (M, d)

    >>> from core.cbo.objectives import OBJECTIVES
    >>> x0 = torch.rand(10, 50, 2, generator=torch.Generator().manual_seed(0)) * 6 - 3  # (M, N, d)
    >>> last = list(run(OBJECTIVES["Rastrigin"], x0, sigma=0.5, steps=300, seed=0))[-1]
    >>> last.step, last.consensus.shape, last.diverged
    (300, torch.Size([10, 2]), False)
    """
    if noise not in NOISES:
        raise ValueError(f"Expected `noise` in {NOISES}, but got {noise!r}")
    check_positive("alpha", alpha, strict=False)
    check_positive("lam", lam, strict=False)
    check_positive("sigma", sigma, strict=False)
    check_positive("dt", dt)
    check_steps(steps)
    check_steps(every)
    if alpha_growth < 1.0 or alpha_max <= 0:
        raise ValueError(f"Expected `alpha_growth` >= 1 and `alpha_max` > 0, but got {alpha_growth} and {alpha_max}")
    x, single = as_batch(x0, device=device)
    g = generator(seed, x.device)
    return _loop(objective, x, single, g, alpha, lam, sigma, dt, int(steps), noise, alpha_growth, alpha_max, int(every))


def _loop(objective, x, single, g, alpha, lam, sigma, dt, steps, noise, growth, alpha_max, every) -> Iterator[CBOState]:
    with torch.no_grad():
        fx = initial_energy(objective, x)  # (M, N)
        v = consensus(x, fx, alpha)  # (M, d)
        div = ~finite_runs(fx, v)  # (M,) runs that start at +inf energies count as diverged
        yield make_state(0, dt, x, fx, v, alpha, div, single)
        any_div = bool(div.any())
        for k in range(1, steps + 1):
            xi = torch.randn(x.shape, generator=g, device=x.device, dtype=x.dtype)
            x_new = cbo_update(x, v, xi, lam=lam, sigma=sigma, dt=dt, noise=noise)
            if growth != 1.0:
                alpha = min(alpha * growth, alpha_max)
            fx_new = evaluate(objective, x_new)
            v_new = consensus(x_new, fx_new, alpha)
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
