"""Grad-CAM split by CF-CAM's channel groups (CF-CAM): https://arxiv.org/abs/2504.00060

Grad-CAM sums α_k A_k over every channel k (α_k the mean gradient of channel k). CF-CAM sorts the channels
into dominant ones, DBSCAN clusters and noise, and drops the noise. Summing Grad-CAM's terms per group shows,
as images, where the channels CF-CAM dropped put their weight.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from core.cam.cfcam import CFCAMResult

GROUPS = {"dominant": -2, "noise (dropped)": -1}  # CFCAMResult.labels codes; labels >= 0 are clusters


def group_maps(result: CFCAMResult, size: Sequence[int], *, image: int = 0) -> dict[str, torch.Tensor]:
    """Grad-CAM's map from all channels and from each group of CF-CAM's channels, on one scale.

    Each map is ReLU(Σ_{k in group} α_k A_k), upsampled bilinearly to ``size`` and divided by the peak of the
    all-channel map, so a group's map shows how much of Grad-CAM it makes (1 = Grad-CAM's peak).

    Shapes:
        result: a CF-CAM result for N ≥ image + 1 images → each map (H, W) = ``size``

    >>> import torch
    >>> from core.cam import cf_cam
    >>> from core.cam.models import ShapesCNN
    >>> maps = group_maps(cf_cam(ShapesCNN().eval(), torch.rand(1, 3, 32, 32), 0, layer="block3"), (32, 32))
    >>> sorted(maps)
    ['all channels', 'clusters', 'dominant', 'noise (dropped)']
    """
    labels = result.labels[image]
    terms = result.gradients[image].mean(dim=(1, 2))[:, None, None] * result.activations[image]  # (K, h, w)
    members = {"all channels": torch.ones_like(labels, dtype=torch.bool), "clusters": labels >= 0}
    members |= {name: labels == code for name, code in GROUPS.items()}
    raw = torch.stack([terms[chosen].sum(0) for chosen in members.values()])  # (groups, h, w)
    maps = F.interpolate(F.relu(raw)[:, None], size=tuple(size), mode="bilinear", align_corners=False)[:, 0]
    peak = maps[0].max().clamp_min(torch.finfo(maps.dtype).tiny)  # an all-zero Grad-CAM stays zero, never NaN
    return dict(zip(members, maps / peak, strict=True))
