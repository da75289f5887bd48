"""Reward-free exploration as an iterator of per-episode states, each with the planner's suboptimality."""

from __future__ import annotations

import bisect
from collections.abc import Iterator
from dataclasses import dataclass

import torch

from core.device import generator
from core.errors import OptiscopeError, check_budget, check_choice, check_int, check_positive, check_seed
from core.exploration.explorers import EXPLORERS, Path, Ridge
from core.exploration.mdp import LinearMixtureMDP, _evaluate, _plan, _value_iteration, check_horizon, check_rewards

EPISODE_STEP_BUDGET = 200_000  # episodes × H transitions a run may take (each a few small d×d updates)


@dataclass(frozen=True)
class ExploreConfig:
    """How to explore: the explorer, the horizon H and the confidence parameters.

    Args:
        explorer (`str`, defaults to `"ucrl_rfe"`): a key of ``EXPLORERS`` ("random", "ucrl_rfe", "hf_ucrl_rfe").
        horizon (`int`, defaults to `24`): steps per episode H.
        beta (`float`, defaults to `1.0`): confidence radius β; the theoretical one is so large that exploration
            becomes pure bonus (notes §3d), so the lab uses β ≈ 1.
        lam (`float`, defaults to `1.0`): ridge λ of every regression.
    """

    explorer: str = "ucrl_rfe"
    horizon: int = 24
    beta: float = 1.0
    lam: float = 1.0

    def __post_init__(self) -> None:
        check_choice("explorer", self.explorer, EXPLORERS)
        check_horizon(self.horizon)
        check_positive("beta", self.beta, strict=False)
        check_positive("lam", self.lam)


@dataclass(frozen=True)
class ExploreState:
    """After ``step`` episodes of reward-free exploration.

    Shapes (S states, A actions, d features, R rewards):
        visits: (S,) state visits so far; episode_visits: (S,) in the last episode;
        theta: (d,) the planner's θ̂ (ridge fit of next states on φ); gram: (d, d) its Σ, so that
        {θ: ‖θ − θ̂‖_Σ ≤ β} is the confidence ellipsoid; pseudo_reward: (S, A) the explorer's reward at h = 1
        (zeros for random play); suboptimality: (R,) V*(s₁) − V^π̂(s₁) of the policy planned with θ̂.
    """

    step: int
    visits: torch.Tensor
    episode_visits: torch.Tensor
    theta: torch.Tensor
    gram: torch.Tensor
    pseudo_reward: torch.Tensor
    suboptimality: torch.Tensor
    beta: float

    @property
    def worst(self) -> float:
        """The suboptimality for the worst reward in the set (the lab's metric)."""
        return float(self.suboptimality.max())


def run(
    mdp: LinearMixtureMDP,
    rewards: torch.Tensor,
    *,
    config: ExploreConfig = ExploreConfig(),
    steps: int = 100,
    every: int = 1,
    seed: int = 0,
    device: torch.device | str | None = None,
) -> Iterator[ExploreState]:
    r"""Reward-free exploration, then planning for every reward in the set: https://arxiv.org/abs/2303.10165

    Each episode the explorer picks a policy without seeing any reward, rolls it out for H steps on the
    true MDP, and learns from the transitions. After each episode every explorer's data feed the same
    planner: θ̂ = the ridge fit of one-hot next states on Φ(s,a) over all transitions, then value iteration
    with θ̂ for each reward; the state reports V* − V^π̂ on the true MDP.

    Args:
        mdp (`LinearMixtureMDP`): the environment (φ, θ*, start state).
        rewards (`torch.Tensor`): (R, S) rewards in [0, 1] revealed only to the planner (paid r/H per step).
        config (`ExploreConfig`): explorer, horizon, β, λ.
        steps (`int`, defaults to `100`): episodes K, >= 1.
        every (`int`, defaults to `1`): yield every ``every``-th episode (plus episode 0 and the last).
        seed (`int`, defaults to `0`): seed of the rollouts and of random play.
        device (`torch.device`, optional): where to compute; defaults to the MDP's device.

    Raises:
        OptiscopeError: for bad input, or past ``EPISODE_STEP_BUDGET`` transitions K·H.

    >>> from core.exploration.instances import chain_mdp, chain_rewards
    >>> last = list(run(chain_mdp(), chain_rewards(), steps=3))[-1]
    >>> last.step, tuple(last.visits.shape), int(last.visits.sum())
    (3, (12,), 72)
    """
    if not isinstance(mdp, LinearMixtureMDP):
        raise OptiscopeError(f"Expected `mdp` to be a LinearMixtureMDP, but got {type(mdp).__name__}")
    if not isinstance(config, ExploreConfig):
        raise OptiscopeError(f"Expected `config` to be an ExploreConfig, but got {type(config).__name__}")
    steps, every, seed = check_int("steps", steps), check_int("every", every), check_seed(seed)
    check_budget(
        "transitions K·H", steps * config.horizon, EPISODE_STEP_BUDGET, hint="Use fewer episodes or a shorter H."
    )
    if device is not None:
        mdp = LinearMixtureMDP(mdp.phi.to(device), mdp.theta.to(device), mdp.start)
    rewards = check_rewards(mdp, rewards)
    return _loop(mdp, rewards, config, steps, every, seed)


