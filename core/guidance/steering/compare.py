"""Side-by-side runs at equal model calls, scored by judges that are not the evaluators (the page's jobs, the bench)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import torch

from core.errors import OptiscopeError, check_budget, check_int
from core.runs import last_state

from ..denoisers import MixtureDenoiser
from ..metrics import mean_radius, mode_accuracy, saturation
from .base import CFG
from .evaluators import judge_accuracy, mixture_nll
from .run import model_calls, run

MAX_RUNS = 16


def equal_nfe_cfg(guider, denoiser, *, steps: int, w: float) -> tuple[CFG, int]:
    """CFG at scale ``w`` with as many model calls as ``guider`` over ``steps`` (2 per step, rounded up)."""
    calls = model_calls(guider, denoiser, steps=steps)
    return CFG(w=w), max(1, -(-calls // 2))


def scores(denoiser, x: torch.Tensor, target: torch.Tensor, *, judge=None) -> dict[str, float]:
    """2-D toy: radius, accuracy (nearest mode), sample NLL; digits: the judge's accuracy and saturation."""
    if isinstance(denoiser, MixtureDenoiser) and len(denoiser.sample_shape) == 1:
        accuracy = mode_accuracy(x, target, denoiser.means)
        return {"radius": mean_radius(x), "accuracy": accuracy, "NLL": mixture_nll(denoiser, x)}
    out = {"saturation": saturation(x)}
    return out | ({"judge accuracy": judge_accuracy(judge, x, target)} if judge is not None else {})


@dataclass(frozen=True)
class CompareState:
    """Progress of a comparison: one row of scores and the final samples per run done so far."""

    step: int
    rows: tuple[dict, ...]
    samples: tuple[torch.Tensor, ...]
    fraction: float


def compare(
    denoiser, target, *, runs: Mapping[str, tuple[object, int]], seed: int = 0, judge=None
) -> Iterator[CompareState]:
    """Run each ``label -> (guider, steps)`` from the same seeded start and score the final samples.

    Validated when called (every run is checked before the first one starts). Budget: 16 runs, each
    within the denoiser's own budget.
    """
    if not runs:
        raise OptiscopeError("Expected `runs` to hold at least one (guider, steps) pair, but got none")
    check_budget("runs", len(runs), MAX_RUNS)
    for guider, steps in runs.values():
        run(denoiser, target, guider=guider, steps=check_int("steps", steps, 1, 1000), seed=seed)
    return _compare(denoiser, torch.as_tensor(target), runs, seed, judge)


def _compare(denoiser, target, runs, seed, judge) -> Iterator[CompareState]:
    rows, samples = [], []
    for label, (guider, steps) in runs.items():
        last = last_state(run(denoiser, target, guider=guider, steps=steps, seed=seed))
        x = last.x.cpu()
        rows.append(
            {"sampler": label, "steps": steps, "model calls": last.model_evals}
            | scores(denoiser, x, target.cpu(), judge=judge)
        )
        samples.append(x)
        yield CompareState(len(rows), tuple(rows), tuple(samples), len(rows) / len(runs))
