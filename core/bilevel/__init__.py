"""Bilevel optimization. Implicit differentiation (custom_root): https://arxiv.org/abs/2105.15183

Also LV-HBA (https://arxiv.org/abs/2401.16164) for constrained lower levels and BO-REP
(https://arxiv.org/abs/2401.09587) for upper levels of unbounded smoothness. The linear solvers of the
implicit system are listed in ``RootSpec.SOLVERS``.
"""

from core.bilevel.borep import BOREPConfig, bo_rep, quartic_toy
from core.bilevel.distill import distill
from core.bilevel.implicit import RootSpec, custom_root, unrolled
from core.bilevel.lvhba import LVHBAConfig, coupled_toy, lv_hba
from core.bilevel.tuning import TASKS, hypergradient_errors, load_task, validation_curve
from core.bilevel.wall import step_size_wall

__all__ = [
    "TASKS",
    "BOREPConfig",
    "LVHBAConfig",
    "RootSpec",
    "bo_rep",
    "coupled_toy",
    "custom_root",
    "distill",
    "hypergradient_errors",
    "load_task",
    "lv_hba",
    "quartic_toy",
    "step_size_wall",
    "unrolled",
    "validation_curve",
]
