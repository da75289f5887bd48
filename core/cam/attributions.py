"""Other explanations from captum, for comparison with the CAMs: Occlusion, Integrated Gradients, SmoothGrad.

Each returns (N, H, W) maps scaled to [0, 1] like the CAMs: occlusion keeps the positive drop in the
target score, the gradient methods sum |attribution| over colour channels.
"""

from __future__ import annotations

import torch
from captum.attr import IntegratedGradients, NoiseTunnel, Occlusion, Saliency
from torch import nn

from core.cam.gradcam import check_inputs


def _scale(maps: torch.Tensor) -> torch.Tensor:
    flat = maps.flatten(1)
    lo, hi = flat.min(1).values[:, None, None], flat.max(1).values[:, None, None]
    return torch.where(hi > lo, (maps - lo) / torch.where(hi > lo, hi - lo, torch.ones_like(hi)), torch.zeros_like(maps))


def occlusion(model: nn.Module, x: torch.Tensor, target=None, window: int = 8, stride: int = 4) -> torch.Tensor:
    """Occlusion (Zeiler & Fergus): https://arxiv.org/abs/1311.2901 — the score drop when a grey-zero patch hides a region.

    Shapes: x (N, 3, H, W) → (N, H, W).

    >>> from core.cam.models import ShapesCNN
    >>> occlusion(ShapesCNN().eval(), torch.rand(1, 3, 32, 32), 0).shape
    torch.Size([1, 32, 32])
    """
    _, target = check_inputs(model, x, target)
    attr = Occlusion(model).attribute(x, target=target, sliding_window_shapes=(x.shape[1], window, window),
                                      strides=(x.shape[1], stride, stride), baselines=0.0)
    return _scale(attr.sum(1).clamp_min(0).detach())


def integrated_gradients(model: nn.Module, x: torch.Tensor, target=None, n_steps: int = 32) -> torch.Tensor:
    """Integrated Gradients (IG): https://arxiv.org/abs/1703.01365 — black baseline, Gauss–Legendre steps.

    Shapes: x (N, 3, H, W) → (N, H, W).
    """
    _, target = check_inputs(model, x, target)
    attr = IntegratedGradients(model).attribute(x, target=target, n_steps=n_steps, internal_batch_size=64)
    return _scale(attr.abs().sum(1).detach())


def smoothgrad(model: nn.Module, x: torch.Tensor, target=None, n_samples: int = 16, stdev: float = 0.15,
               seed: int = 0) -> torch.Tensor:
    """SmoothGrad: https://arxiv.org/abs/1706.03825 — |gradient| averaged over Gaussian-noised copies.

    captum draws its noise from the global RNG, so it runs inside a forked, seeded RNG state.

    Shapes: x (N, 3, H, W) → (N, H, W).
    """
    _, target = check_inputs(model, x, target)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        attr = NoiseTunnel(Saliency(model)).attribute(x, nt_type="smoothgrad", nt_samples=n_samples, stdevs=stdev,
                                                      target=target, nt_samples_batch_size=n_samples)
    return _scale(attr.sum(1).detach())


OTHER = {"Occlusion": occlusion, "Integrated Gradients": integrated_gradients, "SmoothGrad": smoothgrad}
