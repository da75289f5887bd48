"""The CBO particle loop: Euler-Maruyama steps of the consensus-based SDE as an iterator of states."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import NamedTuple

import torch

from core.cbo.config import DEFAULT_CONFIG, CBOConfig, check_steps
from core.cbo.consensus import gibbs_mean, gibbs_mean_rows
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
from core.errors import OptiscopeError, check_seed

NOISE_CHUNK = 2**16  # noise elements per generator call: many steps at once for small swarms; its float32 draws and
# their float64 cast (768 KB) stay in a core's L2 (1.25 MB here) until the steps read them: 2**18 was ~20% slower at N = 1e3
BLOCK_ELEMENTS = 2**15  # numbers per block of rows in a large swarm's step (see _block_rows)


def noise_law(config: CBOConfig) -> tuple[float, float]:
    """(mean, std) of the noise :func:`cbo_update` takes per coordinate, drawn in one pass with ``normal_``.

    Anisotropic: the whole factor ``sigma sqrt(dt) xi - lam dt`` of ``x - v`` (so the step is one fused pass);
    isotropic: ``sigma sqrt(dt) xi``, scaled by ``||x - v||`` in the step.

    >>> noise_law(CBOConfig(sigma=2.0, lam=1.0, dt=0.25))
    (-0.25, 1.0)
    """
    std = config.sigma * math.sqrt(config.dt)
    return (-config.lam * config.dt, std) if config.noise == "anisotropic" else (0.0, std)


def cbo_update(
    x: torch.Tensor,
    v: torch.Tensor,
    drawn: torch.Tensor,
    *,
    lam: float,
    dt: float,
    noise: str,
    inplace: bool = False,
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    """One Euler-Maruyama step of CBO: https://arxiv.org/abs/1604.05648

    ``x - lam dt (x - v) + sigma sqrt(dt) D(x - v) xi``, where D(u) = diag(u) (anisotropic) or ||u|| I
    (isotropic), with the noise already drawn from :func:`noise_law` as ``drawn``. ``inplace`` writes into
    ``x`` (the loop does so once ``x`` is its own, never into a yielded state); ``out``, shaped like ``x``, holds
    ``x - v`` (a buffer the loop reuses instead of allocating one per step).

    Shapes:
        x: (M, N, d), v: (M, 1, d), drawn: (M, N, d) -> (M, N, d)

    >>> cbo_update(torch.ones(1, 1, 2), torch.zeros(1, 1, 2), torch.full((1, 1, 2), -0.5), lam=1.0, dt=0.5,
    ...            noise="anisotropic")
    tensor([[[0.5000, 0.5000]]])
    """
    diff = torch.sub(x, v, out=out)  # (M, N, d)
    if noise == "anisotropic":  # x + diff * (sigma sqrt(dt) xi - lam dt): one fused pass
        return x.addcmul_(diff, drawn) if inplace else torch.addcmul(x, diff, drawn)
    scale = diff.norm(dim=-1, keepdim=True)  # (M, N, 1)
    moved = x.sub_(diff, alpha=lam * dt) if inplace else x.sub(diff, alpha=lam * dt)
    return moved.addcmul_(scale, drawn)


def _draws(g: torch.Generator, x: torch.Tensor, config: CBOConfig, steps: int) -> Iterator[torch.Tensor]:
    """The noise of ``steps`` steps, one (M, N, d) tensor per step, drawn in chunks of about NOISE_CHUNK elements."""
    mean, std = noise_law(config)
    per_chunk = min(steps, max(1, NOISE_CHUNK // x.numel()))
    buffer = x.new_empty((per_chunk, *x.shape), dtype=_sampler_dtype(x))  # refilled: each draw is used before the next
    cast = None if buffer.dtype == x.dtype else x.new_empty(buffer.shape)
    for first in range(0, steps, per_chunk):
        size = min(per_chunk, steps - first)
        yield from _normal(buffer[:size], None if cast is None else cast[:size], mean, std, g)


def _sampler_dtype(x: torch.Tensor) -> torch.dtype:
    # torch's CPU sampler is vectorised (AVX2) for float32 only: float64 draws measured ~5x slower, most of a
    # float64 step. Float32 draws cast to float64 follow the same law to 2**-24; the step's arithmetic stays float64.
    return torch.float32 if x.dtype == torch.float64 and x.device.type == "cpu" else x.dtype


def _normal(out: torch.Tensor, cast: torch.Tensor | None, mean: float, std: float, g: torch.Generator) -> torch.Tensor:
    """N(mean, std²) draws in ``out``, or drawn there in float32 and returned in ``cast`` (float64, out's shape)."""
    if cast is None:
        return out.normal_(mean, std, generator=g)
    # the mean (-lam dt) added in float64: only the random part carries float32's rounding
    return cast.copy_(out.normal_(0.0, std, generator=g)).add_(mean)


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
        done = 0
        while done < steps:
            n = min(every - done % every, steps - done)  # steps to the next state yielded on schedule
            if not bool(div.any()):
                before = g.get_state()
                end = _segment(objective, x, v, alpha, g, config, n)
                if bool(end[-1].all()):  # every run stayed finite: the segment's one host sync
                    x, fx, v, alpha, done = *end[:4], done + n
                    yield make_state(done, dt, x, fx, v, alpha, div, single)
                    continue
                g.set_state(before)  # a run blew up in there: replay the segment step by step, with the same draws
            replay = _checked_segment(objective, (x, fx, v, div), alpha, _draws(g, x, config, n), config, done)
            for state in replay:
                yield make_state(state.step, dt, state.x, state.fx, state.v, state.alpha, state.div, single)
            done, x, fx, v, div, alpha = state
            if bool(div.all()):
                return


def _grow(alpha: float, config: CBOConfig) -> float:
    return min(alpha * config.alpha_growth, config.alpha_max) if config.alpha_growth != 1.0 else alpha


def _segment(objective, x, v, alpha: float, g: torch.Generator, config: CBOConfig, steps: int):
    """Steps with no host sync: returns the end and, per run, whether every energy and the end were finite."""
    # Small swarms spend a step in per-op overhead (~5 µs each): the objective's shape was checked at the start
    # (initial_energy), alpha grows only if its schedule is on, and x - v and -alpha f reuse buffers.
    rows = _block_rows(x)
    v = v.unsqueeze(-2)  # (M, 1, d)
    grows = config.alpha_growth != 1.0
    logits = x.new_empty(x.shape[:-1])  # (M, N): -alpha f of the step
    rows_view, logits_sum = logits.unsqueeze(-2), torch.zeros_like(logits)  # non-finite iff some energy was
    if rows is None:
        diff = torch.empty_like(x)
        for j, drawn in enumerate(_draws(g, x, config, steps)):
            x = cbo_update(x, v, drawn, lam=config.lam, dt=config.dt, noise=config.noise, inplace=j > 0, out=diff)
            alpha = _grow(alpha, config) if grows else alpha
            fx = objective(x)
            fx = fx if fx.dtype == x.dtype else fx.to(x.dtype)
            v = gibbs_mean_rows(x, fx, alpha, logits, rows_view)
            logits_sum.add_(logits)
    else:
        x, fx, block = x.clone(), x.new_empty(x.shape[:-1]), _BlockBuffers(x, rows, config)
        for _ in range(steps):
            for start in range(0, x.shape[1], rows):  # x - v, the move and f(x) while a block's rows are in cache
                xb = x[:, start : start + rows]
                diff, drawn = block.draw(xb.shape[1], g)
                cbo_update(xb, v, drawn, lam=config.lam, dt=config.dt, noise=config.noise, inplace=True, out=diff)
                fx[:, start : start + rows] = objective(xb)
            alpha = _grow(alpha, config) if grows else alpha
            v = gibbs_mean_rows(x, fx, alpha, logits, rows_view)
            logits_sum.add_(logits)
    v = v.squeeze(-2)
    return x, fx, v, alpha, finite_runs(fx, v) & torch.isfinite(logits_sum).all(dim=-1)


def _block_rows(x: torch.Tensor) -> int | None:
    """Rows per block of a large single run's step on the CPU (None: the whole swarm at once).

    A step over 10⁵ particles × d = 20 moves ~56 MB (x, x - v, the noise and its cast): more than the caches, so
    each of its passes streams from memory. A block's ~0.9 MB stays in a core's L2 from x - v to f(x). Blocks hold
    a multiple of 16 numbers, so torch's sampler (16 at a time) draws the same noise as for the whole step.
    """
    m, n, d = x.shape
    rows = max(16, BLOCK_ELEMENTS // d // 16 * 16)
    return rows if m == 1 and n >= 4 * rows and x.device.type == "cpu" else None


class _BlockBuffers:
    """The noise of one block of rows (drawn as :func:`_draws` draws a step's) and its x - v, reused block by block."""

    def __init__(self, x: torch.Tensor, rows: int, config: CBOConfig) -> None:
        self.mean, self.std = noise_law(config)
        self.noise = x.new_empty((1, rows, x.shape[-1]), dtype=_sampler_dtype(x))
        self.cast = None if self.noise.dtype == x.dtype else x.new_empty(self.noise.shape)
        self.diff = x.new_empty(self.noise.shape)

    def draw(self, rows: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        cast = None if self.cast is None else self.cast[:, :rows]
        return self.diff[:, :rows], _normal(self.noise[:, :rows], cast, self.mean, self.std, g)


class _Step(NamedTuple):
    step: int
    x: torch.Tensor
    fx: torch.Tensor
    v: torch.Tensor
    div: torch.Tensor
    alpha: float


def _checked_segment(objective, start, alpha: float, draws: Iterator[torch.Tensor], config: CBOConfig, done: int):
    """Steps with a divergence check each (one host sync per step): a run whose values turn non-finite is frozen
    at its last finite state and flagged. Yields ``(step, x, fx, v, div, alpha)`` at each new divergence and at
    the end, or once every run has diverged (then stops)."""
    x, fx, v, div = start
    any_div = bool(div.any())
    for step, drawn in enumerate(draws, done + 1):
        x_new = cbo_update(x, v.unsqueeze(-2), drawn, lam=config.lam, dt=config.dt, noise=config.noise)
        alpha = _grow(alpha, config)
        fx_new = evaluate(objective, x_new)
        v_new = gibbs_mean(x_new, fx_new, alpha)
        bad = ~finite_runs(fx_new, v_new) | div
        newly = bool((bad & ~div).any())
        if any_div or newly:  # freeze blown-up runs at their last finite state instead of propagating NaN
            x_new = torch.where(bad.view(-1, 1, 1), x, x_new)
            fx_new = torch.where(bad.view(-1, 1), fx, fx_new)
            v_new = torch.where(bad.view(-1, 1), v, v_new)
            div, any_div = bad, True
        x, fx, v = x_new, fx_new, v_new
        if newly or bool(div.all()):
            yield _Step(step, x, fx, v, div, alpha)
            if bool(div.all()):
                return
    if not newly:
        yield _Step(step, x, fx, v, div, alpha)
