"""Score a guider's samples, and sweep w for several guiders (the page's background job, the benchmark)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch

from . import metrics
from .denoisers import MixtureDenoiser
from .guiders import make_guider
from .sampler import run


def reference_samples(denoiser, n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Real samples to compare with: drawn from a mixture, or the held-out digits for image models."""
    gen = torch.Generator().manual_seed(seed)
    if isinstance(denoiser, MixtureDenoiser) and len(denoiser.sample_shape) == 1:
        idx = torch.randint(0, len(denoiser.means), (n,), generator=gen)
        x = denoiser.means[idx] + denoiser.std * torch.randn(
            (n, denoiser.means.shape[1]), generator=gen, dtype=torch.float64
        )
        return x.reshape(n, *denoiser.sample_shape), denoiser.classes[idx]
    from core.data.digits import load_digits_split

    from .models import to_model_range

    data = load_digits_split(0.25, seed=0)
    return to_model_range(data["x_test"])[:n], data["y_test"][:n]


def evaluate(
    denoiser, x: torch.Tensor, labels: torch.Tensor, classifier=None, real: torch.Tensor | None = None
) -> dict:
    """Every metric that applies to samples ``x`` of ``denoiser`` (2-D toy or images).

    Keys: ``precision``, ``recall`` (when ``real`` is given); ``mean_radius``, ``accuracy`` (nearest mode),
    ``coverage`` for the 2-D toy; ``saturation``, ``mean_abs`` and (with ``classifier``) ``accuracy`` for images.
    """
    toy = isinstance(denoiser, MixtureDenoiser) and len(denoiser.sample_shape) == 1
    out = {} if toy else {"saturation": metrics.saturation(x), "mean_abs": metrics.mean_abs(x)}
    if real is not None and len(x) > 3 and len(real) > 3:
        out["precision"], out["recall"] = metrics.precision_recall(real, x, k=3)
    if toy:
        means = denoiser.means
        out["mean_radius"] = metrics.mean_radius(x)
        out["accuracy"] = metrics.mode_accuracy(x, labels, means)
        out["coverage"] = metrics.mode_coverage(x, means, denoiser.std)
    elif classifier is not None:
        out["accuracy"] = metrics.class_accuracy(x, labels, classifier)
    return out


def balanced_labels(num_classes: int, n: int) -> torch.Tensor:
    """``n`` labels cycling through the classes (every class equally often)."""
    return torch.arange(n) % num_classes


def sweep(
    denoiser,
    ws: Sequence[float],
    guiders: dict[str, dict],
    *,
    n: int = 100,
    steps: int = 25,
    seed: int = 0,
    classifier=None,
) -> Iterator[dict]:
    """Sample every guider at every w on the same seed and yield one row of metrics per run (the progress signal).

    Args:
        guiders: label -> keyword arguments of `make_guider` (without ``w``), e.g. ``{"CFG": {"name": "cfg"}}``.

    >>> from core.guidance import GaussianMixtureDenoiser
    >>> rows = list(sweep(GaussianMixtureDenoiser(), [1.0], {"CFG": {"name": "cfg"}}, n=16, steps=4))
    >>> rows[0]["guider"], rows[0]["model_evals"]
    ('CFG', 4)
    """
    labels = balanced_labels(denoiser.num_classes, n)
    real, _ = reference_samples(denoiser, max(n, 200), seed=seed + 1)
    total = len(ws) * len(guiders)
    done = 0
    for w in ws:
        for label, kwargs in guiders.items():
            state = run(denoiser, make_guider(w=float(w), **kwargs), labels, steps=steps, seed=seed)
            done += 1
            row = {"guider": label, "w": float(w), "model_evals": state.model_evals, "progress": done / total}
            row.update(evaluate(denoiser, state.x, labels, classifier, real))
            yield row
