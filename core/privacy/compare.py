"""DP-GD and DIFF2-GD side by side at the same (ε, δ), over seeds: the curves the page draws, as numpy arrays."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from core.errors import check_int
from core.privacy.config import PrivateConfig
from core.privacy.data import Dataset, load
from core.privacy.dynamics import run

METHODS = {"dp-gd": "DP-GD", "diff2": "DIFF2-GD"}
MAX_SEEDS = 10
FIELDS = ("loss", "grad_norm", "error", "epsilon")


@dataclass(frozen=True)
class Comparison:
    """Per method, per seed, per round: ``curves[method][field]`` with field in :data:`FIELDS`.

    Shapes:
        curves[method][field]: (S, R) (NaN after a run diverged), restarts: (R,) bool for DIFF2
    """

    curves: dict[str, dict[str, np.ndarray]]
    restarts: np.ndarray
    diverged: dict[str, int]  # seeds whose run blew up


def compare(
    model: str, data: Dataset, *, config: PrivateConfig, steps: int, n_seeds: int = 3, device=None
) -> Comparison:
    """DP-GD (``restart = 1``) and DIFF2-GD (``config.restart``) on seeds 0..n_seeds-1, otherwise the same config.

    >>> from core.privacy.data import load
    >>> c = compare("logistic", load("unit-logistic", n_samples=500), config=PrivateConfig(restart=5), steps=10, n_seeds=2)
    >>> c.curves["diff2"]["error"].shape, c.restarts[:6].tolist()
    ((2, 10), [True, False, False, False, False, True])
    """
    n_seeds = check_int("n_seeds", n_seeds, 1, MAX_SEEDS)
    schedules = {"dp-gd": dataclasses.replace(config, restart=1), "diff2": config}
    curves, diverged = {}, {}
    for method, schedule in schedules.items():
        runs = [list(run(model, data, config=schedule, steps=steps, seed=s, device=device)) for s in range(n_seeds)]
        curves[method] = {
            f: np.array([_padded([getattr(s, f) for s in states], steps) for states in runs]) for f in FIELDS
        }
        diverged[method] = sum(states[-1].diverged for states in runs)
    restarts = np.arange(steps) % config.restart == 0
    return Comparison(curves, restarts, diverged)


def compare_on(
    dataset: str, model: str, n_samples: int, options: tuple, steps: int, n_seeds: int, device: str | None = None
) -> tuple[tuple[int, ...], Comparison]:
    """:func:`compare` on a registry dataset, the config given as ``(field, value)`` pairs: a call named by plain
    values, which a page can cache and ship. Returns the data's shape (n, d) and the comparison."""
    data = load(dataset, n_samples=n_samples)
    config = PrivateConfig(**dict(options))
    return tuple(data.inputs.shape), compare(model, data, config=config, steps=steps, n_seeds=n_seeds, device=device)


def _padded(values: list[float], steps: int) -> np.ndarray:
    """A run's curve, NaN past the round where it stopped (a diverged run's blown-up value is dropped too)."""
    out = np.full(steps, np.nan)
    finite = np.isfinite(values)
    out[: len(values)] = np.where(finite, values, np.nan)
    return out
