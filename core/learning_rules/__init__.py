"""Learning without end-to-end backprop: three papers, one lab.

- NoProp (Li, Teh, Pascanu): https://arxiv.org/abs/2503.24322 — ``noprop_run`` (NoProp-DT on digits, vs backprop).
- Learning with Boolean threshold functions (Elser, Lal): https://arxiv.org/abs/2602.17493 — ``rrr_run`` on the
  ``BOOLEAN_TASKS``, ``read_gates`` (a solved net as logic gates).
- From gradient descent to neural adaptation (García Fernández, Ahmad, van Gerven): https://arxiv.org/abs/2510.18812
  — ``estimate`` (weight perturbation, antithetic ES, SPSA, forward gradient), ``node_perturbation``, ``theory``,
  and ``rules_run`` (an MLP on digits trained by each rule against backprop).
"""

from core.learning_rules.gates import BOOLEAN_TASKS, boolean_task, read_gates
from core.learning_rules.noprop import run as noprop_run
from core.learning_rules.noprop import schedule
from core.learning_rules.perturbation import error_vs_dimension, estimate, node_perturbation, theory
from core.learning_rules.rrr import margin_project
from core.learning_rules.rrr import run as rrr_run
from core.learning_rules.training import RULES, RuleConfig
from core.learning_rules.training import run as rules_run

__all__ = [
    "BOOLEAN_TASKS",
    "RULES",
    "RuleConfig",
    "boolean_task",
    "error_vs_dimension",
    "estimate",
    "margin_project",
    "node_perturbation",
    "noprop_run",
    "read_gates",
    "rrr_run",
    "rules_run",
    "schedule",
    "theory",
]
