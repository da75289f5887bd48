"""Cluster Filter Class Activation Mapping (CF-CAM), as the authors' code (jerryp-hfut/CF-CAM) does it.

1. Channels whose activation norm is in the top ``dominant_frac`` are *dominant*: they keep α_k = mean(G_k).
2. DBSCAN (scikit-learn's rules) clusters the other channels by their flattened activations (Euclidean); eps is the
   ``eps_percentile`` of their pairwise distances, min_samples = max(2, ⌊min_samples_frac·|R|⌋).
   Noise channels (label −1) are dropped from the map.
3. Each cluster's mean gradient is filtered (an image-sized Gaussian or the code's "bilateral" kernel,
   zero-padded ``same`` convolution) and every member gets α_k = mean of the filtered map.
4. β = softmax(α) over the kept channels (or β = α with ``combine="linear"``); map = ReLU(Σ β_k A_k).

With ``dominant_frac=1`` and ``combine="linear"`` every channel keeps its Grad-CAM weight: exactly Grad-CAM.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.cluster import DBSCAN
from torch import nn

from core.cam.gradcam import layer_forward, upsample_normalize

FILTERS = (None, "gaussian", "bilateral")
COMBINES = ("softmax", "linear")
DOMINANT = -2  # label of dominant channels: they skip clustering


@dataclass(frozen=True)
class CFCAMConfig:
    dominant_frac: float = 0.25  # top quarter by activation norm (the code's 75th percentile)
    eps_percentile: float = 25.0  # of the non-dominant channels' pairwise distances
    min_samples_frac: float = 0.05  # DBSCAN min_samples = max(2, ⌊frac·|R|⌋)
    filter: str | None = "gaussian"  # None, "gaussian" or "bilateral" (the code's global-mean range term)
    sigma: float = 5.0  # spatial σ in layer pixels (the code's σ_s = 5)
    sigma_range: float = 0.1  # bilateral range σ_r (the code's value)
    combine: str = "softmax"  # "softmax" (reference) or "linear"
    clusterer: str = "fast"  # "fast" (same labels, no per-call overhead) or "sklearn"

    def __post_init__(self):
        if not 0.0 <= self.dominant_frac <= 1.0:
            raise ValueError(f"Expected `dominant_frac` between 0.0 and 1.0, but got {self.dominant_frac}.")
        if not 0.0 <= self.eps_percentile <= 100.0:
            raise ValueError(f"Expected `eps_percentile` between 0 and 100, but got {self.eps_percentile}.")
        if not 0.0 <= self.min_samples_frac <= 1.0:
            raise ValueError(f"Expected `min_samples_frac` between 0.0 and 1.0, but got {self.min_samples_frac}.")
        if self.filter not in FILTERS:
            raise ValueError(f"Expected `filter` in {FILTERS}, but got {self.filter!r}.")
        if not self.sigma > 0 or not math.isfinite(self.sigma):
            raise ValueError(f"Expected `sigma` > 0, but got {self.sigma}.")
        if not self.sigma_range > 0:
            raise ValueError(f"Expected `sigma_range` > 0, but got {self.sigma_range}.")
        if self.combine not in COMBINES:
            raise ValueError(f"Expected `combine` in {COMBINES}, but got {self.combine!r}.")
        if self.clusterer not in ("fast", "sklearn"):
            raise ValueError(f"Expected `clusterer` in ('fast', 'sklearn'), but got {self.clusterer!r}.")


@dataclass(frozen=True)
class CFCAMResult:
    """CF-CAM maps and the internals behind them (all detached).

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


def smooth(grads: torch.Tensor, kind: str | None, sigma: float, sigma_range: float = 0.1) -> torch.Tensor:
    """The code's cluster filter: one image-sized kernel per map, normalised, zero-padded ``same`` convolution.

    ``bilateral`` multiplies the spatial Gaussian by exp(−(g − ḡ)²/2σ_r²) with the map's *global* mean ḡ
    (so it is not a per-pixel bilateral filter). grads: (M, h, w) → (M, h, w), all maps in one call.

    >>> smooth(torch.ones(2, 4, 4), None, 1.0).sum().item()
    32.0
    """
    if kind is None or grads.shape[0] == 0:
        return grads
    m, h, w = grads.shape
    # Odd kernel sides (h or h + 1) keep `same` padding symmetric; the code's kernel is exactly (h, w).
    kh, kw = h | 1, w | 1
    ys = torch.arange(kh, dtype=grads.dtype) - (kh - 1) / 2
    xs = torch.arange(kw, dtype=grads.dtype) - (kw - 1) / 2
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
    flat = acts.reshape(k, -1).double().numpy()  # (K, h*w)
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
            labels[rest] = DBSCAN(eps=eps, min_samples=min_samples, metric="precomputed").fit(dist).labels_
        else:
            labels[rest] = dbscan_precomputed(dist, eps, min_samples)
    return labels, dominant, eps, min_samples


