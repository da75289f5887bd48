"""Transformers as Support Vector Machines (Att-SVM): https://arxiv.org/abs/2308.16898."""

from .analysis import Run, run, solve_both
from .problem import EXAMPLES, Problem, from_arrays, make_problem, single_input_example
from .svm import (
    NORMS,
    correlation,
    is_locally_optimal,
    margins,
    normalized_margin,
    optimal_tokens,
    rank,
    selection_kind,
    solve_svm,
)
from .train import EPS, PARAMS, TrainState, train, train_batch

__all__ = [
    "EPS",
    "EXAMPLES",
    "NORMS",
    "PARAMS",
    "Problem",
    "Run",
    "TrainState",
    "correlation",
    "from_arrays",
    "is_locally_optimal",
    "make_problem",
    "margins",
    "normalized_margin",
    "optimal_tokens",
    "rank",
    "run",
    "selection_kind",
    "single_input_example",
    "solve_both",
    "solve_svm",
    "train",
    "train_batch",
]
