"""EluCD: https://arxiv.org/abs/2310.11311 — classifier guidance by an off-the-shelf classifier, on the x̂0 prediction."""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field, replace

import torch
from torch import nn

from core.errors import OptiscopeError, check_choice, check_range

from .base import Guided, StepInput, alpha_bar, edm_sigma, oracle_cosine


def softplus_copy(classifier: nn.Module, beta: float) -> nn.Module:
    """A copy of ``classifier`` with every ``nn.ReLU`` replaced by ``nn.Softplus(beta)`` (the shared model is untouched).

    >>> net = softplus_copy(nn.Sequential(nn.Linear(2, 2), nn.ReLU()), 3.0)
    >>> net[1]
    Softplus(beta=3.0, threshold=20.0)
    """
    net = copy.deepcopy(classifier)
    for child in list(net.modules()):
        for attr, sub in list(child.named_children()):
            if isinstance(sub, nn.ReLU):
                setattr(child, attr, nn.Softplus(beta=beta))
    return net


def calibrated_gradient(
    classifier: nn.Module, inputs: torch.Tensor, target: torch.Tensor, *, tau1: float, tau2: float
) -> torch.Tensor:
    r"""g = ∇_u log[exp(τ1·ℓ_y(u)) / Σ_j exp(τ2·ℓ_j(u))], the paper's calibrated objective (ℓ: logits).

    The classifier is only called (its parameters get no gradient); ``inputs`` are detached first, so no
    gradient flows into the diffusion model (∂x̂0/∂x is ignored, as in the paper).
    """
    dtype = next(classifier.parameters()).dtype
    u = inputs.detach().to(dtype).requires_grad_(True)
    with torch.enable_grad():
        logits = classifier(u)
        objective = tau1 * logits.gather(1, target[:, None]).squeeze(1) - torch.logsumexp(tau2 * logits, dim=1)
        (grad,) = torch.autograd.grad(objective.sum(), u)
    return grad.to(inputs.dtype)


@dataclass(frozen=True)
class EluCD:
    r"""Elucidating the design space of classifier-guided diffusion (EluCD): https://arxiv.org/abs/2310.11311

    One unconditional model call per step, then D̃ = D_u + s_i·σ²/√(1 + σ²)·g with
    g = ∇ log[exp(τ1 ℓ_y)/Σ_j exp(τ2 ℓ_j)] taken on x̂0 = D_u (``on="x0"``, the paper) or on the noisy x
    (``on="xt"``, naive classifier guidance), and s_i = s·(1 + γ·sin(π i/N)) (the sin-shaped boost).
    σ is the EDM level (√((1−ᾱ)/ᾱ) for DDIM). With ``oracle`` the conditional D_c is also evaluated, for the
    cosine against the oracle direction D_c − D_u = σ²∇log p_σ(y|x) only: a telemetry call, not the method's.

    Args:
        classifier (`nn.Module`): logits of the data's classes from clean samples (N, *sample_shape) -> (N, C).
        scale (`float`, defaults to `0.1`): s.
        tau1, tau2 (`float`, default `1.0`): the calibration temperatures (the repo's default is τ2 = 0.5·τ1).
        boost (`float`, defaults to `0.3`): γ of the sin-shaped boost.
        softplus (`float`, defaults to `0.0`): β of the Softplus that replaces every ReLU (0 = keep ReLU; paper: 3).
        on (`str`, defaults to `"x0"`): ``"x0"`` or ``"xt"``.
        oracle (`bool`, defaults to `True`): also compute D_c for the cosine.
    """

    classifier: nn.Module
    scale: float = 0.1
    tau1: float = 1.0
    tau2: float = 1.0
    boost: float = 0.3
    softplus: float = 0.0
    on: str = "x0"
    oracle: bool = True
    net: nn.Module = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        if not isinstance(self.classifier, nn.Module) or not any(True for _ in self.classifier.parameters()):
            raise OptiscopeError(
                f"Expected `classifier` to be a torch module with parameters, but got {self.classifier!r}"
            )
        check_range("scale", self.scale, 0.0, 100.0)
        check_range("tau1", self.tau1, 0.0, 100.0)
        check_range("tau2", self.tau2, 0.0, 100.0)
        check_range("boost", self.boost, 0.0, 10.0)
        check_range("softplus", self.softplus, 0.0, 100.0)
        check_choice("on", self.on, ("x0", "xt"))
        net = softplus_copy(self.classifier, self.softplus) if self.softplus else self.classifier
        object.__setattr__(self, "net", net)

    def check(self, denoiser) -> None:
        """The classifier must take one sample of the denoiser's shape and give one logit per class."""
        x = torch.zeros((1, *denoiser.sample_shape), device=denoiser.device)
        try:
            with torch.no_grad():
                logits = self.net(x.to(next(self.net.parameters()).dtype))
        except RuntimeError as err:
            raise OptiscopeError(
                f"The classifier does not take samples of shape {tuple(denoiser.sample_shape)}: {err}"
            ) from None
        if tuple(logits.shape) != (1, denoiser.num_classes):
            raise OptiscopeError(
                f"Expected the classifier to give {denoiser.num_classes} logits per sample, but got shape "
                f"{tuple(logits.shape)} for one sample"
            )

    def calls(self, denoiser, levels: torch.Tensor, i: int) -> int:
        return 1

    def guide(self, s: StepInput) -> Guided:
        x0_uncond = s.predict(s.x, None)
        sigma = edm_sigma(s.denoiser, s.level)
        inputs = x0_uncond if self.on == "x0" else noisy_input(s)
        g = calibrated_gradient(self.net, inputs, s.target, tau1=self.tau1, tau2=self.tau2)
        boosted = self.scale * (1 + self.boost * math.sin(math.pi * s.i / (len(s.levels) - 1)))
        x0_guided = x0_uncond + boosted * sigma**2 / math.sqrt(1 + sigma**2) * g
        scale = torch.full((len(s.x),), boosted, device=s.x.device)
        if not self.oracle:
            nan = torch.full_like(x0_uncond, math.nan)
            return Guided(s.x, nan, x0_uncond, x0_guided, scale, torch.full_like(scale, math.nan), 1)
        x0_cond = s.predict(s.x, s.target)
        cos = oracle_cosine(x0_guided - x0_uncond, x0_cond, x0_uncond)
        return Guided(s.x, x0_cond, x0_uncond, x0_guided, scale, cos, 1, telemetry_evals=1)


def noisy_input(s: StepInput) -> torch.Tensor:
    """The noisy sample in EDM coordinates x0 + σ·n (x_t/√ᾱ for DDIM), what a naive classifier guide sees."""
    if s.denoiser.level_name == "σ":
        return s.x
    return s.x / math.sqrt(alpha_bar(s.denoiser, s.level))


def directions(guider: EluCD, denoiser, x: torch.Tensor, target: torch.Tensor, *, levels: torch.Tensor, i: int):
    """The guidance Δ added to D_u at step ``i`` by EluCD (on x̂0), the naive guide (on x_t), and the oracle D_c − D_u.

    Both classifier directions use ``guider``'s settings; the page draws them as arrows (3 model calls).
    """
    out = {}
    for label, on in (("EluCD on x̂0", "x0"), ("naive on x_t", "xt")):
        step = replace(guider, on=on, oracle=True).guide(StepInput(denoiser, x, i, levels, target))
        out[label] = step.x0_guided - step.x0_uncond
    return out | {"oracle D_c − D_u": step.x0_cond - step.x0_uncond}
