"""The guiders on the page, built from the paper's scale w as real `diffusers.guiders` instances."""

from __future__ import annotations

import math
from dataclasses import dataclass

from diffusers.guiders import (
    AdaptiveProjectedGuidance,
    AdaptiveProjectedMixGuidance,
    ClassifierFreeGuidance,
    ClassifierFreeZeroStarGuidance,
    FrequencyDecoupledGuidance,
    TangentialClassifierFreeGuidance,
)
from diffusers.guiders.guider_utils import BaseGuidance
from diffusers.utils import logging as diffusers_logging

from .adaptive import AdaptiveGuidance

# every BaseGuidance() logs "Guiders are currently an experimental feature"; the page builds many
diffusers_logging.get_logger("diffusers.guiders.guider_utils").setLevel(diffusers_logging.ERROR)


@dataclass(frozen=True)
class GuiderConfig:
    """One flat config for every guider on the page, in the paper's convention D̂ = D_c + (w−1)·update."""

    name: str = "apg"  # a key of GUIDERS
    w: float = 7.5  # the paper's guidance scale; w = 1 is plain conditional sampling
    eta: float = 0.0  # APG: weight of the parallel part (η = 1, r = 0, β = 0 is CFG)
    rescale: float = 0.0  # APG: norm cap r on Δ (0 = off); ≈ 2 suits the 8×8 x0 space
    momentum: float = 0.0  # APG: reverse momentum β ∈ (−1, 1), negative in the paper
    guidance_rescale: float = 0.7  # CFG-rescale: φ of Lin et al. (used by "cfg-rescale" only)
    gamma: float = 0.999  # adaptive guidance: the cosine threshold γ̄
    warmup_steps: int = 5  # adaptive guidance: steps that always use CFG

    def __post_init__(self):
        if self.name not in GUIDERS:
            raise ValueError(f"Expected `name` to be one of {sorted(GUIDERS)}, but got {self.name!r}.")
        checks = [
            (self.w >= 0 and math.isfinite(self.w), f"Expected `w` >= 0, but got {self.w}."),
            (self.rescale >= 0, f"Expected `rescale` (r) >= 0, but got {self.rescale}."),
            (-1 < self.momentum < 1, f"Expected `momentum` (β) in (-1, 1), but got {self.momentum}."),
            (math.isfinite(self.eta), f"Expected a finite `eta`, but got {self.eta}."),
            (
                0 <= self.guidance_rescale <= 1,
                f"Expected `guidance_rescale` in [0, 1], but got {self.guidance_rescale}.",
            ),
            (self.warmup_steps >= 1, f"Expected `warmup_steps` >= 1, but got {self.warmup_steps}."),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)


def _cfg(c: GuiderConfig) -> BaseGuidance:
    return ClassifierFreeGuidance(guidance_scale=c.w - 1, use_original_formulation=True)


def _cfg_rescale(c: GuiderConfig) -> BaseGuidance:
    return ClassifierFreeGuidance(
        guidance_scale=c.w - 1, guidance_rescale=c.guidance_rescale, use_original_formulation=True
    )


def _apg(c: GuiderConfig) -> BaseGuidance:
    # use_original_formulation=True with scale w−1 is the paper; the default (D_u + s·upd) drops η's cond part
    return AdaptiveProjectedGuidance(
        guidance_scale=c.w - 1,
        eta=c.eta,
        adaptive_projected_guidance_rescale=c.rescale,
        adaptive_projected_guidance_momentum=c.momentum or None,
        use_original_formulation=True,
    )


def _apg_mix(c: GuiderConfig) -> BaseGuidance:
    return AdaptiveProjectedMixGuidance(
        guidance_scale=c.w - 1,
        adaptive_projected_guidance_scale=c.w - 1,
        adaptive_projected_guidance_momentum=c.momentum or None,
        adaptive_projected_guidance_rescale=c.rescale,
        eta=c.eta,
        use_original_formulation=True,
    )


def _tcfg(c: GuiderConfig) -> BaseGuidance:
    return TangentialClassifierFreeGuidance(guidance_scale=c.w - 1, use_original_formulation=True)


def _zero_star(c: GuiderConfig) -> BaseGuidance:
    return ClassifierFreeZeroStarGuidance(guidance_scale=c.w - 1, zero_init_steps=1, use_original_formulation=True)


def _adaptive(c: GuiderConfig) -> BaseGuidance:
    return AdaptiveGuidance(
        guidance_scale=c.w - 1, gamma=c.gamma, warmup_steps=c.warmup_steps, use_original_formulation=True
    )


# key -> (label, builder); the keys feed the page's selectbox
GUIDERS = {
    "cfg": ("CFG", _cfg),
    "apg": ("APG (adaptive projected guidance)", _apg),
    "cfg-rescale": ("CFG + guidance rescale φ", _cfg_rescale),
    "tcfg": ("Tangential CFG", _tcfg),
    "cfg-zero-star": ("CFG-Zero*", _zero_star),
    "apg-mix": ("APG-Mix (CFG for 5 steps, then APG)", _apg_mix),
    "adaptive": ("Adaptive guidance (AG)", _adaptive),
}


def make_guider(name: str = "apg", **kwargs) -> BaseGuidance:
    """A fresh diffusers guider from the paper's w (see `GuiderConfig` for the keywords).

    >>> g = make_guider("apg", w=15, rescale=2.0, momentum=-0.5)
    >>> type(g).__name__, g.guidance_scale, g.use_original_formulation
    ('AdaptiveProjectedGuidance', 14, True)
    """
    config = GuiderConfig(name=name, **kwargs)
    return GUIDERS[config.name][1](config)


def check_fits(guider: BaseGuidance, sample_ndim: int) -> None:
    """Raise ValueError when ``guider`` needs more than a conditional and an unconditional prediction.

    PAG, SkipLayer, SmoothedEnergy and AutoGuidance hook transformer blocks; frequency-decoupled guidance
    needs images (N, C, H, W).
    """
    if not isinstance(guider, BaseGuidance):
        raise ValueError(f"Expected a `diffusers.guiders` instance, but got {type(guider).__name__}.")
    needs = list(guider._input_predictions)
    if needs != ["pred_cond", "pred_uncond"] or type(guider).__name__ == "AutoGuidance":
        raise ValueError(
            f"{type(guider).__name__} does not fit this model: it needs {needs} and hooks into transformer layers; "
            "use a guider that combines a conditional and an unconditional prediction (CFG, APG, ...)."
        )
    if isinstance(guider, FrequencyDecoupledGuidance) and sample_ndim != 3:
        raise ValueError(
            "FrequencyDecoupledGuidance needs image samples (C, H, W); this model's samples are not images."
        )
