"""Cluster Filter Class Activation Mapping (CF-CAM), as the authors' code (jerryp-hfut/CF-CAM) does it.

1. Channels whose activation norm is in the top ``dominant_frac`` are *dominant*: they keep α_k = mean(G_k).
2. DBSCAN (scikit-learn's rules) clusters the other channels by their flattened activations (Euclidean); eps is the
   ``eps_percentile`` of their pairwise distances, min_samples = max(2, ⌊min_samples_frac·|R|⌋).
   Noise channels (label −1) are dropped from the map.
3. Each cluster's mean gradient is filtered (an image-sized Gaussian or the code's "bilateral" kernel,
   zero-padded ``same`` convolution) and every member gets α_k = mean of the filtered map.
4. β = softmax(α) over the kept channels (or β = α with ``combine="linear"``); map = ReLU(Σ β_k A_k).

Clustering runs on the CPU (numpy / scikit-learn, on (K, h·w) features); everything else on the inputs' device.

With ``dominant_frac=1`` and ``combine="linear"`` every channel keeps its Grad-CAM weight: exactly Grad-CAM.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from core.cam.gradcam import layer_forward, upsample_normalize
from core.errors import OptiscopeError, check_choice, check_int, check_range

FILTERS = {"gaussian": "Gaussian", "bilateral": "bilateral (the code's)", "none": "none"}
COMBINES = {"softmax": "softmax (the code)", "linear": "linear (Grad-CAM-like)"}
CLUSTERERS = ("fast", "sklearn")
DOMINANT = -2  # label of dominant channels: they skip clustering


@dataclass(frozen=True)
class CFCAMConfig:
    """CF-CAM's options, validated on construction (``OptiscopeError`` naming the field)."""

    dominant_frac: float = 0.25  # top quarter by activation norm (the code's 75th percentile)
    eps_percentile: float = 25.0  # of the non-dominant channels' pairwise distances
    min_samples_frac: float = 0.05  # DBSCAN min_samples = max(2, ⌊frac·|R|⌋)
    filter: str = "gaussian"  # a key of FILTERS: "gaussian", "bilateral" (the code's global-mean range term), "none"
    sigma: float = 5.0  # spatial σ in layer pixels (the code's σ_s = 5)
    sigma_range: float = 0.1  # bilateral range σ_r (the code's value)
    combine: str = "softmax"  # "softmax" (reference) or "linear"
    clusterer: str = "fast"  # "fast" (same labels, no per-call overhead) or "sklearn"

    def __post_init__(self) -> None:
        check_range("dominant_frac", self.dominant_frac, 0.0, 1.0)
        check_range("eps_percentile", self.eps_percentile, 0.0, 100.0)
        check_range("min_samples_frac", self.min_samples_frac, 0.0, 1.0)
        check_choice("filter", self.filter, tuple(FILTERS))
        check_range("sigma", self.sigma, 1e-3, 1e3)
        check_range("sigma_range", self.sigma_range, 1e-6, 1e6)
        check_choice("combine", self.combine, tuple(COMBINES))
        check_choice("clusterer", self.clusterer, CLUSTERERS)


@dataclass(frozen=True)
class CFCAMResult:
    """CF-CAM maps and the internals behind them (all detached, on the inputs' device).

    Shapes: map (N, H, W) in [0, 1]; raw (N, h, w) the un-normalised layer map; activations,
    gradients (N, K, h, w); labels (N, K) with −1 = noise (dropped), −2 = dominant, ≥ 0 = cluster;
    dominant (N, K) bool; weights α (N, K) and coefficients β (N, K), both 0 for dropped channels;
    cluster_grads / filtered_grads: per image an (M, h, w) tensor, one row per cluster; eps, min_samples (N,).
    """

    map: torch.Tensor
    raw: torch.Tensor
    activations: torch.Tensor
    gradients: torch.Tensor
    labels: torch.Tensor
    dominant: torch.Tensor
    weights: torch.Tensor
    coefficients: torch.Tensor
    cluster_grads: tuple[torch.Tensor, ...]
    filtered_grads: tuple[torch.Tensor, ...]
    eps: torch.Tensor
    min_samples: torch.Tensor
    targets: torch.Tensor

    def summary(self, *, image: int = 0) -> dict[str, int | float]:
        """What the clustering did to image ``image``: counts of dominant, clustered, noise channels, eps, min_samples.

        ``clusters`` counts the distinct labels ≥ 0 (0 when every channel is dominant or noise).
        """
        labels = self.labels[image]
        return {
            "dominant channels": int(self.dominant[image].sum()),
            "clusters": int(labels[labels >= 0].unique().numel()),
            "noise channels (dropped)": int((labels == -1).sum()),
            "DBSCAN eps": float(self.eps[image]),
            "min_samples": int(self.min_samples[image]),
        }


