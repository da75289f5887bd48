"""Digits logistic and softmax regression with their exact Hessians and the approximations GNS uses."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from core.data.digits import _digits
from core.errors import check_positive


@dataclass(frozen=True)
class Problem:
    """A smooth objective with named Hessian approximations: ``hessians[name](x) -> (d, d)``."""

    loss: Callable[[torch.Tensor], torch.Tensor]
    hessians: dict[str, Callable[[torch.Tensor], torch.Tensor]]
    d: int
    dtype: torch.dtype = torch.float64  # of the data: a start x₀ is cast to it


def _features(dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    images, labels = _digits()
    x = images.reshape(len(labels), -1).to(dtype)
    return torch.cat([x, torch.ones(len(x), 1, dtype=dtype)], 1), labels  # (n, 65) with a bias column


def logistic_digits(*, l2: float = 1e-3, dtype: torch.dtype = torch.float64) -> Problem:
    """Even vs odd digits, f(w) = mean log(1 + exp(−yᵢ xᵢᵀw)) + (l2/2)‖w‖² with yᵢ = ±1 (all 1,797 images)."""
    l2 = check_positive("l2", l2, strict=False)
    x, labels = _features(dtype)
    y = 1.0 - 2.0 * (labels % 2).to(dtype)
    n, d = x.shape
    eye = torch.eye(d, dtype=dtype)

    def loss(w: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.softplus(-y * (x @ w)).mean() + 0.5 * l2 * w.square().sum()

    def exact(w: torch.Tensor) -> torch.Tensor:
        s = torch.sigmoid(x @ w)
        return (x.T * (s * (1 - s))) @ x / n + l2 * eye

    def fisher(w: torch.Tensor) -> torch.Tensor:
        per_sample = x * (-y * torch.sigmoid(-y * (x @ w)))[:, None]  # (n, d) gradients of the data term
        return per_sample.T @ per_sample / n + l2 * eye

    bound = x.T @ x / (4 * n) + l2 * eye
    return Problem(loss, {"exact": exact, "fisher": fisher, "gauss_newton_bound": lambda w: bound}, d, dtype)


def softmax_digits(*, l2: float = 1e-3, dtype: torch.dtype = torch.float64) -> Problem:
    """10-class softmax regression on all digits, w: (K·65,) flattened class-major, L2 (l2/2)‖w‖²."""
    l2 = check_positive("l2", l2, strict=False)
    x, labels = _features(dtype)
    n, p = x.shape
    k = 10
    eye = torch.eye(k * p, dtype=dtype)

    def logits(w: torch.Tensor) -> torch.Tensor:
        return x @ w.reshape(k, p).T  # (n, K)

    def loss(w: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.cross_entropy(logits(w), labels) + 0.5 * l2 * w.square().sum()

    def exact(w: torch.Tensor) -> torch.Tensor:
        prob = torch.softmax(logits(w), 1)
        weights = torch.diag_embed(prob) - prob[:, :, None] * prob[:, None, :]  # (n, K, K)
        return torch.einsum("ikl,ia,ib->kalb", weights, x, x).reshape(k * p, k * p) / n + l2 * eye

    def fisher(w: torch.Tensor) -> torch.Tensor:
        residual = torch.softmax(logits(w), 1) - torch.nn.functional.one_hot(labels, k).to(dtype)
        per_sample = (residual[:, :, None] * x[:, None, :]).reshape(n, k * p)
        return per_sample.T @ per_sample / n + l2 * eye

    centering = torch.eye(k, dtype=dtype) - 1.0 / k
    bohning = torch.kron(0.5 * centering, x.T @ x / n) + l2 * eye
    return Problem(loss, {"exact": exact, "fisher": fisher, "bohning_bound": lambda w: bohning}, k * p, dtype)
