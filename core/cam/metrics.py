"""Faithfulness and localisation metrics for saliency maps.

- Deletion / insertion AUC (Petsiuk et al., RISE, https://arxiv.org/abs/1806.07421): pixels change in
  saliency order; deletion goes image → substrate (lower is better), insertion blurred image → image
  (higher). RISE deletes to zeros; the default here is the blurred image (see ``substrate``).
- Average Drop / Average Increase (Chattopadhay et al., Grad-CAM++, https://arxiv.org/abs/1710.11063).
- Pointing game (Zhang et al., https://arxiv.org/abs/1608.00507) and the energy-based pointing game
  (Wang et al., Score-CAM, https://arxiv.org/abs/1910.01279), against ground-truth masks.

Maps are (N, H, W) at input size; scores are softmax probabilities of the target class. Every tensor made
here is on the inputs' device.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from core.cam.gradcam import check_images
from core.errors import OptiscopeError, check_budget, check_choice, check_int

METRICS = {  # name → whether higher is better
    "deletion": False,
    "insertion": True,
    "average_drop": False,
    "average_increase": True,
    "pointing_game": True,
    "ebpg": True,
}


SUBSTRATES = {"blur": "blurred image", "mean": "mean colour", "zero": "zeros (RISE)"}
MAX_STATE_PASSES = 1_200  # images through the model between two progress states (~1.5 s on one idle core)
MAX_METRIC_PASSES = 100_000  # images through the model per metrics table (~2 min of the shapes CNN on one core)


def _check_maps(maps: torch.Tensor, like: torch.Tensor, name: str = "saliency") -> None:
    if not isinstance(like, torch.Tensor) or like.ndim < 3:
        got = tuple(like.shape) if isinstance(like, torch.Tensor) else type(like).__name__
        raise OptiscopeError(f"Expected `masks` of shape (N, H, W) beside the `{name}` maps, but got {got}")
    expected = (like.shape[0], *like.shape[-2:])
    if not isinstance(maps, torch.Tensor) or maps.ndim != 3 or tuple(maps.shape) != expected:
        got = tuple(maps.shape) if isinstance(maps, torch.Tensor) else type(maps).__name__
        raise OptiscopeError(f"Expected `{name}` maps of shape {expected}, but got {got}")
    if not torch.isfinite(maps.float()).all():
        raise OptiscopeError(f"Expected `{name}` maps of finite values, but got NaN or inf")


def _targets(target: Any, n: int, device: torch.device) -> torch.Tensor:
    try:
        target = torch.as_tensor(target, dtype=torch.long, device=device).reshape(-1)
    except (TypeError, ValueError, RuntimeError):
        raise OptiscopeError(f"Expected `target` to be class indices, but got {target!r}") from None
    if target.numel() not in (1, n):
        raise OptiscopeError(f"Expected one `target` per image ({n}), but got {target.numel()}")
    return target.expand(n)


def pointing_game(saliency: torch.Tensor, masks: torch.Tensor, *, tolerance: int = 0) -> torch.Tensor:
    """Pointing game: a hit when the map's maximum lies in the mask (grown by ``tolerance`` pixels).

    Shapes: saliency, masks: (N, H, W) → hits: (N,) bool. Accuracy = hits.float().mean().

    >>> masks = torch.zeros(1, 8, 8, dtype=torch.bool); masks[0, 2:4, 2:4] = True
    >>> pointing_game(masks.float(), masks).tolist()
    [True]
    """
    _check_maps(saliency, masks)
    tolerance = check_int("tolerance", tolerance, 0, 64)
    m = masks.float()[:, None]
    if tolerance > 0:
        m = F.max_pool2d(m, 2 * tolerance + 1, stride=1, padding=tolerance)
    peak = saliency.flatten(1).argmax(1)
    return m.flatten(1).gather(1, peak[:, None])[:, 0] > 0


def energy_pointing_game(saliency: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Energy-based pointing game: the share Σ_mask L / Σ L of the map's mass inside the mask (0 for an all-zero map).

    Shapes: saliency, masks: (N, H, W) → (N,) in [0, 1].

    >>> masks = torch.zeros(1, 4, 4, dtype=torch.bool); masks[0, :2] = True
    >>> energy_pointing_game(torch.ones(1, 4, 4), masks).tolist()
    [0.5]
    """
    _check_maps(saliency, masks)
    sal = saliency.clamp_min(0).flatten(1)
    total = sal.sum(1)
    inside = (sal * masks.flatten(1)).sum(1)
    return torch.where(total > 0, inside / torch.where(total > 0, total, torch.ones_like(total)), 0.0)


