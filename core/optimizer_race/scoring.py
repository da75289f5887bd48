"""AlgoPerf scoring (mlcommons/algorithmic-efficiency, ``scoring/performance_profile.py``), written exactly.

Per study, the time to target is the first evaluation at or below the target (a miss is ∞); per workload,
the median over studies (misses take part). Ratios ``r_{s,w} = t_{s,w} / min_s t_{s,w}`` over ``tau_max``
count as misses; the profile ``ρ_s(τ) = #{w : r_{s,w} ≤ τ} / n`` is a step function, so the normalized area
under it on [1, τ_max] is exactly ``mean_w max(0, (τ_max − r_{s,w}) / (τ_max − 1))``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from core.errors import OptiscopeError, check_choice

CLOCKS = {"steps": "Steps", "seconds": "CPU seconds (evaluation excluded)"}
Times = Mapping[str, Mapping[str, float]]  # method -> workload -> time (inf = target missed)


def time_to_target(states: Iterable, target: float, *, clock: str = "steps") -> float:
    """The clock (``step`` or ``seconds``) of the first state whose value reaches ``target``; ∞ if none does.

    >>> from core.optimizer_race.race import RaceState
    >>> time_to_target([RaceState(0, 0.0, 0.9, None), RaceState(10, 0.1, 0.2, None)], 0.5)
    10.0
    """
    check_choice("clock", clock, tuple(CLOCKS))
    for state in states:
        if state.value <= target and not state.diverged:
            return float(state.step if clock == "steps" else state.seconds)
    return math.inf


def median_time(study_times: Sequence[float]) -> float:
    """AlgoPerf's per-workload time: the median over studies, misses (∞) included.

    >>> median_time([100.0, math.inf, 300.0]), median_time([100.0, math.inf, math.inf])
    (300.0, inf)
    """
    if not study_times:
        raise OptiscopeError("Expected at least one study time, but got none")
    return float(np.median(np.asarray(study_times, dtype=float)))


def ratios(times: Times, *, tau_max: float = 4.0) -> dict[str, dict[str, float]]:
    """``t_{s,w} / min_s t_{s,w}`` per method and workload; ratios over ``tau_max`` (and misses) are ∞."""
    if tau_max <= 1.0 or not math.isfinite(tau_max):
        raise OptiscopeError(f"Expected `tau_max` > 1 and finite, but got {tau_max}")
    workloads = sorted({w for per in times.values() for w in per})
    best = {w: min(per.get(w, math.inf) for per in times.values()) for w in workloads}
    out = {}
    for method, per in times.items():
        r = {w: per.get(w, math.inf) / best[w] if math.isfinite(best[w]) else math.inf for w in workloads}
        out[method] = {w: v if v <= tau_max else math.inf for w, v in r.items()}
    return out


def performance_profile(times: Times, taus: Sequence[float], *, tau_max: float = 4.0) -> dict[str, np.ndarray]:
    """``ρ_s(τ)``, the fraction of workloads each method solves within ``τ`` × the fastest, at each of ``taus``.

    >>> performance_profile({"A": {"w1": 1.0, "w2": 1.0}, "B": {"w1": 2.0, "w2": math.inf}}, [1.0, 2.0])["B"]
    array([0. , 0.5])
    """
    taus = np.asarray(taus, dtype=float)
    return {
        method: np.array([sum(v <= tau for v in r.values()) / max(1, len(r)) for tau in taus])
        for method, r in ratios(times, tau_max=tau_max).items()
    }


def score(times: Times, *, tau_max: float = 4.0) -> dict[str, float]:
    """The AlgoPerf benchmark score: the area under the profile on [1, τ_max] divided by τ_max − 1, in [0, 1].

    >>> score({"A": {"w1": 1, "w2": 1}, "B": {"w1": 2, "w2": math.inf}, "C": {"w1": 5, "w2": 1}})
    {'A': 1.0, 'B': 0.3333333333333333, 'C': 0.5}
    """
    return {
        method: float(np.mean([max(0.0, (tau_max - v) / (tau_max - 1.0)) for v in r.values()])) if r else 0.0
        for method, r in ratios(times, tau_max=tau_max).items()
    }