def smooth(grads: torch.Tensor, kind: str, sigma: float, sigma_range: float = 0.1) -> torch.Tensor:
    """The code's cluster filter: one image-sized kernel per map, normalised, zero-padded ``same`` convolution.

    ``bilateral`` multiplies the spatial Gaussian by exp(−(g − ḡ)²/2σ_r²) with the map's *global* mean ḡ
    (so it is not a per-pixel bilateral filter). grads: (M, h, w) → (M, h, w), all maps in one call.

    >>> smooth(torch.ones(2, 4, 4), "none", 1.0).sum().item()
    32.0
    """
    if kind == "none" or grads.shape[0] == 0:
        return grads
    m, h, w = grads.shape
    # Odd kernel sides (h or h + 1) keep `same` padding symmetric; the code's kernel is exactly (h, w).
    kh, kw = h | 1, w | 1
    ys = torch.arange(kh, dtype=grads.dtype, device=grads.device) - (kh - 1) / 2
    xs = torch.arange(kw, dtype=grads.dtype, device=grads.device) - (kw - 1) / 2
    kernel = torch.exp(-(ys[:, None] ** 2 + xs[None] ** 2) / (2 * sigma**2)).expand(m, kh, kw)  # (M, kh, kw)
    if kind == "bilateral":
        # The range term weighs kernel taps by the gradient map itself (padded to the kernel's size).
        g = F.pad(grads[:, None], (0, kw - w, 0, kh - h), mode="replicate")[:, 0]
        kernel = kernel * torch.exp(-((g - grads.mean(dim=(1, 2), keepdim=True)) ** 2) / (2 * sigma_range**2))
    kernel = kernel / kernel.sum(dim=(1, 2), keepdim=True)
    return F.conv2d(grads[None], kernel[:, None], padding="same", groups=m)[0]


def dbscan_precomputed(dist: np.ndarray, eps: float, min_samples: int) -> np.ndarray:
    """DBSCAN labels from a dense distance matrix, identical to scikit-learn's ``DBSCAN(metric="precomputed")``.

    scikit-learn's fixed cost (input validation, a neighbours index) is ~3 ms per call, which alone is
    more than a Grad-CAM on this CNN; the same rules in a few array operations take ~0.1 ms. Cores have
    ≥ ``min_samples`` points (themselves included) within ``eps``; clusters are the connected components
    of cores, numbered by their first core; a border point joins the lowest-numbered adjacent cluster
    (scikit-learn's first-come order); the rest is noise (−1). ``tests/test_cam.py`` checks it against
    scikit-learn.

    >>> dbscan_precomputed(np.array([[0.0, 1, 9], [1, 0, 9], [9, 9, 0]]), 1.5, 2).tolist()
    [0, 0, -1]
    """
    adj = dist <= eps  # (R, R), the diagonal included as in scikit-learn
    core = adj.sum(1) >= min_samples
    labels = np.full(dist.shape[0], -1, dtype=np.int64)
    cores = np.flatnonzero(core)
    if cores.size == 0:
        return labels
    link = adj[np.ix_(cores, cores)]
    root = np.arange(cores.size)
    while True:  # propagate the lowest core index through the core graph until it settles
        new = np.where(link, root[None], cores.size).min(1)
        if np.array_equal(new, root):
            break
        root = new
    _, comp = np.unique(root, return_inverse=True)  # components numbered by their lowest core index
    labels[cores] = comp
    border = np.flatnonzero(~core & adj[:, cores].any(1))
    if border.size:
        cand = np.where(adj[np.ix_(border, cores)], labels[cores][None], np.iinfo(np.int64).max)
        labels[border] = cand.min(1)
    return labels


