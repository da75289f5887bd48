"""Transformers as Support Vector Machines (Att-SVM): https://arxiv.org/abs/2308.16898

Gradient descent on one softmax-attention layer selects one token per sequence, and the direction of its
weights converges to a max-margin SVM: Frobenius for W, nuclear norm for (K, Q). ``run`` is the GD process,
``analyze`` records a run against the SVMs, ``solve_svm`` solves them (CLARABEL).
"""

from core.attention_svm.analysis import Run, analyze, log10_gap, plane_geometry
from core.attention_svm.problem import Problem, from_arrays, make_problem, single_input_example
from core.attention_svm.svm import SVMCache, correlation, selection_kind, solve_svm, spectrum
from core.attention_svm.train import PARAMS, run

__all__ = [
    "PARAMS",
    "Problem",
    "Run",
    "SVMCache",
    "analyze",
    "correlation",
    "from_arrays",
    "log10_gap",
    "make_problem",
    "plane_geometry",
    "run",
    "selection_kind",
    "single_input_example",
    "solve_svm",
    "spectrum",
]
