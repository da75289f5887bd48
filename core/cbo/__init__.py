"""Consensus-based optimization (CBO): https://arxiv.org/abs/1604.05648

With the methods it relaxes, after "Gradient is All You Need?" (https://arxiv.org/abs/2306.09778): consensus
hopping and gradient descent (annealed Langevin dynamics is in ``core.cbo.baselines``), and the success rates
of anisotropic CBO in high dimensions (https://arxiv.org/abs/1909.09249). ``run(objective, x0, *, config=CBOConfig(...), steps, seed)``
yields one frozen :class:`~core.cbo.state.CBOState` per step; ``core.runs.last_state`` runs it to its end.
"""

from core.cbo.baselines import comparison_paths, consensus_hopping, gradient_descent
from core.cbo.config import FORMULAS, NOISES, CBOConfig
from core.cbo.consensus import consensus, consensus_weights, decay_rate, effective_sample_size
from core.cbo.dynamics import run
from core.cbo.objectives import OBJECTIVES
from core.cbo.phase import success_rate_grid, success_rates
from core.cbo.trace import trace

__all__ = [
    "FORMULAS",
    "NOISES",
    "OBJECTIVES",
    "CBOConfig",
    "comparison_paths",
    "consensus",
    "consensus_hopping",
    "consensus_weights",
    "decay_rate",
    "effective_sample_size",
    "gradient_descent",
    "run",
    "success_rate_grid",
    "success_rates",
    "trace",
]
