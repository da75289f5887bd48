"""Score a guider's samples, and sweep w for several guiders (the page's background job, the benchmark)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from core.errors import OptiscopeError, check_budget, check_int
from core.runs import last_state

from . import metrics
from .denoisers import MixtureDenoiser, check_target
from .guiders import GuiderConfig
from .sampler import run

MAX_SWEEP_RUNS = 16  # w values × guiders; each run is also held to the denoiser's own budget
DIGITS_SHAPE = (1, 8, 8)


def _is_toy(denoiser) -> bool:
    return isinstance(denoiser, MixtureDenoiser) and len(denoiser.sample_shape) == 1


def reference_samples(denoiser, n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor] | None:
    """Real samples to compare with (on the CPU): drawn from the 2-D mixture, or the held-out digits for 8×8 models.

    None for models of other data (a local pipeline): there is nothing here to compare them with.
    """
    if _is_toy(denoiser):
        gen = torch.Generator().manual_seed(seed)
        means, classes = denoiser.means.cpu(), denoiser.classes.cpu()
        idx = torch.randint(0, len(means), (n,), generator=gen)
        x = means[idx] + denoiser.std * torch.randn((n, means.shape[1]), generator=gen, dtype=torch.float64)
        return x.reshape(n, *denoiser.sample_shape), classes[idx]
    if tuple(denoiser.sample_shape) != DIGITS_SHAPE:
        return None
    from core.data.digits import load_digits_split

    from .models import to_model_range

    data = load_digits_split(0.25, seed=0)
    return to_model_range(data["x_test"])[:n], data["y_test"][:n]


def evaluate(
    denoiser, x: torch.Tensor | np.ndarray, target: torch.Tensor, *, classifier=None, real: torch.Tensor | None = None
) -> dict[str, float]:
    """Every metric that applies to samples ``x`` of ``denoiser`` (2-D toy or images).

    Keys: ``precision``, ``recall`` (k-NN, k = 3, against ``real``, by default 200 `reference_samples`);
    ``mean_radius``, ``accuracy`` (nearest mode), ``coverage`` for the 2-D toy; ``saturation``, ``mean_abs``
    and (with ``classifier``, on the denoiser's device) ``accuracy`` for images. ``x`` may be a `Trace` frame.
    """
    target = check_target(denoiser, target)
    x = torch.as_tensor(x).to(denoiser.device)
    if tuple(x.shape) != (len(target), *denoiser.sample_shape) or not torch.isfinite(x).all():
        raise OptiscopeError(
            f"Expected `x` to be finite samples of shape {(len(target), *denoiser.sample_shape)}, "
            f"but got {tuple(x.shape)}"
        )
    toy = _is_toy(denoiser)
    out = {} if toy else {"saturation": metrics.saturation(x), "mean_abs": metrics.mean_abs(x)}
    if real is None:
        reference = reference_samples(denoiser, 200, seed=1)
        real = None if reference is None else reference[0]
    if real is not None and len(x) > 3 and len(real) > 3:
        out["precision"], out["recall"] = metrics.precision_recall(real.to(x.device), x, k=3)
    if toy:
        out["mean_radius"] = metrics.mean_radius(x)
        out["accuracy"] = metrics.mode_accuracy(x, target, denoiser.means)
        out["coverage"] = metrics.mode_coverage(x, denoiser.means, denoiser.std)
    elif classifier is not None:
        out["accuracy"] = metrics.class_accuracy(x, target, classifier)
    return out


def balanced_labels(num_classes: int, n: int) -> torch.Tensor:
    """``n`` labels cycling through the classes (every class equally often)."""
    return torch.arange(check_int("n", n, 1, 1_000_000)) % check_int("num_classes", num_classes, 1, 100_000)


@dataclass(frozen=True)
class SweepState:
    """Progress of a sweep: the rows of the runs done so far (one dict of metrics per guider and w)."""

    step: int  # runs done
    rows: tuple[dict, ...]
    fraction: float


def sweep(
    denoiser,
    guiders: Mapping[str, GuiderConfig],
    *,
    ws: Sequence[float] = (1.0, 3.0, 5.0, 7.5, 10.0, 15.0),
    n_samples: int = 100,
    steps: int = 25,
    seed: int = 0,
    classifier=None,
) -> Iterator[SweepState]:
    """Sample every guider at every w on the same seed; yields a :class:`SweepState` after each run (the progress).

    Validated when called. Budget: at most 16 runs (w values × guiders), each within the denoiser's budget.

    Args:
        guiders: label -> `GuiderConfig` (its ``w`` is replaced by each of ``ws``).

    >>> from core.guidance import GaussianMixtureDenoiser
    >>> progress = sweep(GaussianMixtureDenoiser(), {"CFG": GuiderConfig("cfg")}, ws=[1.0], n_samples=16, steps=4)
    >>> last = last_state(progress)
    >>> last.rows[0]["guider"], last.rows[0]["model_evals"], last.fraction
    ('CFG', 4, 1.0)
    """
    if not guiders or not all(isinstance(c, GuiderConfig) for c in guiders.values()):
        raise OptiscopeError(f"Expected `guiders` to map labels to GuiderConfig, but got {guiders!r}")
    check_budget("runs (w values × guiders)", len(ws) * len(guiders), MAX_SWEEP_RUNS)
    configs = [(label, dataclasses.replace(c, w=w)) for w in ws for label, c in guiders.items()]
    target = balanced_labels(denoiser.num_classes, check_int("n_samples", n_samples, 4, 10_000))
    seed = check_int("seed", seed, 0, 2**63 - 2)  # the reference samples take seed + 1
    run(denoiser, target, guider=configs[0][1], steps=steps, seed=seed)  # validates what every run shares
    return _sweep_loop(denoiser, configs, target, steps, seed, classifier)


def _sweep_loop(denoiser, configs, target, steps, seed, classifier) -> Iterator[SweepState]:
    reference = reference_samples(denoiser, max(len(target), 200), seed=seed + 1)
    real = None if reference is None else reference[0]
    rows: list[dict] = []
    for label, config in configs:
        state = last_state(run(denoiser, target, guider=config, steps=steps, seed=seed))
        row = {"guider": label, "w": config.w, "model_evals": state.model_evals}
        row.update(evaluate(denoiser, state.x, target, classifier=classifier, real=real))
        rows.append(row)
        yield SweepState(step=len(rows), rows=tuple(rows), fraction=len(rows) / len(configs))
