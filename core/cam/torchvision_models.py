"""Optional: torchvision ImageNet classifiers as CAM targets, when torchvision happens to be installed.

Nothing here imports torchvision at module level and nothing downloads weights: ``build`` makes a
random-weight architecture (for tests) or loads a local ``.safetensors`` state dict. ``prepare`` is the
code path shared with any plain torch CNN: it finds the convolutional layers a CAM can use and wraps the
model with ImageNet normalisation so it takes images in [0, 1].
"""

from __future__ import annotations

import importlib
import importlib.util

import torch
from torch import nn

from core.errors import OptiscopeError

ARCHITECTURES = ("resnet18", "resnet50", "vgg16", "mobilenet_v3_small", "densenet121")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def available() -> bool:
    """Whether torchvision is importable (it is an optional extra, never a requirement)."""
    return importlib.util.find_spec("torchvision") is not None


def conv_layers(model: nn.Module, size: int = 64, in_channels: int = 3) -> list[str]:
    """Names of the direct-path modules whose output is a 4-D (N, K, h, w) map, found by one probe pass.

    Only modules named at depth ≤ 2 (``layer4``, ``features.28``) are listed, deepest last.
    """
    found: dict[str, tuple] = {}
    hooks = []

    def record(name: str):
        def hook(_module, _inputs, output) -> None:  # must return None, or it replaces the output
            found.setdefault(name, tuple(getattr(output, "shape", ())))

        return hook

    for name, module in model.named_modules():
        if name and name.count(".") <= 1 and not isinstance(module, nn.BatchNorm2d | nn.Dropout):
            hooks.append(module.register_forward_hook(record(name)))
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(torch.zeros(1, in_channels, size, size))
    finally:
        model.train(was_training)
        for h in hooks:
            h.remove()
    return [name for name, shape in found.items() if len(shape) == 4 and shape[-1] > 1]


class Normalized(nn.Module):
    """``model((x − mean)/std)`` with ``cam_layer`` / ``cam_layers`` for the CAM functions (names under ``net.``)."""

    def __init__(self, model: nn.Module, mean=IMAGENET_MEAN, std=IMAGENET_STD, size: int = 224):
        super().__init__()
        self.net = model
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1))
        layers = conv_layers(self, size)
        layers = [name for name in layers if name.startswith("net.")]
        if not layers:
            raise OptiscopeError("The model has no convolutional layer with a spatial output; a CAM needs one.")
        self.cam_layers = tuple(layers)
        self.cam_layer = layers[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net((x - self.mean) / self.std)


def prepare(model: nn.Module, size: int = 224, mean=IMAGENET_MEAN, std=IMAGENET_STD) -> Normalized:
    """Wrap any torch CNN classifier for the CAM lab (eval mode, normalisation, CAM layer choices)."""
    return Normalized(model, mean, std, size).eval()


def build(name: str, num_classes: int = 1000, state_dict: dict | None = None, size: int = 224) -> Normalized:
    """A torchvision classifier with random weights (or ``state_dict``), prepared for CAMs. Needs torchvision.

    >>> available() or True
    True
    """
    if not available():
        raise OptiscopeError("torchvision is not installed; the ImageNet classifiers are an optional extra.")
    if name not in ARCHITECTURES:
        raise OptiscopeError(f"Unknown architecture `{name}`; expected one of {ARCHITECTURES}.")
    models = importlib.import_module("torchvision.models")
    model = models.get_model(name, weights=None, num_classes=num_classes)
    if state_dict is not None:
        model.load_state_dict(state_dict, strict=True)
    return prepare(model, size)
