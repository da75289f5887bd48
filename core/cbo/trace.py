"""A compact record of one run for plotting: per-step curves plus a few full frames, as numpy arrays."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
import torch

from core.cbo.config import check_alpha
from core.cbo.consensus import variance_to
from core.cbo.objectives import BOX_LIMIT
from core.cbo.state import CBOState, check_finite
from core.errors import OptiscopeError, check_int, check_positive

MAX_EXPONENT = 600.0  # e^600 is finite in float64: a diverging theory line is clipped, not inf


@dataclass(frozen=True)
class Trace:
    """Curves for every yielded step and particle snapshots at ``frame_step``.

    Shapes (T steps, F frames, P plotted particles, d dims; ``dims`` = the two plotted coordinates):
        step, time, V, error, f_consensus: (T,); path: (T, 2);
        frame_x: (F, P, 2); frame_energy: (F, P); frame_alpha: (F,)
    """

    step: np.ndarray
    time: np.ndarray
    V: np.ndarray  # 1/2 mean ||x_i - x*||^2
    error: np.ndarray  # ||v - x*||_inf
    f_consensus: np.ndarray
    path: np.ndarray  # the consensus point in the two plotted coordinates
    frame_step: np.ndarray
    frame_x: np.ndarray
    frame_energy: np.ndarray
    frame_alpha: np.ndarray
    diverged: bool
    dims: tuple[int, int]

    def theory_V(self, rate: float) -> np.ndarray:
        """``V(0) e^{-rate t}``, the mean-field prediction (https://arxiv.org/abs/2103.15130), clipped to stay finite.

        Shapes:
            -> (T,)
        """
        return self.V[0] * np.exp(np.minimum(-rate * self.time, MAX_EXPONENT))


def _check_state(s: CBOState, d: int) -> None:
    """A single run's state in d dimensions, with finite values (trace reads states it did not make)."""
    if not isinstance(s, CBOState):
        raise OptiscopeError(f"Expected CBOState states, but got {type(s).__name__}")
    if not isinstance(s.x, torch.Tensor) or s.x.dim() != 2 or s.x.shape[-1] != d:
        raise OptiscopeError(f"Expected a single run with x of shape (N, {d}), but got {s.x!r:.80}")
    check_int("step", s.step, 0)
    check_positive("time", s.time, strict=False)
    check_alpha("alpha", s.alpha)
    for name in ("x", "energy", "consensus"):
        check_finite(f"state.{name}", getattr(s, name))


def trace(
    states: Iterable[CBOState],
    objective: Callable[[torch.Tensor], torch.Tensor],
    minimiser: torch.Tensor,
    *,
    total_steps: int,
    frames: int = 80,
    max_particles: int = 2000,
    dims: tuple[int, int] = (0, 1),
) -> Trace:
    """The trace of one CBO run (CBO): https://arxiv.org/abs/1604.05648

    Consumes a single-run iterator (``x`` of shape (N, d), d >= 2) into a :class:`Trace`: V, the error
    and f of the consensus point at every state, and about ``frames`` frames of at most ``max_particles``
    particles in the coordinates ``dims``.

    >>> from core.cbo import OBJECTIVES, run
    >>> f = OBJECTIVES["Ackley"]
    >>> x0 = torch.rand(100, 3, generator=torch.Generator().manual_seed(0)) * 8 - 4
    >>> t = trace(run(f, x0, steps=50), f, f.minimiser(3), total_steps=50, frames=5)
    >>> t.V.shape, t.frame_x.shape
    ((51,), (6, 100, 2))
    """
    total_steps, frames = check_int("total_steps", total_steps), check_int("frames", frames)
    max_particles = check_int("max_particles", max_particles)
    d = check_finite("minimiser", minimiser).shape[-1]
    if minimiser.dim() != 1 or float(minimiser.abs().max()) > BOX_LIMIT:
        raise OptiscopeError(f"Expected `minimiser` of shape (d,) within ±{BOX_LIMIT:g}, but got {minimiser!r:.80}")
    if d < 2 or not isinstance(dims, (tuple, list)) or len(dims) != 2:
        raise OptiscopeError(f"Expected two plotted `dims` (a 2-D view needs d >= 2), but got {dims!r} for d={d}")
    dims = (check_int("dims", dims[0], 0, d - 1), check_int("dims", dims[1], 0, d - 1))
    every = max(1, total_steps // frames)
    rows: dict[str, list] = {k: [] for k in ("step", "time", "V", "error", "f", "path", "fs", "fx", "fe", "fa")}
    plotted, last = list(dims), None
    for s in states:
        _check_state(s, d)
        last = s
        rows["step"].append(s.step)
        rows["time"].append(s.time)
        rows["V"].append(float(variance_to(s.x, minimiser)))
        rows["error"].append(float((s.consensus - minimiser.to(s.consensus)).abs().max()))
        rows["f"].append(float(objective(s.consensus)))
        rows["path"].append(s.consensus[plotted].cpu().numpy())
        if (s.step % every == 0 or s.step == total_steps or s.diverged) and (
            not rows["fs"] or rows["fs"][-1] != s.step
        ):
            rows["fs"].append(s.step)
            rows["fx"].append(s.x[:max_particles][:, plotted].cpu().numpy())
            rows["fe"].append(s.energy[:max_particles].cpu().numpy())
            rows["fa"].append(s.alpha)
    if last is None:
        raise OptiscopeError("Expected at least one state to trace, but the run yielded none")
    return Trace(
        step=np.array(rows["step"]),
        time=np.array(rows["time"]),
        V=np.array(rows["V"]),
        error=np.array(rows["error"]),
        f_consensus=np.array(rows["f"]),
        path=np.stack(rows["path"]),
        frame_step=np.array(rows["fs"]),
        frame_x=np.stack(rows["fx"]),
        frame_energy=np.stack(rows["fe"]),
        frame_alpha=np.array(rows["fa"]),
        diverged=last.diverged,
        dims=dims,
    )
