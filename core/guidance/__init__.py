"""Guidance lab: classifier-free guidance split into parallel and orthogonal parts, APG and adaptive guidance.

Adaptive Projected Guidance (APG): https://arxiv.org/abs/2410.02416 — on diffusion models that run here
(an exact 2-D mixture, exact and trained 8×8 digits models, a local diffusers pipeline), driven through real
`diffusers.guiders`. Adaptive Guidance (AG, https://arxiv.org/abs/2312.12487) is a guider of its own.

    >>> import torch
    >>> from core.runs import last_state
    >>> D, target = GaussianMixtureDenoiser(), balanced_labels(8, 128)  # the modes sit at radius 2
    >>> last = last_state(run(D, target, guider=GuiderConfig("apg", w=15.0), steps=128))
    >>> round(evaluate(D, last.x, target)["mean_radius"], 1)
    2.0
"""

from .decompose import apg
from .denoisers import EmpiricalDigitsDenoiser, GaussianMixtureDenoiser, digits_unet
from .guiders import GUIDERS, GuiderConfig, make_guider
from .pipeline import load_pipeline
from .sampler import run
from .sweep import balanced_labels, evaluate, sweep
from .trace import trace

__all__ = [
    "GUIDERS",
    "AdaptiveGuidance",
    "EmpiricalDigitsDenoiser",
    "GaussianMixtureDenoiser",
    "GuiderConfig",
    "apg",
    "balanced_labels",
    "digits_unet",
    "evaluate",
    "load_pipeline",
    "make_guider",
    "run",
    "sweep",
    "trace",
]


def __getattr__(name: str):
    # AdaptiveGuidance subclasses a diffusers guider: importing it imports diffusers (see guiders._guiders)
    if name == "AdaptiveGuidance":
        from .adaptive import AdaptiveGuidance

        return AdaptiveGuidance
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
