"""Every method on the same problems, budgets and seeds: best-value curves and data profiles (Moré & Wild).

A curve is the best value after each evaluation, ``best[k]`` = min f over the first k + 1 evaluations, so
methods that spend evaluations in different batch sizes (one attack, a poll of 2d points, a CMA generation,
a CBO swarm) share one x-axis: the budget is the clock.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import partial

import numpy as np

from core.blackbox.baselines import cbo_search, cma_es
from core.blackbox.search import SearchConfig, SearchState, run
from core.errors import OptiscopeError, check_budget, check_int, check_range, check_seed

# Method key (the URL value) -> display label, and the runner each key names: runner(problem, budget=, goal=, seed=).
SOLVER_LABELS = {
    "hybrid": "Hybrid (attack + direct search)",
    "direct-search": "Direct search (MADS poll)",
    "attack": "Attacks only",
    "hybrid-centred": "Hybrid, centred attack",
    "attack-centred": "Attacks only, centred",
    "cma-es": "CMA-ES (cma)",
    "cbo": "CBO (core.cbo)",
}
SOLVERS: dict[str, Callable[..., Iterator[SearchState]]] = {
    "hybrid": partial(run, config=SearchConfig(method="hybrid")),
    "direct-search": partial(run, config=SearchConfig(method="direct-search")),
    "attack": partial(run, config=SearchConfig(method="attack")),
    "hybrid-centred": partial(run, config=SearchConfig(method="hybrid", attack="centred")),
    "attack-centred": partial(run, config=SearchConfig(method="attack", attack="centred")),
    "cma-es": cma_es,
    "cbo": cbo_search,
}
MAX_RUN_EVALUATIONS = 3e5  # methods × problems × seeds × budget: the page's largest link (7 × 10 × 3000) fits


def best_curve(states: Iterable[SearchState], budget: int) -> np.ndarray:
    """The best value after each of ``budget`` evaluations (held flat after a run stops early).

    Shapes:
        -> (budget,)

    >>> from core.blackbox.problems import landscape
    >>> curve = best_curve(run(landscape("Quadratic", 2), budget=50), 50)
    >>> curve.shape, bool((np.diff(curve) <= 0).all())
    ((50,), True)
    """
    budget = check_int("budget", budget)
    curve = np.full(budget, np.nan)
    for s in states:
        curve[min(s.evaluations, budget) - 1 :] = s.value  # a state's value holds from its last evaluation on
    if np.isnan(curve[-1]):
        raise OptiscopeError("Expected the run to yield at least one state, but it yielded none")
    return np.fmin.accumulate(curve)


@dataclass(frozen=True)
class Comparison:
    """Best-value curves of every (method, problem, seed), plus each problem's start value.

    Shapes (S methods, P problems, R seeds, E evaluations):
        curves: (S, P, R, E); start: (P,)
    """

    methods: tuple[str, ...]
    problems: tuple[str, ...]
    seeds: tuple[int, ...]
    curves: np.ndarray
    start: np.ndarray
    dims: tuple[int, ...]

    def evaluations_to(self, goal: float) -> np.ndarray:
        """Evaluations each run needed to reach f ≤ goal (NaN where it never did). Shapes: -> (S, P, R)"""
        reached = self.curves <= goal
        first = reached.argmax(-1).astype(float) + 1
        return np.where(reached.any(-1), first, np.nan)


def compare(
    problems: Sequence,
    methods: Sequence[str],
    *,
    seeds: Sequence[int] = (0, 1, 2),
    budget: int = 1000,
    goal: float | None = None,
) -> Comparison:
    """Optimization by Directional Attacks (ODA): https://arxiv.org/abs/2510.01461

    Runs ``SOLVERS[m]`` on every problem with every seed and the same budget (and ``goal``, a value to stop at).

    >>> from core.blackbox.problems import landscape
    >>> c = compare([landscape("Quadratic", 2)], ["direct-search", "cma-es"], seeds=[0], budget=100)
    >>> c.curves.shape
    (2, 1, 1, 100)
    """
    for m in methods:
        if m not in SOLVERS:
            raise OptiscopeError(f"Expected methods among {', '.join(map(repr, SOLVERS))}, but got {m!r}")
    budget = check_int("budget", budget)
    seeds = tuple(check_seed(s) for s in seeds)
    if not problems or not methods or not seeds:
        raise OptiscopeError("Expected at least one problem, one method and one seed")
    amount = len(methods) * len(problems) * len(seeds) * budget
    check_budget("evaluations (methods × problems × seeds × budget)", amount, MAX_RUN_EVALUATIONS)
    curves = np.stack(
        [
            np.stack(
                [
                    np.stack([best_curve(SOLVERS[m](p, budget=budget, goal=goal, seed=s), budget) for s in seeds])
                    for p in problems
                ]
            )
            for m in methods
        ]
    )
    start = np.array([float(p(p.x0[None])[0]) for p in problems])
    return Comparison(
        tuple(methods), tuple(p.name for p in problems), seeds, curves, start, tuple(p.d for p in problems)
    )


def solved_at(comparison: Comparison, *, tau: float = 1e-3) -> np.ndarray:
    r"""Evaluations after which each run passes Moré & Wild's test (NaN where it never does).

    A run (problem, seed) is solved after k evaluations when ``f0 - f_k >= (1 - tau)(f0 - f_L)``, with ``f_L``
    the best value any method found on that problem and seed (https://doi.org/10.1137/080724083).

    Shapes: -> (S, P, R)
    """
    tau = check_range("tau", tau, 0.0, 1.0)
    f0 = comparison.start[None, :, None, None]  # (1, P, 1, 1)
    best = comparison.curves[..., -1].min(0)[None, ..., None]  # (1, P, R, 1): f_L per problem and seed
    solved = f0 - comparison.curves >= (1 - tau) * (f0 - best)
    return np.where(solved.any(-1), solved.argmax(-1) + 1.0, np.nan)


def data_profile(comparison: Comparison, *, tau: float = 1e-3) -> np.ndarray:
    r"""Data profiles (Moré & Wild 2009, https://doi.org/10.1137/080724083): the share of runs solved vs budget.

    The fraction of the P × R runs that :func:`solved_at` within k evaluations, for k = 1 .. E. Moré & Wild
    count the budget in simplex gradients k / (d + 1); here it stays in evaluations (one d per comparison).

    Shapes: -> (S, E)

    >>> from core.blackbox.problems import landscape
    >>> c = compare([landscape("Quadratic", 2)], ["direct-search", "cbo"], seeds=[0, 1], budget=200)
    >>> data_profile(c).shape
    (2, 200)
    """
    at = solved_at(comparison, tau=tau).reshape(len(comparison.methods), -1, 1)  # (S, P·R, 1)
    budget = np.arange(1, comparison.curves.shape[-1] + 1)
    return (at <= budget).mean(1)