def _loop(mdp: LinearMixtureMDP, rewards, config: ExploreConfig, steps: int, every: int, seed: int):
    g = generator(seed, mdp.phi.device)
    explorer = EXPLORERS[config.explorer](mdp, rewards, config.horizon, config.beta, config.lam, g)
    planner = Ridge(mdp.d, config.lam, mdp.phi)
    best = _value_iteration(mdp.transitions, rewards, config.horizon).values[:, 0, mdp.start]
    cdf = mdp.transitions.cumsum(-1).cpu().tolist()  # rollouts step in Python: one bisect per transition
    visits = torch.zeros(mdp.n_states, dtype=mdp.phi.dtype, device=mdp.phi.device)
    state = snapshot(0, visits, visits, planner, explorer.choose()[1], mdp, rewards, best, config)
    yield state
    for k in range(1, steps + 1):
        policy, pseudo = explorer.choose()
        path = rollout(policy, cdf, mdp.start, torch.rand(config.horizon, generator=g, device=g.device), mdp)
        explorer.update(path)
        phi = mdp.phi[path.states, path.actions]  # (H, S, d)
        planner.update(
            phi.reshape(-1, mdp.d), torch.nn.functional.one_hot(path.next_states, mdp.n_states).flatten().to(phi)
        )
        episode = torch.bincount(path.states, minlength=mdp.n_states).to(visits)
        visits = visits + episode
        if k % every == 0 or k == steps:
            yield snapshot(k, visits, episode, planner, pseudo, mdp, rewards, best, config)


def snapshot(step, visits, episode, planner: Ridge, pseudo, mdp, rewards, best, config) -> ExploreState:
    """The state after ``step`` episodes: plan with the planner's θ̂ for every reward, evaluate on the true MDP."""
    policy = _plan(mdp, planner.theta, rewards, config.horizon).policy
    achieved = _evaluate(mdp.transitions, policy, rewards)[:, 0, mdp.start]
    return ExploreState(
        step, visits, episode, planner.theta.clone(), planner.gram.clone(), pseudo.clone(), best - achieved, config.beta
    )


def rollout(policy: torch.Tensor, cdf: list, start: int, uniforms: torch.Tensor, mdp: LinearMixtureMDP) -> Path:
    """One episode of ``policy`` (H, S) from ``start``, next states by inverse-CDF sampling of ``uniforms``."""
    actions_of, s, states, actions, following = policy.tolist(), start, [], [], []
    for h, u in enumerate(uniforms.tolist()):
        a = actions_of[h][s]
        row = cdf[s][a]
        s_next = min(bisect.bisect_right(row, u * row[-1]), len(row) - 1)
        states.append(s), actions.append(a), following.append(s_next)
        s = s_next
    as_index = lambda xs: torch.tensor(xs, device=mdp.phi.device)  # noqa: E731
    return Path(as_index(states), as_index(actions), as_index(following))
