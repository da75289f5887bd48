"""Optimization by Directional Attacks (ODA): https://arxiv.org/abs/2510.01461

Black-box optimization of ``f(Phi(x))`` where ``Phi`` is a neural surrogate (Bouchet & Vidal 2025): an
adversarial-attack step on the surrogate proposes the move, a mesh-adaptive direct search (MADS,
https://doi.org/10.1137/040603371) keeps the convergence guarantee, and their hybrid runs the attack first.
``run(problem, *, x0, config=SearchConfig(...), budget, goal, seed)`` yields one frozen
:class:`~core.blackbox.search.SearchState` per iteration; CMA-ES (``cma``), CBO (``core.cbo``) and NOMAD's MADS
(``PyNomadBBO``) run on the same problems through :func:`compare` and :func:`nomad`.
"""

from core.blackbox.baselines import cbo_search, cma_es, nomad
from core.blackbox.compare import SOLVER_LABELS, SOLVERS, compare, data_profile
from core.blackbox.problems import landscape, make_problem, surrogate, train_surrogate, zoo_classifier
from core.blackbox.search import SearchConfig, run

__all__ = [
    "SOLVERS",
    "SOLVER_LABELS",
    "SearchConfig",
    "cbo_search",
    "cma_es",
    "compare",
    "data_profile",
    "landscape",
    "make_problem",
    "nomad",
    "run",
    "surrogate",
    "train_surrogate",
    "zoo_classifier",
]
