"""Other explanations, for comparison with the CAMs: Occlusion, Integrated Gradients (captum) and SmoothGrad.

Each returns (N, H, W) maps scaled to [0, 1] like the CAMs: occlusion keeps the positive drop in the
target score, the gradient methods sum |attribution| over colour channels. The model is only read.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from core.cam.gradcam import check_inputs, min_max
from core.errors import check_int, check_positive


def _captum() -> Any:
    """``captum.attr``, imported on first use: it costs ~1 CPU-s, and the CAM lab's first screen does not need it."""
    import captum.attr

    return captum.attr


def occlusion(model: nn.Module, inputs: torch.Tensor, target: Any, *, window: int = 8, stride: int = 4) -> torch.Tensor:
    """Occlusion (Zeiler & Fergus): https://arxiv.org/abs/1311.2901 — the score drop when a zero patch hides a region.

    Shapes: inputs (N, 3, H, W) → (N, H, W).

    >>> from core.cam.models import ShapesCNN
    >>> occlusion(ShapesCNN().eval(), torch.rand(1, 3, 32, 32), 0).shape
    torch.Size([1, 32, 32])
    """
    _, target = check_inputs(model, inputs, target)
    window = check_int("window", window, 1, min(inputs.shape[-2:]))
    stride = check_int("stride", stride, 1, window)
    c = inputs.shape[1]
    attr = (
        _captum()
        .Occlusion(model)
        .attribute(
            inputs, target=target, sliding_window_shapes=(c, window, window), strides=(c, stride, stride), baselines=0.0
        )
    )
    return min_max(attr.sum(1).clamp_min(0).detach())


def integrated_gradients(model: nn.Module, inputs: torch.Tensor, target: Any, *, steps: int = 32) -> torch.Tensor:
    """Integrated Gradients (IG): https://arxiv.org/abs/1703.01365 — black baseline, Gauss–Legendre steps.

    Shapes: inputs (N, 3, H, W) → (N, H, W).
    """
    _, target = check_inputs(model, inputs, target)
    steps = check_int("steps", steps, 1, 256)
    attr = _captum().IntegratedGradients(model).attribute(inputs, target=target, n_steps=steps, internal_batch_size=64)
    return min_max(attr.abs().sum(1).detach())


def smoothgrad(
    model: nn.Module,
    inputs: torch.Tensor,
    target: Any,
    *,
    n_samples: int = 16,
    stdev: float = 0.15,
    seed: int = 0,
) -> torch.Tensor:
    """SmoothGrad: https://arxiv.org/abs/1706.03825 — |∂y_c/∂x| averaged over Gaussian-noised copies of the images.

    The noise comes from a local generator seeded with ``seed`` (captum's ``NoiseTunnel`` draws from the
    global RNG, which threads share), drawn on the CPU so that every device sees the same noise.

    Shapes: inputs (N, 3, H, W) → (N, H, W).

    >>> from core.cam.models import ShapesCNN
    >>> smoothgrad(ShapesCNN().eval(), torch.rand(1, 3, 32, 32), 0, n_samples=2).shape
    torch.Size([1, 32, 32])
    """
    _, target = check_inputs(model, inputs, target)
    n_samples = check_int("n_samples", n_samples, 1, 256)
    stdev = check_positive("stdev", stdev, strict=False)
    gen = torch.Generator().manual_seed(int(seed))
    noise = torch.randn((n_samples, *inputs.shape), generator=gen, dtype=inputs.dtype).to(inputs.device)
    noisy = (inputs[None] + stdev * noise).flatten(0, 1).detach().requires_grad_()  # (S·N, C, H, W), sample-major
    grads = _captum().Saliency(model).attribute(noisy, target=target.repeat(n_samples), abs=True)
    return min_max(grads.view(n_samples, *inputs.shape).mean(0).sum(1).detach())


OTHER = {"Occlusion": occlusion, "Integrated Gradients": integrated_gradients, "SmoothGrad": smoothgrad}
