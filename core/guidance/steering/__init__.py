"""Steering the sampler: three ways to apply guidance while sampling, on the guidance lab's denoisers.

- Dynamic CFG via online feedback (Dynamic CFG): https://arxiv.org/abs/2509.16131 — a scale per sample and
  step, picked from candidates by evaluators (`DynamicCFG`, `mixture_evaluators`, `digits_evaluators`).
- CFG with manifold projection (CFG-MP, CFG-MP+): https://arxiv.org/abs/2601.21892 — Picard or Anderson
  (m = 1) iterations before each noisy CFG step (`CFGMP`).
- Elucidating classifier-guided diffusion (EluCD): https://arxiv.org/abs/2310.11311 — an off-the-shelf
  classifier's calibrated gradient on x̂0 (`EluCD`, `toy_classifier`).

    >>> from core.guidance import GaussianMixtureDenoiser, balanced_labels
    >>> from core.runs import last_state
    >>> D = GaussianMixtureDenoiser(std=0.4)
    >>> last = last_state(run(D, balanced_labels(8, 64), guider=DynamicCFG(mixture_evaluators(D)), steps=32))
    >>> last.scale.min().item() >= 1.0, last.model_evals
    (True, 64)
"""

from .base import CFG
from .compare import compare, equal_nfe_cfg
from .dynamic import DynamicCFG, Evaluator
from .elucd import EluCD, directions
from .evaluators import digits_evaluators, judge_accuracy, mixture_evaluators, mixture_nll, toy_classifier
from .projection import CFGMP, solver_residuals
from .run import SteeringState, model_calls, run

__all__ = [
    "CFG",
    "CFGMP",
    "DynamicCFG",
    "EluCD",
    "Evaluator",
    "SteeringState",
    "compare",
    "digits_evaluators",
    "directions",
    "equal_nfe_cfg",
    "judge_accuracy",
    "mixture_evaluators",
    "mixture_nll",
    "model_calls",
    "run",
    "solver_residuals",
    "toy_classifier",
]
