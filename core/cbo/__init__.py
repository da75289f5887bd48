"""Consensus-based optimization (CBO) and the methods it relaxes: https://arxiv.org/abs/2306.09778"""

from core.cbo.baselines import METHODS, annealed_langevin, consensus_hopping, gradient_descent
from core.cbo.consensus import consensus, consensus_weights, decay_rate, effective_sample_size, variance_to
from core.cbo.dynamics import cbo_update, run
from core.cbo.objectives import OBJECTIVES, Objective
from core.cbo.phase import PhaseProgress, success_rate_grid, success_rates
from core.cbo.state import CBOState, last_state, success
from core.cbo.trace import Trace, trace

__all__ = [
    "METHODS",
    "OBJECTIVES",
    "CBOState",
    "Objective",
    "Trace",
    "PhaseProgress",
    "annealed_langevin",
    "cbo_update",
    "consensus",
    "consensus_hopping",
    "consensus_weights",
    "decay_rate",
    "effective_sample_size",
    "gradient_descent",
    "last_state",
    "run",
    "success",
    "success_rate_grid",
    "success_rates",
    "trace",
    "variance_to",
]
