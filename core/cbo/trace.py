"""A compact record of one run for plotting: per-step curves plus a few full frames, as numpy arrays."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import torch

from core.cbo.consensus import variance_to
from core.cbo.state import CBOState


@dataclass(frozen=True)
class Trace:
    """Curves for every yielded step and particle snapshots at ``frame_steps``.

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


def trace(
    states: Iterable[CBOState], objective, minimiser: torch.Tensor, *, total_steps: int, frames: int = 80,
    max_particles: int = 2000, dims: tuple[int, int] = (0, 1),
) -> Trace:
    """Consume a single-run iterator (``x`` of shape (N, d)) into a :class:`Trace`.

    >>> from core.cbo import OBJECTIVES, run
    >>> f = OBJECTIVES["Ackley"]
    >>> x0 = torch.rand(100, 3, generator=torch.Generator().manual_seed(0)) * 8 - 4
    >>> t = trace(run(f, x0, sigma=1.0, steps=50), f, f.minimiser(3), total_steps=50, frames=5)
    >>> t.V.shape, t.frame_x.shape
    ((51,), (6, 100, 2))
    """
    if frames < 1 or max_particles < 1:
        raise ValueError(f"Expected `frames` and `max_particles` >= 1, but got {frames} and {max_particles}")
    every = max(1, total_steps // frames)
    rows: dict[str, list] = {k: [] for k in ("step", "time", "V", "error", "f", "path", "fs", "fx", "fe", "fa")}
    i, j = dims
    last = None
    for s in states:
        if s.x.dim() != 2:
            raise ValueError(f"Expected a single run with x of shape (N, d), but got {tuple(s.x.shape)}")
        last = s
        rows["step"].append(s.step)
        rows["time"].append(s.time)
        rows["V"].append(float(variance_to(s.x, minimiser)))
        rows["error"].append(float((s.consensus - minimiser.to(s.consensus)).abs().max()))
        rows["f"].append(float(objective(s.consensus)))
        rows["path"].append(s.consensus[[i, j]].cpu().numpy())
        if s.step % every == 0 or s.step == total_steps or s.diverged:
            if not rows["fs"] or rows["fs"][-1] != s.step:
                rows["fs"].append(s.step)
                rows["fx"].append(s.x[:max_particles][:, [i, j]].cpu().numpy())
                rows["fe"].append(s.energy[:max_particles].cpu().numpy())
                rows["fa"].append(s.alpha)
    if last is None:
        raise ValueError("Expected at least one state to trace")
    return Trace(
        step=np.array(rows["step"]), time=np.array(rows["time"]), V=np.array(rows["V"]), error=np.array(rows["error"]),
        f_consensus=np.array(rows["f"]), path=np.stack(rows["path"]), frame_step=np.array(rows["fs"]),
        frame_x=np.stack(rows["fx"]), frame_energy=np.stack(rows["fe"]), frame_alpha=np.array(rows["fa"]),
        diverged=last.diverged, dims=dims,
    )
