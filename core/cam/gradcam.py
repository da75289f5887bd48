"""The Grad-CAM family at one layer: Grad-CAM, Grad-CAM++ and Score-CAM, plus the shared plumbing.

Every public function returns maps of shape (N, H, W) at the input size: the layer-resolution map is
ReLU'd, upsampled bilinearly (``align_corners=False``, as captum's ``LayerAttribution.interpolate``)
and min-max scaled per image to [0, 1] (a constant map becomes all zeros, never NaN).

The model may be shared by every session of the app, so it is only ever read: the layer's output is
captured by running a per-call shallow copy of the model in which the layer is wrapped (no hooks, no
parameter swaps), and the gradient is taken with respect to that output alone. The model must be in
eval mode: in train mode BatchNorm mixes the images of a batch and updates its running statistics.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from core.errors import OptiscopeError, check_budget, check_int

MAX_SCORE_CAM_PASSES = 50_000  # masked images (N·K) per Score-CAM call: ~1 min of the shapes CNN on one core


def resolve_layer(model: nn.Module, layer: str | nn.Module | None) -> str:
    """The dotted name of the CAM layer ``layer`` (a name, the module itself, or None for ``model.cam_layer``)."""
    if not isinstance(model, nn.Module):
        raise OptiscopeError(f"Expected `model` to be a torch.nn.Module, but got {type(model).__name__}")
    if layer is None:
        layer = getattr(model, "cam_layer", None)
        if layer is None:
            raise OptiscopeError("Expected a `layer` (the model has no `cam_layer` attribute to default to)")
    if isinstance(layer, nn.Module):
        name = next((n for n, m in model.named_modules() if m is layer and n), None)
        if name is None:
            raise OptiscopeError(f"Expected `layer` to be a submodule of the model, but got {type(layer).__name__}")
        return name
    try:
        if not str(layer):
            raise AttributeError(layer)  # "" names the model itself, not one of its layers
        model.get_submodule(str(layer))
    except AttributeError:
        choices = [name for name, _ in model.named_children()]
        raise OptiscopeError(f"Expected `layer` to be one of {choices}, but got {layer!r}") from None
    return str(layer)


def check_images(model: nn.Module, inputs: torch.Tensor) -> None:
    """Raise ``OptiscopeError`` unless ``inputs`` is a finite float (N, C, H, W) batch on the model's device."""
    if not isinstance(inputs, torch.Tensor) or inputs.ndim != 4 or not inputs.is_floating_point():
        shape = tuple(inputs.shape) if isinstance(inputs, torch.Tensor) else type(inputs).__name__
        raise OptiscopeError(f"Expected `inputs` to be float images of shape (N, C, H, W), but got {shape}")
    if inputs.shape[0] == 0 or not torch.isfinite(inputs).all():
        raise OptiscopeError("Expected `inputs` to be a non-empty batch of finite values, but got NaN, inf or none")
    param = next(model.parameters(), None)
    if param is not None and param.device != inputs.device:
        raise OptiscopeError(f"Expected `inputs` on the model's device {param.device}, but got {inputs.device}")
    if model.training:
        raise OptiscopeError("Expected `model` in eval mode (train-mode BatchNorm mixes images), but got train mode")


def check_target(target: Any, logits: torch.Tensor) -> torch.Tensor:
    """Targets as an (N,) long tensor (None → the predicted classes), range-checked against ``logits`` (N, C)."""
    n, n_classes = logits.shape
    if target is None:
        return logits.detach().argmax(1)
    try:
        target = torch.as_tensor(target, device=logits.device)
    except (TypeError, ValueError, RuntimeError):
        raise OptiscopeError(f"Expected `target` to be class indices, but got {target!r}") from None
    if target.is_floating_point() or target.is_complex() or target.dtype == torch.bool:
        raise OptiscopeError(f"Expected `target` to be integer class indices, but got dtype {target.dtype}")
    target = target.long().reshape(-1)
    if target.numel() == 1:
        target = target.expand(n)
    if target.numel() != n:
        raise OptiscopeError(f"Expected one `target` per image ({n}), but got {target.numel()}")
    bad = target[(target < 0) | (target >= n_classes)]
    if bad.numel():
        raise OptiscopeError(f"Expected `target` between 0 and {n_classes - 1}, but got {int(bad[0])}")
    return target.clone()


