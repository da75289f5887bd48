"""Curvature: M-FAC inverse-Hessian products and gradient-regularized Newton with approximate Hessians.

M-FAC (Frantar, Kurtic, Alistarh): https://arxiv.org/abs/2107.03356 and Gradient-Normalized Smoothness
(GNS, Semenov, Jaggi, Doikov): https://arxiv.org/abs/2506.13710

>>> import torch
>>> problem = logistic_digits()
>>> last_f = [s.f for s in gns(problem, torch.zeros(problem.d, dtype=torch.float64), steps=8)][-1]
>>> round(last_f, 6)
0.225412
"""

from core.curvature.gns import GNSState, gns, gradient_descent
from core.curvature.mfac import MFAC, DynamicMFAC, StaticMFAC
from core.curvature.problems import Problem, logistic_digits, softmax_digits

__all__ = [
    "MFAC",
    "DynamicMFAC",
    "GNSState",
    "Problem",
    "StaticMFAC",
    "gns",
    "gradient_descent",
    "logistic_digits",
    "softmax_digits",
]