def cf_weights(acts: torch.Tensor, grads: torch.Tensor, cfg: CFCAMConfig):
    """CF-CAM on one image's fixed (A, G): (labels, dominant, α, β, cluster grads, filtered grads, eps, min_samples).

    acts, grads: (K, h, w). α and β are (K,), zero for dropped (noise) channels.
    """
    k = acts.shape[0]
    labels, dominant, eps, min_samples = cluster_channels(acts, cfg)
    alpha = torch.zeros(k, dtype=grads.dtype)
    dom = torch.from_numpy(dominant)
    alpha[dom] = grads[dom].mean(dim=(1, 2))
    n_clusters = max(int(labels.max()) + 1, 0)
    clustered = torch.from_numpy(labels >= 0)
    index = torch.from_numpy(labels[labels >= 0])
    h, w = acts.shape[1:]
    sums = torch.zeros(n_clusters, h, w, dtype=grads.dtype).index_add_(0, index, grads[clustered])
    raw = sums / torch.bincount(index, minlength=n_clusters).clamp_min(1)[:, None, None].to(grads.dtype)  # (M, h, w)
    filtered = smooth(raw, cfg.filter, cfg.sigma, cfg.sigma_range)
    alpha[clustered] = filtered.mean(dim=(1, 2))[index]  # every member gets its cluster's filtered mean
    kept = torch.from_numpy(labels != -1)
    beta = torch.zeros_like(alpha)
    if kept.any():
        beta[kept] = torch.softmax(alpha[kept], 0) if cfg.combine == "softmax" else alpha[kept]
    return torch.from_numpy(labels), dom, alpha, beta, raw, filtered, eps, min_samples


def cf_cam(
    model: nn.Module,
    layer: str | nn.Module | None,
    x: torch.Tensor,
    target=None,
    *,
    dominant_frac: float = 0.25,
    eps_percentile: float = 25.0,
    min_samples_frac: float = 0.05,
    filter: str | None = "gaussian",
    sigma: float = 5.0,
    sigma_range: float = 0.1,
    combine: str = "softmax",
    clusterer: str = "fast",
) -> CFCAMResult:
    """Cluster Filter Class Activation Mapping (CF-CAM): https://arxiv.org/abs/2504.00060

    Args:
        model (`nn.Module`): a classifier in eval mode returning logits (N, C).
        layer (`str | nn.Module | None`): the CAM layer; None uses ``model.cam_layer``.
        x (`torch.Tensor`): images.
        target (`int | sequence | None`, defaults to `None`): class per image; None takes the prediction.
        dominant_frac (`float`, defaults to `0.25`): share of channels (by activation norm) kept unclustered.
        eps_percentile (`float`, defaults to `25`): DBSCAN eps as this percentile of pairwise distances.
        min_samples_frac (`float`, defaults to `0.05`): DBSCAN min_samples as a share of clustered channels.
        filter (`str | None`, defaults to `"gaussian"`): cluster-gradient filter: None, gaussian, bilateral.
        sigma (`float`, defaults to `5.0`): spatial σ of the filter, in layer pixels.
        sigma_range (`float`, defaults to `0.1`): range σ of the bilateral filter.
        combine (`str`, defaults to `"softmax"`): softmax over α (the code) or linear (Grad-CAM-like).
        clusterer (`str`, defaults to `"fast"`): ``dbscan_precomputed`` or scikit-learn's DBSCAN (same labels).

    Shapes:
        x: (N, 3, H, W) → result.map: (N, H, W) in [0, 1]; see ``CFCAMResult`` for the internals.

    >>> from core.cam.models import ShapesCNN
    >>> out = cf_cam(ShapesCNN().eval(), "block4", torch.rand(2, 3, 64, 64), 1)
    >>> out.map.shape, out.labels.shape
    (torch.Size([2, 64, 64]), torch.Size([2, 128]))
    """
    cfg = CFCAMConfig(dominant_frac, eps_percentile, min_samples_frac, filter, sigma, sigma_range, combine, clusterer)
    acts, grads, _, target = layer_forward(model, layer, x, target)
    parts = [cf_weights(a, g, cfg) for a, g in zip(acts, grads, strict=True)]
    labels, dominant, alpha, beta, raw_g, filt_g, eps, min_samples = zip(*parts, strict=True)
    beta_t = torch.stack(beta)  # (N, K)
    raw = (beta_t[..., None, None] * acts).sum(1)  # (N, h, w)
    return CFCAMResult(
        map=upsample_normalize(raw, x.shape[-2:]),
        raw=raw,
        activations=acts,
        gradients=grads,
        labels=torch.stack(labels),
        dominant=torch.stack(dominant),
        weights=torch.stack(alpha),
        coefficients=beta_t,
        cluster_grads=tuple(raw_g),
        filtered_grads=tuple(filt_g),
        eps=torch.tensor(eps),
        min_samples=torch.tensor(min_samples),
        targets=target,
    )
