"""HF-UCRL-RFE++ reward-free exploration in linear mixture MDPs: https://arxiv.org/abs/2303.10165

"Optimal Horizon-Free Reward-Free Exploration for Linear Mixture MDPs" (Zhang, Zhang, Gu, ICML 2023), with its
baselines random play and UCRL-RFE ("Reward-Free Model-Based RL with Linear Function Approximation", Zhang,
Zhou, Gu 2021, https://arxiv.org/abs/2110.07282). ``run(mdp, rewards, *, config=ExploreConfig(...), steps,
seed)`` yields one frozen :class:`ExploreState` per episode; ``core.runs.last_state`` runs it to its end.
"""

from core.exploration.explorers import EXPLORER_NAMES, EXPLORERS
from core.exploration.instances import chain_mdp, chain_rewards, lower_bound_mdp
from core.exploration.mdp import LinearMixtureMDP, evaluate, plan, suboptimality, value_iteration
from core.exploration.run import ExploreConfig, ExploreState, run
from core.exploration.scaling import scaling

__all__ = [
    "EXPLORERS",
    "EXPLORER_NAMES",
    "ExploreConfig",
    "ExploreState",
    "LinearMixtureMDP",
    "chain_mdp",
    "chain_rewards",
    "evaluate",
    "lower_bound_mdp",
    "plan",
    "run",
    "scaling",
    "suboptimality",
    "value_iteration",
]
