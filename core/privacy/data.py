"""The lab's data (scikit-learn's bundled sets or a generated one) and its two models as pure functions."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from sklearn import datasets as sk
from torch.func import grad_and_value, vmap

from core.errors import check_choice, check_int

# Registry key -> display label. California housing is a download, so it is not offered.
DATASETS = {
    "unit-logistic": "generated classes, rows of unit norm (the notes' problem)",
    "breast_cancer": "breast cancer (569 × 30, classes)",
    "wine": "wine, class 0 vs rest (178 × 13)",
    "diabetes": "diabetes (442 × 10, regression)",
}
MODELS = {"logistic": "logistic / least squares", "mlp": "MLP d → 10 → 1 (softplus)"}
HIDDEN = 10  # the authors' fc_10
MAX_GENERATED = 100_000
TASKS = ("classes", "regression")  # binary cross-entropy, squared error


@dataclass(frozen=True)
class Dataset:
    """Features and targets; ``task`` is "classes" (binary cross-entropy) or "regression" (squared error).

    Shapes:
        inputs: (N, d), target: (N,)
    """

    inputs: torch.Tensor
    target: torch.Tensor
    task: str


def load(name: str, *, n_samples: int = 10_000, seed: int = 0) -> Dataset:
    """A dataset by registry key, in float64: standardised features (unit-norm rows for the generated set).

    ``n_samples`` and ``seed`` only shape the generated set (make_classification with 20 features).

    >>> load("wine").inputs.shape
    torch.Size([178, 13])
    """
    check_choice("dataset", name, DATASETS)
    if name == "unit-logistic":
        n = check_int("n_samples", n_samples, 2, MAX_GENERATED)
        x, y = sk.make_classification(
            n_samples=n, n_features=20, random_state=check_int("seed", seed, 0, 2**32 - 1)
        )  # sklearn's range
        x = x / np.linalg.norm(x, axis=1, keepdims=True)  # per-sample gradient <= sqrt(2), smoothness 1/2
        return _dataset(x, y, "classes")
    bunch = {"breast_cancer": sk.load_breast_cancer, "wine": sk.load_wine, "diabetes": sk.load_diabetes}[name]()
    x = (bunch.data - bunch.data.mean(0)) / bunch.data.std(0)
    if name == "diabetes":
        return _dataset(x, (bunch.target - bunch.target.mean()) / bunch.target.std(), "regression")
    return _dataset(x, bunch.target == 0, "classes")


def _dataset(x: np.ndarray, y: np.ndarray, task: str) -> Dataset:
    return Dataset(torch.as_tensor(x, dtype=torch.float64), torch.as_tensor(y, dtype=torch.float64), task)


def n_parameters(model: str, d: int) -> int:
    """The size of the flat parameter vector: d + 1 (logistic) or (d + 1)·10 + 11 (MLP)."""
    return d + 1 if model == "logistic" else (d + 1) * HIDDEN + HIDDEN + 1


def init_parameters(model: str, d: int, *, seed: int, like: torch.Tensor) -> torch.Tensor:
    """Zeros for the logistic model; torch's default uniform ±1/√fan_in for the MLP (seeded, on ``like``'s device)."""
    if model == "logistic":
        return torch.zeros(d + 1, dtype=like.dtype, device=like.device)
    g = torch.Generator(device=like.device).manual_seed(seed)
    bounds = [1 / math.sqrt(d)] * ((d + 1) * HIDDEN) + [1 / math.sqrt(HIDDEN)] * (HIDDEN + 1)
    bound = torch.tensor(bounds, dtype=like.dtype, device=like.device)
    return (torch.rand(len(bounds), generator=g, dtype=like.dtype, device=like.device) * 2 - 1) * bound


def predictor(model: str, d: int) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """``f(params, x) -> score`` for one sample x of shape (d,)."""
    if model == "logistic":
        return lambda p, x: x @ p[:d] + p[d]

    def mlp(p: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        w1 = p[: d * HIDDEN].view(HIDDEN, d)
        b1 = p[d * HIDDEN : (d + 1) * HIDDEN]
        w2, b2 = p[(d + 1) * HIDDEN : (d + 2) * HIDDEN], p[-1]
        return torch.nn.functional.softplus(w1 @ x + b1) @ w2 + b2

    return mlp


def per_sample_gradients(
    model: str, d: int, task: str
) -> Callable[[torch.Tensor, torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
    """``(params, inputs, target) -> (per-sample gradients (N, D), per-sample losses (N,))``.

    The MLP's come from ``torch.func.vmap(grad)``; the logistic model's in closed form, (f(x_i) − y_i)·[x_i, 1] with
    f the sigmoid (classes) or the identity (regression): the same numbers (tests check it) at a fraction of the cost.
    """
    if model == "mlp":
        return vmap(grad_and_value(sample_loss(model, d, task)), in_dims=(None, 0, 0))

    def logistic(p: torch.Tensor, inputs: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        score = inputs @ p[:d] + p[d]  # (N,)
        if task == "classes":
            residual = torch.sigmoid(score) - target
            losses = torch.nn.functional.binary_cross_entropy_with_logits(score, target, reduction="none")
        else:
            residual = score - target
            losses = 0.5 * residual**2
        return torch.cat([inputs, torch.ones_like(score)[:, None]], dim=1) * residual[:, None], losses

    return logistic


def sample_loss(model: str, d: int, task: str) -> Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]:
    """``loss(params, x, y)`` of one sample: binary cross-entropy on logits, or half the squared error."""
    f = predictor(model, d)
    if task == "classes":
        return lambda p, x, y: torch.nn.functional.binary_cross_entropy_with_logits(f(p, x), y)
    return lambda p, x, y: 0.5 * (f(p, x) - y) ** 2
