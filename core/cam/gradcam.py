"""The Grad-CAM family at one layer: Grad-CAM, Grad-CAM++ and Score-CAM, plus the shared plumbing.

Every public function returns maps of shape (N, H, W) at the input size: the layer-resolution map is
ReLU'd, upsampled bilinearly (``align_corners=False``, as captum's ``LayerAttribution.interpolate``)
and min-max scaled per image to [0, 1] (a constant map becomes all zeros, never NaN).

Run the model in eval mode: in train mode BatchNorm mixes the images of a batch and changes the maps.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn


def resolve_layer(model: nn.Module, layer: str | nn.Module | None) -> nn.Module:
    """The module ``layer`` names (a dotted name, the module itself, or None for ``model.cam_layer``)."""
    if layer is None:
        layer = getattr(model, "cam_layer", None)
        if layer is None:
            raise ValueError("Expected a `layer` (the model has no `cam_layer` attribute to default to).")
    if isinstance(layer, nn.Module):
        if not any(m is layer for m in model.modules()):
            raise ValueError(f"The layer {type(layer).__name__} is not a submodule of the model.")
        return layer
    try:
        return model.get_submodule(str(layer))
    except AttributeError:
        choices = [name for name, _ in model.named_children()]
        raise ValueError(f"Unknown layer `{layer}`; expected one of {choices}.") from None


def check_images(x: torch.Tensor) -> None:
    """Raise ``ValueError`` unless ``x`` is a finite (N, C, H, W) batch."""
    if not isinstance(x, torch.Tensor) or x.ndim != 4:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"Expected images of shape (N, C, H, W), but got {shape}.")
    if not torch.isfinite(x).all():
        raise ValueError("The images contain NaN or infinite values.")


def check_target(target, logits: torch.Tensor) -> torch.Tensor:
    """Targets as an (N,) long tensor (None → the predicted classes), range-checked against ``logits`` (N, C)."""
    n, n_classes = logits.shape
    if target is None:
        return logits.detach().argmax(1)
    target = torch.as_tensor(target, dtype=torch.long).reshape(-1)
    if target.numel() == 1:
        target = target.expand(n)
    if target.numel() != n:
        raise ValueError(f"Expected one target per image ({n}), but got {target.numel()}.")
    bad = target[(target < 0) | (target >= n_classes)]
    if bad.numel():
        raise ValueError(f"Class index {int(bad[0])} is out of range; the model has {n_classes} classes (0–{n_classes - 1}).")
    return target.clone()


def check_inputs(model: nn.Module, x: torch.Tensor, target) -> tuple[torch.Tensor, torch.Tensor]:
    """Validate a batch and its targets with one forward pass; returns ``(logits, targets)``."""
    check_images(x)
    with torch.no_grad():
        logits = model(x)
    return logits, check_target(target, logits)


def layer_forward(
    model: nn.Module, layer: str | nn.Module | None, x: torch.Tensor, target, *, gradients: bool = True
) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor, torch.Tensor]:
    """One forward (and backward) pass capturing the layer's output and the target logit's gradient.

    Returns ``(activations, gradients, logits, targets)``; activations and gradients are (N, K, h, w).
    """
    module = resolve_layer(model, layer)
    check_images(x)
    captured: list[torch.Tensor] = []

    def hook(_module, _inputs, output):
        captured.append(output)

    handle = module.register_forward_hook(hook)
    try:
        with torch.set_grad_enabled(gradients):
            logits = model(x)
            if not captured or not isinstance(captured[-1], torch.Tensor) or captured[-1].ndim != 4:
                shape = tuple(captured[-1].shape) if captured and isinstance(captured[-1], torch.Tensor) else None
                raise ValueError(
                    f"Layer {type(module).__name__} outputs shape {shape}; a CAM needs a convolutional layer "
                    "with an (N, K, h, w) output."
                )
            acts = captured[-1]
            target = check_target(target, logits)
            grads = None
            if gradients:
                if not acts.requires_grad:
                    raise ValueError("The layer's output does not depend on trainable weights; pick a deeper layer.")
                score = logits.gather(1, target[:, None]).sum()  # images are independent in eval mode
                (grads,) = torch.autograd.grad(score, acts)
                grads = grads.detach()
    finally:
        handle.remove()
    return acts.detach(), grads, logits.detach(), target


def upsample_normalize(cam: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """ReLU, bilinear upsampling to ``size`` and per-map min-max scaling to [0, 1]. cam: (N, h, w) → (N, H, W)."""
    cam = F.relu(cam)[:, None]
    cam = F.interpolate(cam, size=tuple(size), mode="bilinear", align_corners=False)[:, 0]
    flat = cam.flatten(1)
    lo, hi = flat.min(1).values, flat.max(1).values
    span = (hi - lo)[:, None, None]
    out = (cam - lo[:, None, None]) / torch.where(span > 0, span, torch.ones_like(span))
    return torch.where(span > 0, out, torch.zeros_like(out))


def grad_cam(model: nn.Module, layer: str | nn.Module | None, x: torch.Tensor, target=None) -> torch.Tensor:
    """Gradient-weighted Class Activation Mapping (Grad-CAM): https://arxiv.org/abs/1610.02391

    α_k = mean over (i, j) of ∂y_c/∂A_k, map = ReLU(Σ_k α_k A_k).

    Args:
        model (`nn.Module`): a classifier in eval mode returning logits (N, C).
        layer (`str | nn.Module | None`): the CAM layer (name or module); None uses ``model.cam_layer``.
        x (`torch.Tensor`): images.
        target (`int | sequence | None`, defaults to `None`): class per image; None takes the prediction.

    Shapes:
        x: (N, 3, H, W) → maps: (N, H, W) in [0, 1]

    >>> from core.cam.models import ShapesCNN
    >>> grad_cam(ShapesCNN().eval(), "block3", torch.rand(2, 3, 32, 32), 1).shape
    torch.Size([2, 32, 32])
    """
    acts, grads, _, _ = layer_forward(model, layer, x, target)
    weights = grads.mean(dim=(2, 3), keepdim=True)  # (N, K, 1, 1)
    return upsample_normalize((weights * acts).sum(1), x.shape[-2:])


def grad_cam_pp(model: nn.Module, layer: str | nn.Module | None, x: torch.Tensor, target=None) -> torch.Tensor:
    """Grad-CAM++: https://arxiv.org/abs/1710.11063

    Pixel-wise weights a_ij = g² / (2g² + Σ_ab A_ab · g³) (the exp-score closed form, as pytorch-grad-cam),
    α_k = Σ_ij a_ij ReLU(g_ij), map = ReLU(Σ_k α_k A_k).

    Args:
        model, layer, x, target: as in ``grad_cam``.

    Shapes:
        x: (N, 3, H, W) → maps: (N, H, W) in [0, 1]

    >>> from core.cam.models import ShapesCNN
    >>> grad_cam_pp(ShapesCNN().eval(), "block4", torch.rand(1, 3, 64, 64), 0).shape
    torch.Size([1, 64, 64])
    """
    acts, grads, _, _ = layer_forward(model, layer, x, target)
    g2, g3 = grads.pow(2), grads.pow(3)
    denom = 2 * g2 + acts.sum(dim=(2, 3), keepdim=True) * g3
    aij = g2 / torch.where(denom != 0, denom, torch.ones_like(denom))
    aij = torch.where(grads != 0, aij, torch.zeros_like(aij))
    weights = (aij * F.relu(grads)).sum(dim=(2, 3), keepdim=True)  # (N, K, 1, 1)
    return upsample_normalize((weights * acts).sum(1), x.shape[-2:])


def score_cam(
    model: nn.Module, layer: str | nn.Module | None, x: torch.Tensor, target=None, *, batch_size: int = 64
) -> torch.Tensor:
    """Score-weighted Class Activation Mapping (Score-CAM): https://arxiv.org/abs/1910.01279

    Each channel, upsampled and min-max scaled to [0, 1], masks the image; the target logit of each masked
    image, softmaxed over channels, weighs the channel (as pytorch-grad-cam). One forward pass per channel,
    ``batch_size`` channels at a time.

    Args:
        model, layer, x, target: as in ``grad_cam``.
        batch_size (`int`, defaults to `64`): masked images per forward pass.

    Shapes:
        x: (N, 3, H, W) → maps: (N, H, W) in [0, 1]

    >>> from core.cam.models import ShapesCNN
    >>> score_cam(ShapesCNN().eval(), "block4", torch.rand(1, 3, 32, 32), 2).shape
    torch.Size([1, 32, 32])
    """
    if int(batch_size) < 1:
        raise ValueError(f"Expected `batch_size` >= 1, but got {batch_size}.")
    acts, _, _, target = layer_forward(model, layer, x, target, gradients=False)
    n, k = acts.shape[:2]
    scores = torch.empty(n, k)
    with torch.no_grad():
        for i in range(n):  # one image at a time keeps the (K, H, W) masks small
            up = F.interpolate(acts[i : i + 1], size=x.shape[-2:], mode="bilinear", align_corners=False)[0]
            lo = up.flatten(1).min(1).values[:, None, None]
            hi = up.flatten(1).max(1).values[:, None, None]
            span = torch.where(hi > lo, hi - lo, torch.ones_like(hi))
            masks = torch.where(hi > lo, (up - lo) / span, torch.zeros_like(up))  # (K, H, W) in [0, 1]
            for start in range(0, k, batch_size):
                m = masks[start : start + batch_size, None]  # (B, 1, H, W)
                scores[i, start : start + batch_size] = model(x[i : i + 1] * m)[:, target[i]]
    weights = torch.softmax(scores, dim=1)[..., None, None]  # (N, K, 1, 1)
    return upsample_normalize((weights * acts).sum(1), x.shape[-2:])


METHODS = {"Grad-CAM": grad_cam, "Grad-CAM++": grad_cam_pp, "Score-CAM": score_cam}
