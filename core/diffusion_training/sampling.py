"""Few-step samplers of the lab: deterministic EDM Euler (= DDIM in VE form) on a σ grid, any x0 predictor.

EDM: https://arxiv.org/abs/2206.00364; classifier-free guidance (CFG): https://arxiv.org/abs/2207.12598.

A predictor is ``predict(x, sigma) -> x0`` with the labels (and w) already bound, so the same loop samples the
exact teacher with classifier-free guidance (2 model calls per step), a w-conditioned student (1 call per
step), or CFG with a Self-NPO negative model as its unconditional branch.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from core.errors import OptiscopeError
from core.guidance.denoisers import SIGMA_MAX, karras_sigmas

Predict = Callable[[torch.Tensor, float], torch.Tensor]


def grid(steps: int) -> torch.Tensor:
    """The Karras grid σ_0 = 20 > … > σ_{steps−1} = 0.002 > σ_steps = 0, shape (steps + 1,), float64 on the CPU."""
    return karras_sigmas(steps)


def start_noise(n: int, seed: int, device: torch.device, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """x_T = σ_max·N(0, I), drawn on the CPU so that one seed gives one start on every device."""
    noise = torch.randn((n, 2), generator=torch.Generator().manual_seed(int(seed)), dtype=torch.float64)
    return (SIGMA_MAX * noise).to(device=device, dtype=dtype)


@torch.no_grad()
def euler(predict: Predict, x: torch.Tensor, sigmas: torch.Tensor) -> torch.Tensor:
    """x ← x0 + (σ'/σ)(x − x0) from σ to σ' for each pair of ``sigmas`` (the last may be 0)."""
    for sigma, sigma_next in zip(sigmas[:-1].tolist(), sigmas[1:].tolist(), strict=True):
        x0 = predict(x, sigma)
        x = x0 + (sigma_next / sigma) * (x - x0)
    return x


def exact_cfg(mixture, labels: torch.Tensor, w: float) -> Predict:
    """Classifier-free guidance (CFG) on the exact mixture denoiser: D_u + w(D_c − D_u), 2 model calls."""

    def predict(x: torch.Tensor, sigma: float) -> torch.Tensor:
        x64 = x.double()
        d_c, d_u = mixture.predict_x0(x64, sigma, labels), mixture.predict_x0(x64, sigma, None)
        return (d_u + w * (d_c - d_u)).to(x.dtype)

    return predict


def student(model: nn.Module, labels: torch.Tensor, w: float) -> Predict:
    """A w-conditioned student: the guided prediction in one call."""
    return lambda x, sigma: model(x, sigma, labels, w)


def model_cfg(model: nn.Module, labels: torch.Tensor, w: float, negative: nn.Module | None = None) -> Predict:
    """CFG of a plain denoiser: D_neg(x, σ, ∅) + w(D(x, σ, y) − D_neg(x, σ, ∅)), D_neg = ``negative`` or the model.

    With a Self-NPO ``negative`` this is the paper's inference rule; without, it is plain CFG.
    """
    null = torch.full_like(labels, model.num_classes)
    negative = model if negative is None else negative

    def predict(x: torch.Tensor, sigma: float) -> torch.Tensor:
        d_neg = negative(x, sigma, null)
        return d_neg + w * (model(x, sigma, labels) - d_neg)

    return predict


def scores(x: torch.Tensor, mixture, labels: torch.Tensor) -> dict[str, float]:
    """The toy's sample scores: mean radius, precision (share within 3 std of the nearest mode) and accuracy.

    >>> from core.guidance import GaussianMixtureDenoiser
    >>> scores(torch.tensor([[2.0, 0.0], [0.0, 0.0]]), GaussianMixtureDenoiser(), torch.tensor([0, 1]))
    {'radius': 1.0, 'precision': 0.5, 'accuracy': 0.5}
    """
    if x.ndim != 2 or x.shape[1] != 2 or labels.shape != (len(x),) or not len(x):
        raise OptiscopeError(
            f"Expected `x` of shape (N, 2) and `labels` of shape (N,), but got {tuple(x.shape)} and {tuple(labels.shape)}"
        )
    if not torch.isfinite(x).all():
        raise OptiscopeError("Expected finite samples `x`, but got NaN or inf")
    dist = torch.cdist(x.double(), mixture.means)  # (N, M)
    nearest = dist.min(dim=1)
    return {
        "radius": x.double().norm(dim=1).mean().item(),
        "precision": (nearest.values <= 3 * mixture.std).double().mean().item(),
        "accuracy": (mixture.classes[nearest.indices] == labels).double().mean().item(),
    }
