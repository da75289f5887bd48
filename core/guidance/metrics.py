"""Offline sample metrics: saturation, class accuracy, k-NN precision/recall, and 2-D radius and mode coverage."""

from __future__ import annotations

import torch

from core.errors import OptiscopeError


def saturation(x: torch.Tensor, threshold: float = 1.1) -> float:
    """Share of values beyond ±``threshold`` (data live in [-1, 1]; measured before any clipping).

    The default 1.1, not 1: digit backgrounds sit at −1, so an unguided model already puts ~20% of its
    pixels a hair beyond −1; beyond 1.1 it is 0.1% unguided and ~43% for CFG at w = 15 (notes §4).

    >>> saturation(torch.tensor([[0.5, -1.5, 2.0, 0.0]]))
    0.5
    """
    return (x.abs() > threshold).double().mean().item()


def mean_abs(x: torch.Tensor) -> float:
    """Mean |x| over every value: rises as CFG pushes pixels away from mid-grey (0)."""
    return x.abs().double().mean().item()


@torch.no_grad()
def class_accuracy(x: torch.Tensor, labels: torch.Tensor, classifier) -> float:
    """Share of samples that ``classifier`` (logits, e.g. the zoo's ``digits-classifier``) assigns to their label."""
    return (classifier(x.float()).argmax(1) == labels).double().mean().item()


def precision_recall(real: torch.Tensor, fake: torch.Tensor, k: int = 3) -> tuple[float, float]:
    r"""Improved Precision and Recall (P/R): https://arxiv.org/abs/1904.06991

    A real point's ball has the radius of its k-th nearest real neighbour; precision is the share of fakes inside
    any real ball, recall the share of reals inside any fake ball (fake balls from fake neighbours).

    Shapes:
        real: (R, ...), fake: (F, ...), flattened per sample.

    >>> pts = torch.tensor([[0.0], [1.0], [2.0], [3.0]])
    >>> precision_recall(pts, pts + 0.1, k=1)
    (1.0, 1.0)
    """
    if k < 1 or len(real) <= k or len(fake) <= k:
        raise OptiscopeError(f"Expected more than k={k} real and fake samples, but got {len(real)} and {len(fake)}.")
    real, fake = real.reshape(len(real), -1).double(), fake.reshape(len(fake), -1).double()

    def covered(ref: torch.Tensor, query: torch.Tensor) -> float:
        radii = torch.cdist(ref, ref).kthvalue(k + 1, dim=1).values  # k+1: the point itself is at distance 0
        return (torch.cdist(query, ref) <= radii[None, :]).any(dim=1).double().mean().item()

    return covered(real, fake), covered(fake, real)


def mean_radius(x: torch.Tensor) -> float:
    """2-D toy: mean ‖x‖ of the samples (the modes sit at the mixture's radius)."""
    return torch.linalg.vector_norm(x.double(), dim=1).mean().item()


def nearest_mode(x: torch.Tensor, means: torch.Tensor) -> torch.Tensor:
    """Index of the nearest mixture mean per sample, shape (N,)."""
    return torch.cdist(x.reshape(len(x), -1).double(), means.reshape(len(means), -1).double()).argmin(1)


def mode_accuracy(x: torch.Tensor, labels: torch.Tensor, means: torch.Tensor) -> float:
    """2-D toy class accuracy: share of samples whose nearest mode is their class's."""
    return (nearest_mode(x, means) == labels).double().mean().item()


def mode_coverage(x: torch.Tensor, means: torch.Tensor, std: float, within: float = 3.0) -> float:
    """Share of modes with at least one sample within ``within``·std of their mean."""
    dist = torch.cdist(means.reshape(len(means), -1).double(), x.reshape(len(x), -1).double())  # (M, N)
    return (dist.min(dim=1).values <= within * std).double().mean().item()
