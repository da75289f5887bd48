"""Learning without end-to-end backprop: three papers, one lab.

- NoProp (Li, Teh, Pascanu): https://arxiv.org/abs/2503.24322 — ``noprop_run`` (NoProp-DT on digits, vs backprop).
- Learning with Boolean threshold functions (Elser, Lal): https://arxiv.org/abs/2602.17493 — ``rrr_run``.
- From gradient descent to neural adaptation (García Fernández, Ahmad, van Gerven): https://arxiv.org/abs/2510.18812
  — ``estimate`` (weight perturbation, antithetic ES, SPSA, forward gradient), ``node_perturbation``, ``theory``.
"""

from core.learning_rules.noprop import METHODS, schedule
from core.learning_rules.noprop import run as noprop_run
from core.learning_rules.perturbation import (
    ESTIMATORS,
    error_vs_dimension,
    estimate,
    mlp_loss,
    node_perturbation,
    theory,
)
from core.learning_rules.rrr import margin_project
from core.learning_rules.rrr import run as rrr_run

__all__ = [
    "ESTIMATORS",
    "METHODS",
    "error_vs_dimension",
    "estimate",
    "margin_project",
    "mlp_loss",
    "node_perturbation",
    "noprop_run",
    "rrr_run",
    "schedule",
    "theory",
]