def _probs(model: nn.Module, inputs: torch.Tensor, target: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    with torch.no_grad():
        out = [torch.softmax(model(inputs[i : i + batch_size]), 1) for i in range(0, inputs.shape[0], batch_size)]
    return torch.cat(out).gather(1, target[:, None])[:, 0]


def blur(images: torch.Tensor, kernel_size: int = 11, sigma: float = 5.0) -> torch.Tensor:
    """Gaussian blur, per channel, reflect-padded (RISE's insertion substrate). images: (N, C, H, W)."""
    r = kernel_size // 2
    t = torch.arange(kernel_size, dtype=images.dtype, device=images.device) - r
    k = torch.exp(-(t**2) / (2 * sigma**2))
    k = k / k.sum()
    c = images.shape[1]
    pad = min(r, images.shape[-1] - 1, images.shape[-2] - 1)
    x = F.pad(images, (pad, pad, pad, pad), mode="reflect")
    if pad < r:
        x = F.pad(x, (r - pad,) * 4, mode="replicate")
    x = F.conv2d(x, k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return F.conv2d(x, k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


def substrate_images(images: torch.Tensor, kind: str = "blur") -> torch.Tensor:
    """What deleted pixels become: the blurred image (default), the image's mean colour, or zeros (RISE).

    On the shapes, zeros keep a black silhouette of a deleted object (the CNN still sees the shape) and
    scattered black pixels are out of distribution, so a random map beats the ground-truth mask there.
    """
    check_choice("substrate", kind, tuple(SUBSTRATES))
    if kind == "blur":
        return blur(images)
    if kind == "mean":
        return images.mean(dim=(2, 3), keepdim=True).expand_as(images)
    return torch.zeros_like(images)


def saliency_order(saliency: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """Pixel indices (N, H*W), most salient first; ties in a seeded random order (not raster order).

    >>> saliency_order(torch.tensor([[[0.0, 2.0], [1.0, 2.0]]]))[0, 2:].tolist()
    [2, 0]
    """
    flat = saliency.flatten(1)
    # Drawn on the CPU: the same seed gives the same order on every device.
    perm = torch.randperm(flat.shape[1], generator=torch.Generator().manual_seed(int(seed))).to(flat.device)
    idx = torch.sort(flat[:, perm], dim=1, descending=True, stable=True).indices
    return perm[idx]


def deletion_insertion_curves(
    model: nn.Module,
    inputs: torch.Tensor,
    saliency: torch.Tensor,
    target: Any,
    *,
    mode: str = "deletion",
    steps: int = 64,
    substrate: str = "blur",
    seed: int = 0,
    batch_size: int = 256,
) -> torch.Tensor:
    """Target-class probability as pixels are deleted (image → substrate) or inserted (blurred → image).

    Shapes: inputs (N, C, H, W), saliency (N, H, W) → curves (N, steps + 1).
    """
    check_choice("mode", mode, ("deletion", "insertion"))
    steps = check_int("steps", steps, 1, 1024)
    _check_maps(saliency, inputs)
    n, _, h, w = inputs.shape
    device = inputs.device
    target = _targets(target, n, device)
    order = saliency_order(saliency, seed)
    rank = torch.empty_like(order).scatter_(1, order, torch.arange(h * w, device=device).expand(n, -1))  # (N, HW)
    counts = torch.ceil(torch.linspace(0, h * w, steps + 1, device=device)).long()  # pixels changed at each step
    if mode == "deletion":
        start, end = inputs, substrate_images(inputs, substrate)
    else:
        start, end = blur(inputs), inputs
    curves = torch.empty(n, steps + 1, dtype=inputs.dtype, device=device)
    for i in range(n):
        changed = (rank[i][None] < counts[:, None]).view(-1, 1, h, w)  # (S+1, 1, H, W)
        seq = torch.where(changed, end[i : i + 1], start[i : i + 1])
        curves[i] = _probs(model, seq, target[i].expand(steps + 1), batch_size)
    return curves


def auc(curves: torch.Tensor) -> torch.Tensor:
    """Trapezoidal area under curves sampled at equal steps on [0, 1]: (Σs − s₀/2 − s_n/2)/n. (N, S+1) → (N,).

    >>> auc(torch.tensor([[1.0, 1.0, 1.0]])).tolist()
    [1.0]
    """
    n = curves.shape[1] - 1
    return (curves.sum(1) - curves[:, 0] / 2 - curves[:, -1] / 2) / n


def deletion_auc(
    model: nn.Module,
    inputs: torch.Tensor,
    saliency: torch.Tensor,
    target: Any,
    *,
    steps: int = 64,
    substrate: str = "blur",
) -> torch.Tensor:
    """Deletion AUC per image (lower is better). Shapes: (N, C, H, W), (N, H, W) → (N,)."""
    curves = deletion_insertion_curves(
        model, inputs, saliency, target, mode="deletion", steps=steps, substrate=substrate
    )
    return auc(curves)


def insertion_auc(
    model: nn.Module, inputs: torch.Tensor, saliency: torch.Tensor, target: Any, *, steps: int = 64
) -> torch.Tensor:
    """Insertion AUC per image (higher is better). Shapes: (N, C, H, W), (N, H, W) → (N,)."""
    return auc(deletion_insertion_curves(model, inputs, saliency, target, mode="insertion", steps=steps))


def average_drop_increase(
    model: nn.Module, inputs: torch.Tensor, saliency: torch.Tensor, target: Any
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-image drop max(0, Y−O)/Y and increase 1[Y < O], with O the score on x ⊙ map.

    Average Drop = 100·drop.mean() (lower is better), Average Increase = 100·increase.float().mean().
    Shapes: inputs (N, C, H, W), saliency (N, H, W) in [0, 1] → (N,), (N,) bool.
    """
    _check_maps(saliency, inputs)
    target = _targets(target, inputs.shape[0], inputs.device)
    y = _probs(model, inputs, target)
    o = _probs(model, inputs * saliency[:, None], target)
    return (y - o).clamp_min(0) / y.clamp_min(1e-12), y < o


def evaluate(
    model: nn.Module,
    inputs: torch.Tensor,
    saliency: torch.Tensor,
    target: Any,
    masks: torch.Tensor,
    *,
    steps: int = 64,
    substrate: str = "blur",
) -> dict[str, torch.Tensor]:
    """Every metric per image, keyed as ``METRICS``. Shapes: (N, C, H, W), (N, H, W), (N,), (N, H, W) → (N,) each."""
    drop, increase = average_drop_increase(model, inputs, saliency, target)
    return {
        "deletion": deletion_auc(model, inputs, saliency, target, steps=steps, substrate=substrate),
        "insertion": insertion_auc(model, inputs, saliency, target, steps=steps),
        "average_drop": 100 * drop,
        "average_increase": 100 * increase.float(),
        "pointing_game": pointing_game(saliency, masks).float(),
        "ebpg": energy_pointing_game(saliency, masks),
    }


@dataclass(frozen=True)
class MetricsProgress:
    """One step of ``metrics_table``: ``step`` of ``total`` (method, batch) chunks scored; ``table`` maps
    method → metric → mean over the images scored so far."""

    step: int
    total: int
    method: str
    table: dict[str, dict[str, float]]


Scorer = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def metrics_table(
    model: nn.Module,
    inputs: torch.Tensor,
    target: torch.Tensor,
    masks: torch.Tensor,
    methods: Mapping[str, Scorer],
    *,
    batch_size: int = 16,
    steps: int = 32,
    substrate: str = "blur",
) -> Iterator[MetricsProgress]:
    """Score each ``methods[name](inputs, target) -> maps`` on every image, a batch at a time (a progress iterator).

    Validated when called; refuses more than ``MAX_METRIC_PASSES`` images through the model
    (images × methods × (2·steps + 4): the deletion and insertion curves plus the drop/increase pair), and
    more than ``MAX_STATE_PASSES`` between two states (batch_size × (2·steps + 4)).

    >>> from core.cam.models import ShapesCNN
    >>> x, y, m = torch.rand(2, 3, 32, 32), torch.tensor([0, 1]), torch.ones(2, 32, 32, dtype=torch.bool)
    >>> last = list(metrics_table(ShapesCNN().eval(), x, y, m, {"uniform": lambda a, b: torch.ones(2, 32, 32)}))[-1]
    >>> last.table["uniform"]["ebpg"], last.step, last.total
    (1.0, 1, 1)
    """
    batch_size = check_int("batch_size", batch_size, 1, 1024)
    steps = check_int("steps", steps, 1, 1024)
    check_choice("substrate", substrate, tuple(SUBSTRATES))
    if not methods:
        raise OptiscopeError("Expected at least one method in `methods`, but got none")
    check_images(model, inputs)
    _check_maps(masks, inputs, "masks")
    n = inputs.shape[0]
    if _targets(target, n, inputs.device).shape != (n,):
        raise OptiscopeError(f"Expected one `target` per image ({n})")
    passes = n * len(methods) * (2 * steps + 4)
    check_budget(
        "images through the model (images × methods × (2·steps + 4))",
        passes,
        MAX_METRIC_PASSES,
        hint="Score fewer images.",
    )
    check_budget(
        "images through the model per progress state (batch_size × (2·steps + 4))",
        min(batch_size, n) * (2 * steps + 4),
        MAX_STATE_PASSES,
        hint="Lower `batch_size` or `steps`.",
    )
    return _table_loop(model, inputs, target, masks, dict(methods), batch_size, steps, substrate)


def _table_loop(
    model: nn.Module,
    inputs: torch.Tensor,
    target: torch.Tensor,
    masks: torch.Tensor,
    methods: dict[str, Scorer],
    batch_size: int,
    steps: int,
    substrate: str,
) -> Iterator[MetricsProgress]:
    n = inputs.shape[0]
    starts = range(0, n, batch_size)
    total, done = len(methods) * len(starts), 0
    means: dict[str, dict[str, float]] = {}
    for name, method in methods.items():
        sums = dict.fromkeys(METRICS, 0.0)
        for s in starts:
            x, t, m = inputs[s : s + batch_size], target[s : s + batch_size], masks[s : s + batch_size]
            scores = evaluate(model, x, method(x, t).detach(), t, m, steps=steps, substrate=substrate)
            for k, v in scores.items():
                sums[k] += float(v.sum())
            done += 1
            seen = min(s + batch_size, n)
            means[name] = {k: v / seen for k, v in sums.items()}
            yield MetricsProgress(done, total, name, {k: dict(v) for k, v in means.items()})
