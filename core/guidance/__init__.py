"""Guidance lab: CFG, its parallel/orthogonal split (APG) and adaptive guidance, on diffusion models that run here."""

from .adaptive import AdaptiveGuidance
from .decompose import apg, cosine, decompose, norms
from .denoisers import (
    EmpiricalDigitsDenoiser,
    EpsilonDenoiser,
    GaussianMixtureDenoiser,
    MixtureDenoiser,
    digits_unet,
    karras_sigmas,
)
from .guiders import GUIDERS, GuiderConfig, check_fits, make_guider
from .metrics import (
    class_accuracy,
    mean_abs,
    mean_radius,
    mode_accuracy,
    mode_coverage,
    precision_recall,
    saturation,
)
from .pipeline import load_pipeline, pipeline_denoiser
from .sampler import GuidanceState, run, sample
from .sweep import balanced_labels, evaluate, reference_samples, sweep

__all__ = [
    "GUIDERS",
    "AdaptiveGuidance",
    "EmpiricalDigitsDenoiser",
    "EpsilonDenoiser",
    "GaussianMixtureDenoiser",
    "GuidanceState",
    "GuiderConfig",
    "MixtureDenoiser",
    "apg",
    "balanced_labels",
    "check_fits",
    "class_accuracy",
    "cosine",
    "decompose",
    "digits_unet",
    "evaluate",
    "karras_sigmas",
    "load_pipeline",
    "make_guider",
    "mean_abs",
    "mean_radius",
    "mode_accuracy",
    "mode_coverage",
    "norms",
    "pipeline_denoiser",
    "precision_recall",
    "reference_samples",
    "run",
    "sample",
    "saturation",
    "sweep",
]
