"""Bilevel optimization. Implicit differentiation (custom_root): https://arxiv.org/abs/2105.15183

Also LV-HBA (https://arxiv.org/abs/2401.16164) for constrained lower levels and BO-REP
(https://arxiv.org/abs/2401.09587) for upper levels of unbounded smoothness.
"""

from core.bilevel.borep import (
    BOREPConfig,
    BOREPState,
    BOREPTrace,
    UnboundedBilevel,
    WallProgress,
    bo_rep,
    first_below,
    quartic_toy,
    step_size_wall,
    trace,
)
from core.bilevel.distill import DistillState, distill
from core.bilevel.implicit import RootSpec, custom_root, root_vjp, unrolled
from core.bilevel.linear_solve import SOLVERS, LinearSolve
from core.bilevel.lvhba import ConstrainedBilevel, LVHBAConfig, LVHBAState, coupled_toy, lv_hba
from core.bilevel.tuning import (
    METHODS,
    TASKS,
    HypergradientErrors,
    closed_form_hypergradient,
    hypergradient,
    hypergradient_errors,
    load_task,
    validation_curve,
)

__all__ = [
    "METHODS",
    "SOLVERS",
    "TASKS",
    "BOREPConfig",
    "BOREPState",
    "BOREPTrace",
    "ConstrainedBilevel",
    "DistillState",
    "HypergradientErrors",
    "LVHBAConfig",
    "LVHBAState",
    "LinearSolve",
    "RootSpec",
    "UnboundedBilevel",
    "WallProgress",
    "bo_rep",
    "closed_form_hypergradient",
    "coupled_toy",
    "custom_root",
    "distill",
    "first_below",
    "hypergradient",
    "hypergradient_errors",
    "load_task",
    "lv_hba",
    "quartic_toy",
    "root_vjp",
    "step_size_wall",
    "trace",
    "unrolled",
    "validation_curve",
]
