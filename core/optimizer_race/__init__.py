"""Optimizer race: "How far away are truly hyperparameter-free learning algorithms?" https://arxiv.org/abs/2505.24005

Kasimbeg et al. freeze the hyperparameters of learning-rate-free methods and score them the AlgoPerf way
(Dahl et al., "Benchmarking Neural Network Training Algorithms", https://arxiv.org/abs/2306.07179) against a
calibrated NadamW. Here: four small CPU workloads (``WORKLOADS``), the real packages of Prodigy
(https://arxiv.org/abs/2306.06101), D-Adaptation (https://arxiv.org/abs/2301.07733), schedule-free AdamW
(https://arxiv.org/abs/2405.15682), DoG (https://arxiv.org/abs/2302.12022) and Mechanic
(https://arxiv.org/abs/2306.00144) at their frozen defaults, and the curvature lab's M-FAC
(https://arxiv.org/abs/2107.03356) at a frozen point (``OPTIMIZERS``), and AlgoPerf's scoring.
``run(workload, optimizer, *, seed, steps)`` yields one frozen :class:`RaceState` per evaluation.

>>> from core.optimizer_race import score
>>> score({"A": {"w1": 1.0, "w2": 1.0}, "B": {"w1": 2.0, "w2": float("inf")}})
{'A': 1.0, 'B': 0.3333333333333333}
"""

from core.optimizer_race.optimizers import OPTIMIZERS, RACE
from core.optimizer_race.race import RaceState, run
from core.optimizer_race.scoring import CLOCKS, performance_profile, score, time_to_target
from core.optimizer_race.studies import calibrate, load_race, race, race_times
from core.optimizer_race.workloads import TARGET_RECIPE, WORKLOADS

__all__ = [
    "CLOCKS",
    "OPTIMIZERS",
    "RACE",
    "TARGET_RECIPE",
    "WORKLOADS",
    "RaceState",
    "calibrate",
    "load_race",
    "performance_profile",
    "race",
    "race_times",
    "run",
    "score",
    "time_to_target",
]
