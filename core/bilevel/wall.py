"""BO-REP's comparison: where un-normalized AID diverges, per step size and start (https://arxiv.org/abs/2401.09587)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from core.bilevel.borep import MAX_WORK, BOREPConfig, UnboundedBilevel, bo_rep, check_problem, first_below
from core.bilevel.checks import check_tensor
from core.errors import OptiscopeError, check_budget, check_int, check_positive, check_seed


@dataclass(frozen=True)
class WallProgress:
    """The step-size wall so far: per step size (rows) and start (columns), the first step with ``‖∇Φ‖ < tol``."""

    lrs: tuple[float, ...]
    starts: torch.Tensor  # (K, dx)
    first_hit: np.ndarray  # (rows done, K): step, or −1 if never
    diverged: np.ndarray  # (rows done, K) bool
    done: int  # rows done


def step_size_wall(
    problem: UnboundedBilevel,
    starts: torch.Tensor,
    lrs: tuple[float, ...],
    *,
    steps: int = 1000,
    tol: float = 0.1,
    seed: int = 0,
) -> Iterator[WallProgress]:
    """Un-normalized AID from every start at every step size: which converge, which diverge (one row per ``lr``).

    >>> from core.bilevel.borep import quartic_toy
    >>> wall = list(step_size_wall(quartic_toy(), torch.tensor([[30.0, 40.0]], dtype=torch.float64), (0.05,), steps=50))
    >>> wall[-1].diverged.tolist()
    [[True]]
    """
    if not lrs:
        raise OptiscopeError("Expected `lrs` to list at least one step size, but got ()")
    for lr in lrs:
        check_positive("lr", lr)
    check_positive("tol", tol)
    check_int("steps", steps)
    check_seed(seed)
    check_problem(problem)
    check_tensor("starts", starts, dims=(2,))
    check_budget("run-iterations M·steps·len(lrs)", len(starts) * steps * len(lrs), MAX_WORK)
    return _wall(problem, starts, tuple(lrs), steps, tol, seed)


def _wall(problem, starts, lrs, steps, tol, seed) -> Iterator[WallProgress]:
    hits, diverged = [], []
    for lr in lrs:
        states = list(bo_rep(problem, starts, config=BOREPConfig.aid(lr), steps=steps, seed=seed))
        hits.append(first_below(states, tol=tol))
        diverged.append(states[-1].diverged.cpu().numpy())
        yield WallProgress(lrs, starts, np.stack(hits), np.stack(diverged), len(hits))
