"""scikit-learn's 8×8 digits (shipped with the package, no download) as torch tensors."""

from __future__ import annotations

from functools import lru_cache

import torch

from core.errors import OptiscopeError


@lru_cache(maxsize=1)
def _digits() -> tuple[torch.Tensor, torch.Tensor]:
    from sklearn.datasets import load_digits

    data = load_digits()
    images = torch.tensor(data.images, dtype=torch.float32) / 16.0  # (1797, 8, 8) in [0, 1]
    labels = torch.tensor(data.target, dtype=torch.long)
    return images, labels


def load_digits_split(test_fraction: float = 0.25, seed: int = 0) -> dict[str, torch.Tensor]:
    """Digits images in [0, 1], shape (n, 8, 8), split reproducibly into train and test.

    Returns a dict with keys ``x_train``, ``y_train``, ``x_test``, ``y_test``.
    """
    if not 0.0 < test_fraction < 1.0:
        raise OptiscopeError(f"Expected `test_fraction` in (0, 1), but got {test_fraction}.")
    images, labels = _digits()
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))
    n_test = int(round(test_fraction * len(labels)))
    test, train = order[:n_test], order[n_test:]
    return {"x_train": images[train], "y_train": labels[train], "x_test": images[test], "y_test": labels[test]}
