"""The per-step record every CBO-family iterator yields, and the input checks they share."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch

from core.cbo.objectives import Objective

NOISES = ("anisotropic", "isotropic")


@dataclass(frozen=True)
class CBOState:
    """One step of a particle run. Tensors are detached and never mutated after being yielded.

    Shapes (M = independent runs, absent when ``x0`` was ``(N, d)``; N particles; d dimensions):
        x: (M, N, d); energy: (M, N) = f(x); consensus: (M, d); diverged_runs: (M,)
    """

    step: int
    time: float  # step * dt
    x: torch.Tensor
    energy: torch.Tensor
    consensus: torch.Tensor
    alpha: float  # the inverse temperature used for this consensus (changes only with a schedule)
    diverged: bool  # True once any run produced non-finite values (those runs are frozen there)
    diverged_runs: torch.Tensor


def check_positive(name: str, value: float, *, strict: bool = True) -> None:
    ok = value > 0 if strict else value >= 0
    if not ok or value != value:
        raise ValueError(f"Expected `{name}` {'>' if strict else '>='} 0, but got {value}")


def check_steps(steps: int) -> None:
    if int(steps) != steps or steps <= 0:
        raise ValueError(f"Expected `steps` to be a positive integer, but got {steps}")


def as_batch(x0, *, min_particles: int = 2, device=None) -> tuple[torch.Tensor, bool]:
    """``x0`` as a float tensor of shape (M, N, d) on ``device``, plus whether a leading M axis was added."""
    x = torch.as_tensor(x0)
    if not x.is_floating_point():
        x = x.to(torch.get_default_dtype())
    if device is not None:
        x = x.to(device)
    if x.dim() not in (2, 3):
        raise ValueError(f"Expected `x0` of shape (N, d) or (M, N, d), but got {tuple(x.shape)}")
    if x.shape[-1] == 0:
        raise ValueError(f"Expected dimension d >= 1, but got `x0` of shape {tuple(x.shape)}")
    if x.shape[-2] < min_particles:
        raise ValueError(f"Expected at least {min_particles} particles (N >= {min_particles}), but got N={x.shape[-2]}")
    if x.shape[0] == 0 or not torch.isfinite(x).all():
        raise ValueError("Expected finite `x0` with at least one run")
    single = x.dim() == 2
    return (x.unsqueeze(0) if single else x).detach().clone(), single


def evaluate(objective: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """``objective(x)`` checked for its shape: (..., d) -> (...)."""
    fx = objective(x)
    if not isinstance(fx, torch.Tensor) or fx.shape != x.shape[:-1]:
        got = tuple(fx.shape) if isinstance(fx, torch.Tensor) else type(fx).__name__
        raise ValueError(f"Expected the objective to map {tuple(x.shape)} to {tuple(x.shape[:-1])}, but got {got}")
    return fx.to(x.dtype)


def initial_energy(objective, x: torch.Tensor) -> torch.Tensor:
    """Energies at the start; NaN there is a bug in the objective, not a divergence."""
    if isinstance(objective, Objective):
        objective.check_dim(x.shape[-1])
    fx = evaluate(objective, x)
    if torch.isnan(fx).any():
        raise ValueError("Expected finite objective values at `x0`, but the objective returned NaN")
    return fx


def finite_runs(fx: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """(M,) True where a run's energies and consensus point are all finite."""
    return torch.isfinite(fx).all(dim=-1) & torch.isfinite(v).all(dim=-1)


def make_state(step, dt, x, fx, v, alpha, div, single) -> CBOState:
    sq = (lambda t: t[0]) if single else (lambda t: t)
    return CBOState(
        step=step, time=step * dt, x=sq(x).detach(), energy=sq(fx).detach(), consensus=sq(v).detach(),
        alpha=float(alpha), diverged=bool(div.any()), diverged_runs=sq(div).clone(),
    )


def success(consensus: torch.Tensor, minimiser: torch.Tensor, tol: float = 0.25) -> torch.Tensor:
    """``||v - x*||_inf < tol`` per run, the success criterion of the CBO literature.

    Shapes:
        consensus: (..., d), minimiser: (d,) -> (...) bool

    >>> success(torch.tensor([[0.1, -0.2], [0.3, 0.0]]), torch.zeros(2))
    tensor([ True, False])
    """
    return (consensus - minimiser.to(consensus)).abs().amax(dim=-1) < tol


def last_state(states: Iterable[CBOState]) -> CBOState:
    """Run an iterator to its end and return its final state (the way to use a run without watching it).

    >>> last_state(iter([1, 2, 3]))
    3
    """
    tail = deque(states, maxlen=1)
    if not tail:
        raise ValueError("Expected the run to yield at least one state")
    return tail[0]
