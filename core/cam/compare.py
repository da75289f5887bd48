"""The lab's two entry points: every CAM of one batch side by side (``explain``), and the faithfulness
and localisation scores of every method over many images (``run``, a progress iterator)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from core.cam.cfcam import CFCAMConfig, CFCAMResult, cf_cam
from core.cam.gradcam import METHODS, check_images, check_inputs, resolve_layer
from core.cam.metrics import MetricsProgress, Scorer, metrics_table, pointing_game
from core.errors import OptiscopeError, check_int, check_seed

AUTHORS_CONFIG = CFCAMConfig()  # frozen, so one shared default is safe
MAX_IMAGES = 256  # images per metrics run: with 5 methods and 32 steps, ~1 min of the shapes CNN on one core


FORMULAS = {  # what the functions here compute, in LaTeX, for explainers beside the figures
    "maps": [
        r"\text{Grad-CAM: } M=\mathrm{ReLU}\big(\textstyle\sum_k \bar g_k A_k\big),\ "
        r"\bar g_k=\frac{1}{hw}\sum_{ij}\frac{\partial y_c}{\partial A_k^{ij}}",
        r"\text{CF-CAM: } M=\mathrm{ReLU}\big(\textstyle\sum_{k\in V}\beta_k A_k\big),\ \beta=\mathrm{softmax}(\alpha_V)",
    ],
    "clusters": r"\alpha_k=\operatorname{mean}\big(\mathrm{filter}(\tfrac{1}{|C_m|}\textstyle\sum_{j\in C_m} G_j)\big),"
    r"\ k\in C_m",
    "scores": [
        r"\text{AUC}=\tfrac1n\big(\textstyle\sum_i s_i-\tfrac{s_0+s_n}{2}\big)",
        r"\text{AD}=\tfrac{100}{N}\textstyle\sum\frac{\max(0,Y_c-O_c)}{Y_c},\ "
        r"\text{EBPG}=\frac{\sum_{p\in\text{mask}}L_p}{\sum_p L_p}",
    ],
}


@dataclass(frozen=True)
class Explanation:
    """Every CAM of one batch: ``maps`` is method → (N, H, W) in [0, 1] (``METHODS`` order, then CF-CAM),
    ``targets`` (N,) the explained classes, ``probs`` (N, C) the softmax, ``cf`` CF-CAM's internals, and
    ``hits`` method → (N,) bool pointing-game hits when masks were given (else empty)."""

    targets: torch.Tensor
    probs: torch.Tensor
    maps: dict[str, torch.Tensor]
    cf: CFCAMResult
    hits: dict[str, torch.Tensor]


def explain(
    model: nn.Module,
    inputs: torch.Tensor,
    target: Any,
    *,
    layer: str | nn.Module | None = None,
    masks: torch.Tensor | None = None,
    config: CFCAMConfig = AUTHORS_CONFIG,
) -> Explanation:
    """Grad-CAM, Grad-CAM++, Score-CAM and CF-CAM of ``inputs`` for ``target`` (None: the predicted classes),
    with each map's pointing-game hits against ``masks`` (N, H, W) bool when given.

    Cluster Filter Class Activation Mapping (CF-CAM): https://arxiv.org/abs/2504.00060

    >>> from core.cam.models import ShapesCNN
    >>> out = explain(ShapesCNN().eval(), torch.rand(1, 3, 32, 32), 2)
    >>> list(out.maps), out.targets.tolist()
    (['Grad-CAM', 'Grad-CAM++', 'Score-CAM', 'CF-CAM'], [2])
    """
    logits, targets = check_inputs(model, inputs, target)
    maps = {name: method(model, inputs, targets, layer=layer) for name, method in METHODS.items()}
    cf = cf_cam(model, inputs, targets, layer=layer, config=config)
    maps["CF-CAM"] = cf.map
    hits = {} if masks is None else {name: pointing_game(m, masks) for name, m in maps.items()}
    return Explanation(targets, torch.softmax(logits, 1), maps, cf, hits)


def scorers(model: nn.Module, *, layer: str, config: CFCAMConfig, seed: int) -> dict[str, Scorer]:
    """``(inputs, target) -> maps`` for every method in the metrics table, and a seeded random map (the floor)."""

    def random_map(inputs: torch.Tensor, _target: torch.Tensor) -> torch.Tensor:
        gen = torch.Generator().manual_seed(seed)  # CPU draws: the same floor on every device
        return torch.rand(inputs.shape[0], *inputs.shape[2:], generator=gen).to(inputs.device)

    methods: dict[str, Scorer] = {
        name: (lambda x, t, method=method: method(model, x, t, layer=layer)) for name, method in METHODS.items()
    }
    methods["CF-CAM"] = lambda x, t: cf_cam(model, x, t, layer=layer, config=config).map
    methods["random"] = random_map
    return methods


def run(
    model: nn.Module,
    inputs: torch.Tensor,
    target: torch.Tensor,
    *,
    masks: torch.Tensor,
    layer: str | nn.Module | None = None,
    config: CFCAMConfig = AUTHORS_CONFIG,
    steps: int = 32,
    substrate: str = "blur",
    batch_size: int = 16,
    seed: int = 0,
) -> Iterator[MetricsProgress]:
    """Deletion, insertion, Average Drop/Increase, pointing game and EBPG of every CAM (and a random map) over
    ``inputs``, a batch at a time. Validated when called (no forward pass until the first ``next``); at most
    ``MAX_IMAGES`` images and ``metrics.MAX_METRIC_PASSES`` images through the model.

    Cluster Filter Class Activation Mapping (CF-CAM): https://arxiv.org/abs/2504.00060

    Shapes: inputs (N, 3, H, W), target (N,), masks (N, H, W) bool → states with ``table[method][metric]``.

    >>> from core.cam.models import ShapesCNN
    >>> from core.data.shapes import make_shapes
    >>> x, y, m = make_shapes(2, size=32)
    >>> [s.method for s in run(ShapesCNN().eval(), x, y, masks=m, steps=2)]
    ['Grad-CAM', 'Grad-CAM++', 'Score-CAM', 'CF-CAM', 'random']
    """
    check_images(model, inputs)
    check_int("images", inputs.shape[0], 1, MAX_IMAGES)
    if not isinstance(config, CFCAMConfig):
        raise OptiscopeError(f"Expected `config` to be a CFCAMConfig, but got {type(config).__name__}")
    name = resolve_layer(model, layer)
    methods = scorers(model, layer=name, config=config, seed=check_seed(seed))
    return metrics_table(model, inputs, target, masks, methods, batch_size=batch_size, steps=steps, substrate=substrate)