def cluster_channels(acts: torch.Tensor, cfg: CFCAMConfig) -> tuple[np.ndarray, np.ndarray, float, int]:
    """Dominant split and DBSCAN of one image's channels. acts: (K, h, w) → labels (K,), dominant (K,), eps, min_samples."""
    k = acts.shape[0]
    flat = acts.reshape(k, -1).double().cpu().numpy()  # (K, h*w)
    norms = np.linalg.norm(flat, axis=1)
    if cfg.dominant_frac <= 0:
        dominant = np.zeros(k, dtype=bool)
    else:
        dominant = norms >= np.quantile(norms, 1.0 - cfg.dominant_frac)
    labels = np.full(k, DOMINANT, dtype=np.int64)
    rest = np.flatnonzero(~dominant)
    eps, min_samples = 0.0, 0
    if rest.size:
        feats, sq = flat[rest], norms[rest] ** 2
        # Pairwise distances from the Gram matrix: (R, R) memory, not the code's (R, R, h*w) broadcast.
        dist = np.sqrt(np.clip(sq[:, None] + sq[None] - 2 * feats @ feats.T, 0.0, None))
        np.fill_diagonal(dist, 0.0)
        r = rest.size
        off = dist[~np.eye(r, dtype=bool)]
        eps = max(float(np.percentile(off, cfg.eps_percentile)) if off.size else 0.0, 1e-5)
        min_samples = max(2, int(math.floor(cfg.min_samples_frac * r)))
        if cfg.clusterer == "sklearn":
            from sklearn.cluster import DBSCAN  # imported here: scikit-learn costs ~2 CPU-s, the default is "fast"

            labels[rest] = DBSCAN(eps=eps, min_samples=min_samples, metric="precomputed").fit(dist).labels_
        else:
            labels[rest] = dbscan_precomputed(dist, eps, min_samples)
    return labels, dominant, eps, min_samples


def cf_weights(acts: torch.Tensor, grads: torch.Tensor, cfg: CFCAMConfig) -> tuple[Any, ...]:
    """CF-CAM on one image's fixed (A, G): (labels, dominant, α, β, cluster grads, filtered grads, eps, min_samples).

    acts, grads: (K, h, w). α and β are (K,), zero for dropped (noise) channels.
    """
    k, h, w = acts.shape
    device = grads.device
    labels_np, dominant_np, eps, min_samples = cluster_channels(acts, cfg)
    labels, dom = torch.from_numpy(labels_np).to(device), torch.from_numpy(dominant_np).to(device)
    alpha = torch.zeros(k, dtype=grads.dtype, device=device)
    alpha[dom] = grads[dom].mean(dim=(1, 2))
    n_clusters = max(int(labels_np.max()) + 1, 0)
    clustered = labels >= 0
    index = labels[clustered]
    sums = torch.zeros(n_clusters, h, w, dtype=grads.dtype, device=device).index_add_(0, index, grads[clustered])
    sizes = torch.bincount(index, minlength=n_clusters).clamp_min(1).to(grads.dtype)
    raw = sums / sizes[:, None, None]  # (M, h, w)
    filtered = smooth(raw, cfg.filter, cfg.sigma, cfg.sigma_range)
    alpha[clustered] = filtered.mean(dim=(1, 2))[index]  # every member gets its cluster's filtered mean
    kept = labels != -1
    beta = torch.zeros_like(alpha)
    if kept.any():
        beta[kept] = torch.softmax(alpha[kept], 0) if cfg.combine == "softmax" else alpha[kept]
    return labels, dom, alpha, beta, raw, filtered, eps, min_samples


