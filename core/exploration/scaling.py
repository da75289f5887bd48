"""The paper's point, measured: episodes each explorer needs to plan ε-well, as the horizon H grows."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch

from core.errors import OptiscopeError, check_budget, check_int, check_positive, check_seed
from core.exploration.explorers import EXPLORERS
from core.exploration.mdp import LinearMixtureMDP, check_horizon, check_mdp, check_rewards
from core.exploration.run import EPISODE_STEP_BUDGET, ExploreConfig, run

SCALING_BUDGET = 5 * EPISODE_STEP_BUDGET  # transitions over the whole grid Σ K·H


@dataclass(frozen=True)
class ScalingState:
    """Episodes to ε filled in cell by cell: ``episodes[i, j]`` for explorer i at horizon j (-1: not reached).

    ``curves[i][j]`` is that run's worst-reward suboptimality after 0..K episodes.
    """

    step: int
    total: int
    explorers: tuple[str, ...]
    horizons: tuple[int, ...]
    episodes: torch.Tensor
    curves: tuple[tuple[tuple[float, ...], ...], ...]


def first_settled(curve: Sequence[float], epsilon: float) -> int:
    """The first episode from which the suboptimality stays ≤ ε to the end of the run; -1 if it never settles.

    >>> first_settled([0.08, 0.0, 0.08, 0.0, 0.0], 0.01)
    3
    """
    above = [k for k, value in enumerate(curve) if value > epsilon]
    settled = above[-1] + 1 if above else 0
    return settled if settled < len(curve) else -1


def scaling(
    mdp: LinearMixtureMDP,
    rewards: torch.Tensor,
    *,
    horizons: Sequence[int] = (12, 24, 48),
    explorers: Sequence[str] = tuple(EXPLORERS),
    epsilon: float = 0.01,
    steps: int = 50,
    beta: float = 1.0,
    seed: int = 0,
) -> Iterator[ScalingState]:
    """Episodes to ε (first K from which max-reward suboptimality stays ≤ ε) per explorer and horizon H.

    ε is in the horizon-free scaling (values in [0, 1]); the same ε with r_h ∈ [0, 1] would be Hε.
    Yields after each (explorer, H) cell, starting from an empty table.
    """
    horizons = tuple(check_horizon(h) for h in horizons)
    explorers = tuple(explorers)
    if not horizons or not explorers or any(e not in EXPLORERS for e in explorers):
        raise OptiscopeError(f"Expected explorers among {list(EXPLORERS)} and at least one horizon, got {explorers}")
    epsilon, steps = check_positive("epsilon", epsilon), check_int("steps", steps)
    check_budget("transitions Σ K·H over the grid", len(explorers) * steps * sum(horizons), SCALING_BUDGET)
    check_rewards(check_mdp(mdp), rewards)
    seed = check_seed(seed)
    configs = [[ExploreConfig(explorer=e, horizon=h, beta=beta) for h in horizons] for e in explorers]
    return _fill(mdp, rewards, configs, explorers, horizons, epsilon, steps, seed)


def _fill(mdp, rewards, configs, explorers, horizons, epsilon, steps, seed) -> Iterator[ScalingState]:
    episodes = torch.full((len(explorers), len(horizons)), -1, dtype=torch.long)
    curves = [[() for _ in horizons] for _ in explorers]
    total, done = episodes.numel(), 0
    yield ScalingState(0, total, explorers, horizons, episodes.clone(), tuple(map(tuple, curves)))
    for i, row in enumerate(configs):
        for j, config in enumerate(row):
            curves[i][j] = tuple(s.worst for s in run(mdp, rewards, config=config, steps=steps, seed=seed))
            episodes[i, j], done = first_settled(curves[i][j], epsilon), done + 1
            yield ScalingState(done, total, explorers, horizons, episodes.clone(), tuple(map(tuple, curves)))
