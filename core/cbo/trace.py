"""A compact record of one run for plotting: per-step curves plus a few full frames, as numpy arrays."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
import torch

from core.cbo.config import check_alpha
from core.cbo.consensus import variance_to
from core.cbo.objectives import BOX_LIMIT
from core.cbo.state import CBOState, check_finite, evaluate
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
    """A single run's state in d dimensions (trace reads states it did not make; values are checked at the end)."""
    if not isinstance(s, CBOState):
        raise OptiscopeError(f"Expected CBOState states, but got {type(s).__name__}")
    if not isinstance(s.x, torch.Tensor) or s.x.dim() != 2 or s.x.shape[-1] != d:
        raise OptiscopeError(f"Expected a single run with x of shape (N, {d}), but got {s.x!r:.80}")
    check_int("step", s.step, 0)
    check_positive("time", s.time, strict=False)
    check_alpha("alpha", s.alpha)


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
    curves: dict[str, list] = {
        k: [] for k in ("step", "time", "V", "error", "f", "path")
    }  # tensors: one sync at the end
    frame: dict[str, list] = {k: [] for k in ("step", "x", "energy", "alpha")}
    plotted, last = list(dims), None
    for s in states:
        _check_state(s, d)
        last = s
        curves["step"].append(s.step)
        curves["time"].append(s.time)
        wide = torch.float32 if s.x.device.type == "mps" else torch.float64  # mps has no float64
        x, v = s.x.to(wide), s.consensus.to(wide)  # a frozen diverged run sits near 1e20: its V overflows float32
        curves["V"].append(variance_to(x, minimiser))
        curves["error"].append((v - minimiser.to(v)).abs().amax())
        curves["f"].append(evaluate(objective, v[None])[0])
        curves["path"].append(s.consensus[plotted])
        if (s.step % every == 0 or s.step == total_steps or s.diverged) and frame["step"][-1:] != [s.step]:
            frame["step"].append(s.step)
            frame["x"].append(s.x[:max_particles][:, plotted].cpu().numpy())
            frame["energy"].append(s.energy[:max_particles].cpu().numpy())
            frame["alpha"].append(s.alpha)
    if last is None:
        raise OptiscopeError("Expected at least one state to trace, but the run yielded none")
    result = Trace(
        step=np.array(curves["step"]),
        time=np.array(curves["time"]),
        V=torch.stack(curves["V"]).cpu().numpy(),
        error=torch.stack(curves["error"]).cpu().numpy(),
        f_consensus=torch.stack(curves["f"]).cpu().numpy(),
        path=torch.stack(curves["path"]).cpu().numpy(),
        frame_step=np.array(frame["step"]),
        frame_x=np.stack(frame["x"]),
        frame_energy=np.stack(frame["energy"]),
        frame_alpha=np.array(frame["alpha"]),
        diverged=last.diverged,
        dims=dims,
    )
    if not all(np.isfinite(a).all() for a in (result.V, result.f_consensus, result.path, result.frame_x)):
        raise OptiscopeError("Expected finite states to trace, but they hold NaN or inf")
    return result