def cf_cam(
    model: nn.Module,
    inputs: torch.Tensor,
    target: Any,
    *,
    layer: str | nn.Module | None = None,
    config: CFCAMConfig = CFCAMConfig(),  # frozen, so one shared default is safe
) -> CFCAMResult:
    """Cluster Filter Class Activation Mapping (CF-CAM): https://arxiv.org/abs/2504.00060

    Args:
        model (`nn.Module`): a classifier in eval mode returning logits (N, C); only read.
        inputs (`torch.Tensor`): images on the model's device.
        target (`int | sequence | None`): class per image; None takes the prediction.
        layer (`str | nn.Module | None`, defaults to `None`): the CAM layer; None uses ``model.cam_layer``.
        config (`CFCAMConfig`, defaults to the authors' settings): dominant share, DBSCAN eps and
            min_samples, the cluster filter and σ, softmax or linear combination, the clusterer.

    Shapes:
        inputs: (N, 3, H, W) → result.map: (N, H, W) in [0, 1]; see ``CFCAMResult`` for the internals.

    >>> from core.cam.models import ShapesCNN
    >>> out = cf_cam(ShapesCNN().eval(), torch.rand(2, 3, 64, 64), 1, layer="block4")
    >>> out.map.shape, out.labels.shape
    (torch.Size([2, 64, 64]), torch.Size([2, 128]))
    """
    if not isinstance(config, CFCAMConfig):
        raise OptiscopeError(f"Expected `config` to be a CFCAMConfig, but got {type(config).__name__}")
    acts, grads, _, target = layer_forward(model, inputs, target, layer=layer)
    parts = [cf_weights(a, g, config) for a, g in zip(acts, grads, strict=True)]
    labels, dominant, alpha, beta, raw_g, filt_g, eps, min_samples = zip(*parts, strict=True)
    beta_t = torch.stack(beta)  # (N, K)
    raw = (beta_t[..., None, None] * acts).sum(1)  # (N, h, w)
    return CFCAMResult(
        map=upsample_normalize(raw, inputs.shape[-2:]),
        raw=raw,
        activations=acts,
        gradients=grads,
        labels=torch.stack(labels),
        dominant=torch.stack(dominant),
        weights=torch.stack(alpha),
        coefficients=beta_t,
        cluster_grads=tuple(raw_g),
        filtered_grads=tuple(filt_g),
        eps=torch.tensor(eps, dtype=torch.float64, device=inputs.device),
        min_samples=torch.tensor(min_samples, device=inputs.device),
        targets=target,
    )


def channel_embedding(activations: torch.Tensor) -> torch.Tensor:
    """The channels of one image in the plane of their first two principal components (PCA by SVD, float64).

    Each channel k is the point vec(A_k) ∈ R^{h·w}; rows are centred over channels, and the coordinates
    are U[:, :2]·S[:2]. Signs follow ``torch.linalg.svd`` (a principal axis is defined up to sign).

    Shapes: activations (K, h, w) → (K, 2).

    >>> channel_embedding(torch.tensor([[[0.0, 0.0]], [[2.0, 2.0]]])).abs().round(decimals=6).tolist()
    [[1.414214, 0.0], [1.414214, 0.0]]
    """
    flat = activations.flatten(1).double()  # (K, h*w)
    u, s, _ = torch.linalg.svd(flat - flat.mean(0), full_matrices=False)
    coords = u[:, :2] * s[:2]
    return F.pad(coords, (0, 2 - coords.shape[1]))  # one channel or one pixel leaves a single axis


def _check_result(result: CFCAMResult) -> None:
    """The fields ``channel_table`` reads: finite float activations (N, K, h, w) and labels, dominant, β (N, K)."""
    acts = getattr(result, "activations", None)
    ok = isinstance(acts, torch.Tensor) and acts.ndim == 4 and acts.is_floating_point() and torch.isfinite(acts).all()
    if not ok or any(t.shape != acts.shape[:2] for t in (result.labels, result.dominant, result.coefficients)):
        raise OptiscopeError(
            "Expected `result` from cf_cam: finite activations (N, K, h, w) with labels, dominant and "
            "coefficients (N, K)"
        )


def channel_table(result: CFCAMResult, *, image: int = 0) -> pd.DataFrame:
    """One row per channel of image ``image``: its PCA coordinates, DBSCAN label, group name and β.

    ``group`` is "dominant", "noise (dropped)" or "cluster m"; rows are in channel order.
    """
    _check_result(result)
    image = check_int("image", image, 0, len(result.labels) - 1)
    labels = result.labels[image].cpu().numpy()
    dominant = result.dominant[image].cpu().numpy()
    xy = channel_embedding(result.activations[image]).cpu().numpy()
    clusters = np.char.add("cluster ", labels.astype(str))
    group = np.where(dominant, "dominant", np.where(labels == -1, "noise (dropped)", clusters))
    beta = result.coefficients[image].double().cpu().numpy()
    return pd.DataFrame(
        {
            "channel": np.arange(len(labels)),
            "pc1": xy[:, 0],
            "pc2": xy[:, 1],
            "label": labels,
            "group": group,
            "dominant": dominant,
            "beta": beta,
        }
    )
