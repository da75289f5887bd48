"""The guiders on the page, built from the paper's scale w as real `diffusers.guiders` instances."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from types import ModuleType
from typing import TYPE_CHECKING

from core.errors import OptiscopeError, check_choice, check_int, check_positive, check_range

if TYPE_CHECKING:
    from diffusers.guiders.guider_utils import BaseGuidance


@cache
def _guiders() -> ModuleType:
    """`diffusers.guiders`, imported on first use: it imports torch._dynamo (~3 CPU-s), which a shipped first
    screen never needs."""
    from diffusers import guiders
    from diffusers.utils import logging as diffusers_logging

    # every BaseGuidance() logs "Guiders are currently an experimental feature"; the page builds many
    diffusers_logging.get_logger("diffusers.guiders.guider_utils").setLevel(diffusers_logging.ERROR)
    return guiders


@dataclass(frozen=True)
class GuiderConfig:
    """One flat config for every guider on the page, in the paper's convention D̂ = D_c + (w−1)·update.

    >>> GuiderConfig("apg", w=15.0, rescale=2.0).rescale
    2.0
    >>> GuiderConfig("apg", momentum=1.0)
    Traceback (most recent call last):
    core.errors.OptiscopeError: Expected `momentum` between -0.99 and 0.99, but got 1.0
    """

    name: str = "apg"  # a key of GUIDERS
    w: float = 7.5  # the paper's guidance scale; w = 1 is plain conditional sampling
    eta: float = 0.0  # APG: weight of the parallel part (η = 1, r = 0, β = 0 is CFG)
    rescale: float = 0.0  # APG: norm cap r on Δ (0 = off); ≈ 2 suits the 8×8 x0 space
    momentum: float = 0.0  # APG: reverse momentum β, negative in the paper; |β| < 1 keeps the buffer bounded
    guidance_rescale: float = 0.7  # CFG-rescale: φ of Lin et al. (used by "cfg-rescale" only)
    gamma: float = 0.999  # adaptive guidance: the cosine threshold γ̄ (> 1 never truncates)
    warmup_steps: int = 5  # adaptive guidance: steps that always use CFG

    def __post_init__(self):
        check_choice("name", self.name, GUIDERS)
        check_range("w", self.w, 0.0, 100.0)  # beyond ~30 every sampler here overflows
        check_range("eta", self.eta, -10.0, 10.0)
        check_positive("rescale", self.rescale, strict=False)
        check_range("momentum", self.momentum, -0.99, 0.99)
        check_range("guidance_rescale", self.guidance_rescale, 0.0, 1.0)
        check_range("gamma", self.gamma, -1.0, 2.0)
        check_int("warmup_steps", self.warmup_steps, 1, 1000)


def _cfg(c: GuiderConfig) -> BaseGuidance:
    return _guiders().ClassifierFreeGuidance(guidance_scale=c.w - 1, use_original_formulation=True)


def _cfg_rescale(c: GuiderConfig) -> BaseGuidance:
    return _guiders().ClassifierFreeGuidance(
        guidance_scale=c.w - 1, guidance_rescale=c.guidance_rescale, use_original_formulation=True
    )


def _apg(c: GuiderConfig) -> BaseGuidance:
    # use_original_formulation=True with scale w−1 is the paper; the default (D_u + s·upd) drops η's cond part
    return _guiders().AdaptiveProjectedGuidance(
        guidance_scale=c.w - 1,
        eta=c.eta,
        adaptive_projected_guidance_rescale=c.rescale,
        adaptive_projected_guidance_momentum=c.momentum or None,
        use_original_formulation=True,
    )


def _apg_mix(c: GuiderConfig) -> BaseGuidance:
    return _guiders().AdaptiveProjectedMixGuidance(
        guidance_scale=c.w - 1,
        adaptive_projected_guidance_scale=c.w - 1,
        adaptive_projected_guidance_momentum=c.momentum or None,
        adaptive_projected_guidance_rescale=c.rescale,
        eta=c.eta,
        use_original_formulation=True,
    )


def _tcfg(c: GuiderConfig) -> BaseGuidance:
    return _guiders().TangentialClassifierFreeGuidance(guidance_scale=c.w - 1, use_original_formulation=True)


def _zero_star(c: GuiderConfig) -> BaseGuidance:
    return _guiders().ClassifierFreeZeroStarGuidance(
        guidance_scale=c.w - 1, zero_init_steps=1, use_original_formulation=True
    )


def _adaptive(c: GuiderConfig) -> BaseGuidance:
    from .adaptive import AdaptiveGuidance

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


def make_guider(config: GuiderConfig) -> BaseGuidance:
    """A fresh diffusers guider built from ``config`` (the paper's w becomes ``guidance_scale = w − 1``).

    >>> g = make_guider(GuiderConfig("apg", w=15, rescale=2.0, momentum=-0.5))
    >>> type(g).__name__, g.guidance_scale, g.use_original_formulation
    ('AdaptiveProjectedGuidance', 14, True)
    """
    if not isinstance(config, GuiderConfig):
        raise OptiscopeError(f"Expected `config` to be a GuiderConfig, but got {type(config).__name__}")
    return GUIDERS[config.name][1](config)


def check_fits(guider: BaseGuidance, sample_ndim: int) -> None:
    """Raise OptiscopeError when ``guider`` needs more than a conditional and an unconditional prediction.

    PAG, SkipLayer, SmoothedEnergy and AutoGuidance hook transformer blocks; frequency-decoupled guidance
    needs images (N, C, H, W).
    """
    if not isinstance(guider, _guiders().BaseGuidance):
        raise OptiscopeError(f"Expected `guider` to be a GuiderConfig or a diffusers guider, but got {guider!r}")
    needs = list(guider._input_predictions)
    if needs != ["pred_cond", "pred_uncond"] or type(guider).__name__ == "AutoGuidance":
        raise OptiscopeError(
            f"{type(guider).__name__} does not fit this model: it needs {needs} and hooks into transformer layers; "
            "use a guider that combines a conditional and an unconditional prediction (CFG, APG, ...)."
        )
    if isinstance(guider, _guiders().FrequencyDecoupledGuidance) and sample_ndim != 3:
        raise OptiscopeError(
            "FrequencyDecoupledGuidance needs image samples (C, H, W); this model's samples are not images."
        )
