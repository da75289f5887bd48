"""Which explanation should I choose? (LFA): https://arxiv.org/abs/2206.01254

Han, Srinivas and Lakkaraju show that LIME, KernelSHAP, Occlusion, C-LIME, SmoothGrad, vanilla gradients,
integrated gradients and gradient × input all fit a linear model g(ξ) = wᵀξ to the black box, each on its own
neighbourhood of x₀ with its own loss (local function approximation, LFA). :data:`METHODS` lists them with the
captum call that computes each (``explain``), :func:`lfa` solves each LFA directly, :func:`faithfulness` and
:func:`loss_matrix` score any explanation on any neighbourhood (no method wins every column: no free lunch),
and :func:`agreement` / :func:`perturbation_test` compare explanations.
"""

from core.explanations.data import patch_features, tabular
from core.explanations.lfa import faithfulness, lfa
from core.explanations.methods import METHODS, QUESTIONS, explain, explain_all, lfa_all, loss_matrix
from core.explanations.metrics import agreement, perturbation_test
from core.explanations.neighbourhoods import NEIGHBOURHOODS, LFAConfig, neighbourhood_samples

__all__ = [
    "METHODS",
    "NEIGHBOURHOODS",
    "QUESTIONS",
    "LFAConfig",
    "agreement",
    "explain",
    "explain_all",
    "faithfulness",
    "lfa",
    "lfa_all",
    "loss_matrix",
    "neighbourhood_samples",
    "patch_features",
    "perturbation_test",
    "tabular",
]
