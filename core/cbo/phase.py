"""Success rates of CBO over many independent runs, and the (sigma, N) phase diagram as progress states."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch

from core.cbo.dynamics import run
from core.cbo.objectives import OBJECTIVES, Objective
from core.cbo.state import last_state, success
from core.device import generator


def success_rates(
    objective: Objective = OBJECTIVES["Rastrigin"],
    *,
    d: int = 20,
    n_particles: int = 40,
    runs: int = 100,
    x_range: tuple[float, float] = (-3.0, 3.0),
    tol: float = 0.25,
    seed: int = 0,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
    **cbo,
) -> tuple[float, float]:
    r"""Success rate of CBO (CBO): https://arxiv.org/abs/1909.09249

    ``runs`` independent runs batched as one (M, N, d) tensor, x0 ~ U[x_range]^d; a run succeeds when
    its final consensus satisfies ``||v - x*||_inf < tol``; a diverged run fails.

    Args:
        objective (`Objective`, defaults to Rastrigin), d, n_particles, runs: the experiment.
        x_range (`tuple`, defaults to `(-3, 3)`), tol (`float`, defaults to `0.25`), seed, device, dtype.
        **cbo: keyword arguments of :func:`core.cbo.run` (alpha, lam, sigma, dt, steps, noise, ...).

    Returns:
        (success fraction, diverged fraction), both in [0, 1].

    >>> success_rates(d=2, n_particles=50, runs=20, sigma=1.0, alpha=30.0, steps=300)
    (1.0, 0.0)
    """
    if int(runs) != runs or runs < 1:
        raise ValueError(f"Expected `runs` >= 1, but got {runs}")
    objective.check_dim(d)
    lo, hi = x_range
    g = generator(seed, device)
    x0 = lo + (hi - lo) * torch.rand((runs, n_particles, d), generator=g, device=device, dtype=dtype)  # (M, N, d)
    cbo.setdefault("every", cbo.get("steps", 1000))
    last = last_state(run(objective, x0, seed=seed + 1, **cbo))
    ok = success(last.consensus, objective.minimiser(d, device, dtype), tol) & ~last.diverged_runs
    return float(ok.float().mean()), float(last.diverged_runs.float().mean())


@dataclass(frozen=True)
class PhaseProgress:
    """The (sigma, N) grid so far; cells not yet computed are NaN.

    Shapes:
        success, diverged: (len(sigmas), len(ns))
    """

    done: int
    total: int
    sigmas: tuple[float, ...]
    ns: tuple[int, ...]
    success: torch.Tensor
    diverged: torch.Tensor

    @property
    def fraction(self) -> float:
        return self.done / self.total


def success_rate_grid(sigmas: Sequence[float], ns: Sequence[int], **kwargs) -> Iterator[PhaseProgress]:
    r"""Phase diagram of CBO (CBO): https://arxiv.org/abs/2103.15130

    :func:`success_rates` on every (sigma, N) cell, yielding the growing grid after each cell, so a UI
    can show progress and a partial heat map. The sharp threshold in sigma is the lesson.

    Args:
        sigmas (`Sequence[float]`), ns (`Sequence[int]`): the grid axes.
        **kwargs: forwarded to :func:`success_rates` (d, runs, steps, alpha, noise, seed, ...).

    Shapes:
        state.success: (len(sigmas), len(ns))

    >>> last = list(success_rate_grid([0.5, 1.0], [20], d=2, runs=4, steps=100))[-1]
    >>> last.done, last.success.shape
    (2, torch.Size([2, 1]))
    """
    sigmas, ns = tuple(float(s) for s in sigmas), tuple(int(n) for n in ns)
    if not sigmas or not ns:
        raise ValueError("Expected at least one sigma and one N for the phase diagram")
    rate = torch.full((len(sigmas), len(ns)), float("nan"))
    dive = rate.clone()
    total = rate.numel()
    yield PhaseProgress(0, total, sigmas, ns, rate.clone(), dive.clone())
    done = 0
    for i, s in enumerate(sigmas):
        for j, n in enumerate(ns):
            rate[i, j], dive[i, j] = success_rates(sigma=s, n_particles=n, **kwargs)
            done += 1
            yield PhaseProgress(done, total, sigmas, ns, rate.clone(), dive.clone())
