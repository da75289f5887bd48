"""The lab's data: scikit-learn's bundled tabular sets (no download), min-max scaled, and image patches as features."""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import torch
from sklearn import datasets

from core.errors import OptiscopeError, check_choice, check_int

# name -> (loader, task); diabetes is the regression set, the others classify.
_LOADERS = {
    "cancer": (datasets.load_breast_cancer, "classification"),
    "wine": (datasets.load_wine, "classification"),
    "diabetes": (datasets.load_diabetes, "regression"),
}
DATASETS = {
    "cancer": "Breast cancer (30 features, 2 classes)",
    "wine": "Wine (13 features, 3 classes)",
    "diabetes": "Diabetes (10 features, regression)",
}
TEST_FRACTION = 0.2
SPLIT_SEED = 0


@dataclass(frozen=True)
class Tabular:
    """A split, min-max scaled to [0, 1] on the training rows; regression targets standardised.

    Shapes:
        x_train: (n_train, d) float32; y_train: (n_train,) int64 classes or float32 targets; the same for test.
    """

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    feature_names: tuple[str, ...]
    classes: tuple[str, ...]  # empty for a regression

    @property
    def outputs(self) -> int:
        return max(len(self.classes), 1)


@functools.cache
def tabular(name: str) -> Tabular:
    """The bundled data set ``name`` (``"cancer"``, ``"wine"`` or ``"diabetes"``), split 80/20 with a fixed seed.

    >>> data = tabular("wine")
    >>> tuple(data.x_test.shape), data.classes
    ((36, 13), ('class_0', 'class_1', 'class_2'))
    """
    loader, task = _LOADERS[check_choice("dataset", name, _LOADERS)]
    bunch = loader()
    x, y = np.asarray(bunch.data, dtype=np.float64), np.asarray(bunch.target)
    order = np.random.default_rng(SPLIT_SEED).permutation(len(x))
    n_test = int(round(TEST_FRACTION * len(x)))
    test, train = order[:n_test], order[n_test:]
    low, high = x[train].min(0), x[train].max(0)
    x = (x - low) / np.where(high > low, high - low, 1.0)
    if task == "regression":
        y = (y - y[train].mean()) / y[train].std()
        y_tensor = torch.tensor(y, dtype=torch.float32)
    else:
        y_tensor = torch.tensor(y, dtype=torch.long)
    classes = tuple(str(c) for c in bunch.target_names) if task == "classification" else ()
    xt = torch.tensor(x, dtype=torch.float32)
    names = tuple(str(f) for f in bunch.feature_names)
    return Tabular(name, xt[train], y_tensor[train], xt[test], y_tensor[test], names, classes)


MAX_SIDE, MAX_CHANNELS = 1024, 16  # an image's side and channels: at most 1.7e7 feature ids (134 MB)


def patch_features(size: int, patch: int, *, channels: int = 3, device: torch.device | str = "cpu") -> torch.Tensor:
    """Square patches as the features of an image: one id per patch, shared by its pixels and channels.

    >>> patch_features(4, 2, channels=1)[0]
    tensor([[0, 0, 1, 1],
            [0, 0, 1, 1],
            [2, 2, 3, 3],
            [2, 2, 3, 3]])
    """
    size, patch = check_int("size", size, 1, MAX_SIDE), check_int("patch", patch, 1, size)
    if size % patch:
        raise OptiscopeError(f"Expected `patch` to divide the image side {size}, but got {patch}")
    channels = check_int("channels", channels, 1, MAX_CHANNELS)
    row = torch.arange(size, device=device) // patch  # (size,)
    grid = row[:, None] * (size // patch) + row[None, :]  # (size, size)
    return grid.expand(channels, size, size).contiguous()