def check_inputs(model: nn.Module, inputs: torch.Tensor, target: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """Validate a batch and its targets with one forward pass; returns ``(logits, targets)``."""
    check_images(model, inputs)
    with torch.no_grad():
        logits = forward(model, inputs)
    return logits, check_target(target, logits)


def forward(model: nn.Module, inputs: torch.Tensor) -> torch.Tensor:
    """``model(inputs)``, where images the model cannot take (too small, wrong channels) raise ``OptiscopeError``."""
    try:
        return model(inputs)
    except torch.OutOfMemoryError:
        raise
    except RuntimeError as err:  # torch reports a shape the layers cannot take only as a RuntimeError
        raise OptiscopeError(f"The model cannot take `inputs` of shape {tuple(inputs.shape)}: {err}") from None


class _Capture(nn.Module):
    """Stands in for the CAM layer in a per-call copy of the model and keeps its output as a leaf tensor."""

    def __init__(self, layer: nn.Module, gradients: bool):
        super().__init__()
        self.layer = layer
        self.gradients = gradients
        self.outputs: list[Any] = []

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        out = self.layer(*args, **kwargs)
        if not isinstance(out, torch.Tensor):
            self.outputs.append(out)
            return out
        # A leaf: ∂y/∂A needs no gradient through the weights, and a later in-place op sees only the clone.
        leaf = out.detach().requires_grad_(self.gradients and out.is_floating_point())
        self.outputs.append(leaf)
        return leaf.clone()


def _with_capture(module: nn.Module, path: list[str], capture: _Capture) -> nn.Module:
    """A shallow copy of ``module`` whose submodule at ``path`` is ``capture``: only the modules on the path
    are copied (weights, buffers and every other child are the shared ones), and ``module`` is untouched."""
    if not path:
        return capture
    clone = copy.copy(module)
    clone.__dict__["_modules"] = dict(module._modules)
    clone._modules[path[0]] = _with_capture(module._modules[path[0]], path[1:], capture)
    return clone


def layer_forward(
    model: nn.Module, inputs: torch.Tensor, target: Any, *, layer: str | nn.Module | None = None, gradients: bool = True
) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor, torch.Tensor]:
    """One forward (and backward) pass capturing the layer's output A and the target logit's gradient ∂y_c/∂A.

    Returns ``(activations, gradients, logits, targets)``, all detached; activations and gradients are
    (N, K, h, w). Thread-safe on a shared model: see the module docstring.
    """
    name = resolve_layer(model, layer)
    check_images(model, inputs)
    capture = _Capture(model.get_submodule(name), gradients)
    with torch.set_grad_enabled(gradients):
        logits = forward(_with_capture(model, name.split("."), capture), inputs)
        acts = capture.outputs[-1] if capture.outputs else None
        if not isinstance(acts, torch.Tensor) or acts.ndim != 4:
            shape = tuple(acts.shape) if isinstance(acts, torch.Tensor) else None
            raise OptiscopeError(
                f"Expected `layer` to be convolutional with an (N, K, h, w) output, but `{name}` gives {shape}"
            )
        target = check_target(target, logits)
        grads = None
        if gradients:
            score = logits.gather(1, target[:, None]).sum()  # images are independent in eval mode
            (grads,) = torch.autograd.grad(score, acts, allow_unused=True)
            if grads is None:
                raise OptiscopeError(f"Expected the logits to depend on layer `{name}`, but they do not")
    return acts.detach(), grads, logits.detach(), target


