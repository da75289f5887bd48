"""A whole guided run as numpy arrays for plotting: every step stacked, NaN where a branch was skipped."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import torch

from core.errors import OptiscopeError, check_budget, check_int, check_positive

from .sampler import GuidanceState

MAX_TRACE_VALUES = 2_000_000  # steps × samples × sample size: six float32 fields ≈ 48 MB
TENSOR_FIELDS = ("x", "x0_cond", "x0_uncond", "x0_guided", "delta_parallel", "delta_orthogonal")


@dataclass(frozen=True)
class Trace:
    """Every step of one run, float32 numpy. Fields of steps that skipped the unconditional branch are NaN.

    Shapes (T steps, N samples): x, x0_cond, x0_uncond, x0_guided, delta_parallel, delta_orthogonal:
    (T, N, *sample_shape); norm_parallel, norm_orthogonal, cos: (T, N); level, model_evals: (T,).
    """

    x: np.ndarray
    x0_cond: np.ndarray
    x0_uncond: np.ndarray
    x0_guided: np.ndarray
    delta_parallel: np.ndarray
    delta_orthogonal: np.ndarray
    norm_parallel: np.ndarray
    norm_orthogonal: np.ndarray
    cos: np.ndarray
    level: np.ndarray
    model_evals: np.ndarray

    def per_step(self) -> dict[str, np.ndarray]:
        """Means over the samples per step: ‖Δ∥‖, ‖Δ⊥‖, cos(D_c, D_u) (NaN where skipped) and the model calls so far."""
        return {
            "step": np.arange(len(self.level)),
            "‖Δ∥‖": self.norm_parallel.mean(axis=1),
            "‖Δ⊥‖": self.norm_orthogonal.mean(axis=1),
            "cos(D_c, D_u)": self.cos.mean(axis=1),
            "model calls": self.model_evals,
        }


def _numpy(value: torch.Tensor | None, like: torch.Tensor) -> np.ndarray:
    if value is None:
        return np.full(tuple(like.shape), np.nan, dtype=np.float32)
    return value.detach().float().cpu().numpy()


def _check_state(s: GuidanceState, first: GuidanceState) -> None:
    """A state like the run's first: whole counts, finite values, one shape per field (a run's own states pass)."""
    if not isinstance(s, GuidanceState):
        raise OptiscopeError(f"Expected `states` of GuidanceState, but got {type(s).__name__}")
    check_int("steps", s.steps, 1, 1000)
    check_int("model_evals", s.model_evals, 0)
    check_positive("level", s.level, strict=False)
    for field in TENSOR_FIELDS:
        value = getattr(s, field)
        if value is not None and (value.shape != first.x.shape or not torch.isfinite(value).all()):
            raise OptiscopeError(f"Expected `{field}` finite, of shape {tuple(first.x.shape)}, at step {s.step}")
    for field in ("norm_parallel", "norm_orthogonal", "cos"):
        if getattr(s, field).shape != (len(first.x),):
            raise OptiscopeError(f"Expected `{field}` of shape {(len(first.x),)} at step {s.step}")


def trace(states: Iterable[GuidanceState]) -> Trace:
    """Consume a run (an iterator of :class:`GuidanceState`) into a :class:`Trace` (arrays on the CPU).

    Budget: ``steps × samples × sample size`` at most ``MAX_TRACE_VALUES`` (2,000,000), checked at the first state.

    >>> from core.guidance import GaussianMixtureDenoiser, GuiderConfig, run
    >>> D = GaussianMixtureDenoiser()
    >>> t = trace(run(D, torch.arange(8), guider=GuiderConfig("adaptive", w=3, gamma=-1, warmup_steps=2), steps=4))
    >>> t.x.shape, t.model_evals.tolist(), bool(np.isnan(t.cos[2:]).all())
    ((4, 8, 2), [2, 4, 5, 6], True)
    """
    rows: dict[str, list[np.ndarray]] = {f: [] for f in (*TENSOR_FIELDS, "norm_parallel", "norm_orthogonal", "cos")}
    level, evals = [], []
    first = None
    for s in states:
        _check_state(s, first or s)
        if first is None:
            first = s
            check_budget("held values (steps × samples × sample size)", s.steps * s.x.numel(), MAX_TRACE_VALUES)
        for field in rows:
            rows[field].append(_numpy(getattr(s, field), s.x0_cond))
        level.append(s.level)
        evals.append(s.model_evals)
    if not level:
        raise OptiscopeError("Expected the run to yield at least one state, but it yielded none")
    stacked = {field: np.stack(values) for field, values in rows.items()}
    return Trace(**stacked, level=np.array(level), model_evals=np.array(evals))
