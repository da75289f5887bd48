"""What the steering guiders share: the per-step input and output records, level conversions, CFG itself."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from core.errors import OptiscopeError, check_range

from ..decompose import cosine


@dataclass(frozen=True)
class StepInput:
    """What a guider sees at step ``i``: the sample ``x`` at ``levels[i]``, the target class of each sample."""

    denoiser: object
    x: torch.Tensor  # (N, *sample_shape)
    i: int
    levels: torch.Tensor
    target: torch.Tensor  # (N,)

    @property
    def level(self) -> float:
        return float(self.levels[self.i])

    def predict(self, x: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        with torch.no_grad():
            return self.denoiser.predict_x0(x, self.levels[self.i], labels)


@dataclass(frozen=True)
class Guided:
    """A guider's answer for one step; ``x`` is the sample the sampler steps from (moved by a projection)."""

    x: torch.Tensor
    x0_cond: torch.Tensor
    x0_uncond: torch.Tensor
    x0_guided: torch.Tensor
    scale: torch.Tensor  # (N,) the scale applied to each sample
    cosine: torch.Tensor  # (N,) the guider's direction against the oracle D_c − D_u
    model_evals: int  # model calls of this step (the method's, not telemetry)
    telemetry_evals: int = 0  # calls made only to show something (EluCD's oracle D_c)
    scores: torch.Tensor | None = None  # Dynamic CFG: (N, |S|, evaluators)
    residuals: tuple[float, ...] = ()  # CFG-MP: mean |G(z) − z| per inner iteration
    iterates: torch.Tensor | None = None  # CFG-MP: (K + 1, N, *sample_shape), the inner iterates in x coordinates


def edm_sigma(denoiser, level: float) -> float:
    """The EDM noise level σ of ``level``: σ itself, or √((1 − ᾱ)/ᾱ) for a DDIM timestep (x_t/√ᾱ = x0 + σ·ε)."""
    if denoiser.level_name == "σ":
        return float(level)
    a = alpha_bar(denoiser, level)
    return math.sqrt((1 - a) / a)


def alpha_bar(denoiser, level: float) -> float:
    """ᾱ of a DDIM timestep (1 past the last step, as ``set_alpha_to_one``)."""
    t = int(level)
    return float(denoiser.alphas_cumprod[t]) if t >= 0 else 1.0


def flow_map(denoiser, level: float) -> tuple[float, float]:
    r"""Flow time t and the factor that maps x to z = t·x0 + (1 − t)·n (the CFG-MP code's "D2F" map).

    EDM: t = 1/(1 + σ), z = t·x. VP (DDIM): α = √ᾱ, scale = 1/(α + √(1 − α²)), t = α·scale, z = scale·x_t.

    >>> from core.guidance import GaussianMixtureDenoiser
    >>> flow_map(GaussianMixtureDenoiser(), 1.0)
    (0.5, 0.5)
    """
    if denoiser.level_name == "σ":
        t = 1 / (1 + float(level))
        return t, t
    alpha = math.sqrt(alpha_bar(denoiser, level))
    scale = 1 / (alpha + math.sqrt(1 - alpha**2))
    return alpha * scale, scale


def next_flow_time(denoiser, levels: torch.Tensor, i: int) -> float:
    """Flow time after step ``i`` (1 = data at the end of the schedule)."""
    return flow_map(denoiser, float(levels[i + 1]))[0] if i + 1 < len(levels) else 1.0


def oracle_cosine(direction: torch.Tensor, x0_cond: torch.Tensor, x0_uncond: torch.Tensor) -> torch.Tensor:
    """cos(direction, D_c − D_u) per sample, float32; NaN where either is 0 (late steps: D_c = D_u exactly).

    >>> oracle_cosine(torch.tensor([[1.0, 0.0], [1.0, 0.0]]), torch.tensor([[1.0, 1.0], [0.0, 0.0]]), torch.zeros(2, 2))
    tensor([0.7071,    nan])
    """
    oracle = x0_cond - x0_uncond
    cos = cosine(direction.double(), oracle.double()).float()
    zero = (direction.reshape(len(direction), -1) == 0).all(1) | (oracle.reshape(len(oracle), -1) == 0).all(1)
    return torch.where(zero, torch.full_like(cos, math.nan), cos)


def check_scale(name: str, value: float) -> float:
    """A guidance scale: finite, in [0, 100] (beyond ~30 every sampler here overflows)."""
    return check_range(name, value, 0.0, 100.0)


@dataclass(frozen=True)
class CFG:
    r"""Classifier-free guidance (CFG): https://arxiv.org/abs/2207.12598 — the baseline, D̂ = D_u + w·(D_c − D_u).

    Args:
        w (`float`, defaults to `3.0`): the guidance scale (w = 1 is plain conditional sampling).
    """

    w: float = 3.0

    def __post_init__(self):
        check_scale("w", self.w)

    def check(self, denoiser) -> None:
        """Nothing beyond the sampler's own checks."""

    def calls(self, denoiser, levels: torch.Tensor, i: int) -> int:
        return 2

    def guide(self, s: StepInput) -> Guided:
        return cfg_step(s, s.x, torch.full((len(s.x),), self.w, dtype=s.x.dtype, device=s.x.device))


def combine(x0_cond: torch.Tensor, x0_uncond: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """D̂ = D_u + w·(D_c − D_u) with one w per sample (``scale``: (N,))."""
    w = scale.reshape(-1, *[1] * (x0_cond.dim() - 1)).to(x0_cond.dtype)
    return x0_uncond + w * (x0_cond - x0_uncond)


def guided(x, x0_cond, x0_uncond, scale: torch.Tensor, *, model_evals: int, **extra) -> Guided:
    """The record of a CFG-style step: the combination at ``scale``, its cosine to D_c − D_u unless given."""
    x0_guided = combine(x0_cond, x0_uncond, scale)
    extra.setdefault("cosine", oracle_cosine(x0_guided - x0_uncond, x0_cond, x0_uncond))
    return Guided(x, x0_cond, x0_uncond, x0_guided, scale, model_evals=model_evals, **extra)


def cfg_step(s: StepInput, x: torch.Tensor, scale: torch.Tensor, *, model_evals: int = 0, **extra) -> Guided:
    """CFG at ``x`` with a scale per sample: 2 more model calls on top of ``model_evals``."""
    x0_cond, x0_uncond = s.predict(x, s.target), s.predict(x, None)
    return guided(x, x0_cond, x0_uncond, scale, model_evals=model_evals + 2, **extra)


def require_guider(guider) -> None:
    if not all(hasattr(guider, name) for name in ("check", "calls", "guide")):
        raise OptiscopeError(
            f"Expected `guider` to be a steering guider (CFG, DynamicCFG, CFGMP, EluCD), but got {guider!r}"
        )