def upsample_normalize(cam: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """ReLU, bilinear upsampling to ``size`` and per-map min-max scaling to [0, 1]. cam: (N, h, w) → (N, H, W)."""
    cam = F.interpolate(F.relu(cam)[:, None], size=tuple(size), mode="bilinear", align_corners=False)[:, 0]
    return min_max(cam)


def min_max(maps: torch.Tensor) -> torch.Tensor:
    """Each (H, W) map of ``maps`` (N, H, W) scaled to [0, 1]; a constant map becomes zeros, never NaN."""
    flat = maps.flatten(1)
    lo, hi = flat.min(1).values[:, None, None], flat.max(1).values[:, None, None]
    span = hi - lo
    return torch.where(span > 0, (maps - lo) / torch.where(span > 0, span, torch.ones_like(span)), 0.0)


def grad_cam(
    model: nn.Module, inputs: torch.Tensor, target: Any, *, layer: str | nn.Module | None = None
) -> torch.Tensor:
    """Gradient-weighted Class Activation Mapping (Grad-CAM): https://arxiv.org/abs/1610.02391

    α_k = mean over (i, j) of ∂y_c/∂A_k, map = ReLU(Σ_k α_k A_k).

    Args:
        model (`nn.Module`): a classifier in eval mode returning logits (N, C); only read.
        inputs (`torch.Tensor`): images on the model's device.
        target (`int | sequence | None`): class per image; None takes the prediction.
        layer (`str | nn.Module | None`, defaults to `None`): the CAM layer (name or module); None uses
            ``model.cam_layer``.

    Shapes:
        inputs: (N, 3, H, W) → maps: (N, H, W) in [0, 1]

    >>> from core.cam.models import ShapesCNN
    >>> grad_cam(ShapesCNN().eval(), torch.rand(2, 3, 32, 32), 1, layer="block3").shape
    torch.Size([2, 32, 32])
    """
    acts, grads, _, _ = layer_forward(model, inputs, target, layer=layer)
    weights = grads.mean(dim=(2, 3), keepdim=True)  # (N, K, 1, 1)
    return upsample_normalize((weights * acts).sum(1), inputs.shape[-2:])


def grad_cam_pp(
    model: nn.Module, inputs: torch.Tensor, target: Any, *, layer: str | nn.Module | None = None
) -> torch.Tensor:
    """Grad-CAM++: https://arxiv.org/abs/1710.11063

    Pixel-wise weights a_ij = g² / (2g² + Σ_ab A_ab · g³) (the exp-score closed form; 0 where g = 0),
    α_k = Σ_ij a_ij ReLU(g_ij), map = ReLU(Σ_k α_k A_k). pytorch-grad-cam adds 1e-6 to the denominator,
    which dominates it when gradients are small (g² ≈ 1e-8 under a GAP head); this is the exact form.

    Args:
        model, inputs, target, layer: as in ``grad_cam``.

    Shapes:
        inputs: (N, 3, H, W) → maps: (N, H, W) in [0, 1]

    >>> from core.cam.models import ShapesCNN
    >>> grad_cam_pp(ShapesCNN().eval(), torch.rand(1, 3, 64, 64), 0).shape
    torch.Size([1, 64, 64])
    """
    acts, grads, _, _ = layer_forward(model, inputs, target, layer=layer)
    g2, g3 = grads.pow(2), grads.pow(3)
    denom = 2 * g2 + acts.sum(dim=(2, 3), keepdim=True) * g3
    aij = torch.where(grads != 0, g2 / torch.where(denom != 0, denom, 1.0), 0.0)
    weights = (aij * F.relu(grads)).sum(dim=(2, 3), keepdim=True)  # (N, K, 1, 1)
    return upsample_normalize((weights * acts).sum(1), inputs.shape[-2:])


def score_cam(
    model: nn.Module,
    inputs: torch.Tensor,
    target: Any,
    *,
    layer: str | nn.Module | None = None,
    batch_size: int = 64,
) -> torch.Tensor:
    """Score-weighted Class Activation Mapping (Score-CAM): https://arxiv.org/abs/1910.01279

    Each channel, upsampled bilinearly and min-max scaled to [0, 1], masks the image; the target logits
    of the masked images, softmaxed over channels, weigh the channels (pytorch-grad-cam's weighting).
    One forward pass per channel and image, ``batch_size`` at a time; at most ``MAX_SCORE_CAM_PASSES``.

    Args:
        model, inputs, target, layer: as in ``grad_cam``.
        batch_size (`int`, defaults to `64`): masked images per forward pass.

    Shapes:
        inputs: (N, 3, H, W) → maps: (N, H, W) in [0, 1]

    >>> from core.cam.models import ShapesCNN
    >>> score_cam(ShapesCNN().eval(), torch.rand(1, 3, 32, 32), 2).shape
    torch.Size([1, 32, 32])
    """
    batch_size = check_int("batch_size", batch_size, 1, 4096)
    acts, _, _, target = layer_forward(model, inputs, target, layer=layer, gradients=False)
    n, k = acts.shape[:2]
    check_budget("Score-CAM forward passes (images × channels)", n * k, MAX_SCORE_CAM_PASSES)
    scores = torch.empty(n, k, dtype=acts.dtype, device=acts.device)
    with torch.no_grad():
        for i in range(n):
            for start in range(0, k, batch_size):  # the (B, H, W) masks of one chunk at a time keep memory flat
                chunk = acts[i, start : start + batch_size, None]  # (B, 1, h, w)
                up = F.interpolate(chunk, size=inputs.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
                masks = min_max(up)[:, None]  # (B, 1, H, W) in [0, 1]
                scores[i, start : start + batch_size] = model(inputs[i : i + 1] * masks)[:, target[i]]
    weights = torch.softmax(scores, dim=1)[..., None, None]  # (N, K, 1, 1)
    return upsample_normalize((weights * acts).sum(1), inputs.shape[-2:])


METHODS = {"Grad-CAM": grad_cam, "Grad-CAM++": grad_cam_pp, "Score-CAM": score_cam}
