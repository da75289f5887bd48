"""The per-step record every CBO-family iterator yields, and the input checks they share."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

import torch

from core.cbo.config import PARTICLE_STEP_BUDGET
from core.cbo.objectives import Objective
from core.errors import OptiscopeError, check_budget


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

    def preview(self, max_particles: int = 300) -> CBOState:
        """This state for a live view, on the CPU: the first ``max_particles`` particles, the first 2 coordinates.

        A player holds hundreds of states per session; this keeps each one a few kB at any N and d.

        >>> from core.cbo import OBJECTIVES, run
        >>> s = next(run(OBJECTIVES["Ackley"], torch.rand(1000, 50))).preview()
        >>> tuple(s.x.shape), tuple(s.energy.shape), tuple(s.consensus.shape)
        ((300, 2), (300,), (2,))
        """
        return dataclasses.replace(
            self,
            x=self.x[..., :max_particles, :2].cpu(),
            energy=self.energy[..., :max_particles].cpu(),
            consensus=self.consensus[..., :2].cpu(),
            diverged_runs=self.diverged_runs.cpu(),
        )


def as_batch(x0, *, min_particles: int = 2, device=None) -> tuple[torch.Tensor, bool]:
    """``x0`` as a float tensor of shape (M, N, d) on ``device``, plus whether a leading M axis was added."""
    try:
        x = torch.as_tensor(x0)
    except (TypeError, ValueError, RuntimeError):
        raise OptiscopeError(f"Expected `x0` to be a tensor of particles, but got {type(x0).__name__}") from None
    if not x.is_floating_point():
        x = x.to(torch.get_default_dtype())
    if device is not None:
        x = x.to(device)
    if x.dim() not in (2, 3):
        raise OptiscopeError(f"Expected `x0` of shape (N, d) or (M, N, d), but got {tuple(x.shape)}")
    if x.shape[-1] == 0:
        raise OptiscopeError(f"Expected dimension d >= 1, but got `x0` of shape {tuple(x.shape)}")
    if x.shape[-2] < min_particles:
        raise OptiscopeError(
            f"Expected at least {min_particles} particles (N >= {min_particles}), but got N={x.shape[-2]}"
        )
    if x.shape[0] == 0 or not torch.isfinite(x).all():
        raise OptiscopeError("Expected finite `x0` with at least one run")
    single = x.dim() == 2
    return (x.unsqueeze(0) if single else x).detach().clone(), single


def check_finite(name: str, t: torch.Tensor) -> torch.Tensor:
    """``t`` if it is a floating tensor with at least one axis and no NaN or inf."""
    if not isinstance(t, torch.Tensor) or not t.is_floating_point() or t.dim() == 0 or t.shape[-1] == 0:
        raise OptiscopeError(f"Expected `{name}` to be a non-empty floating tensor, but got {t!r:.80}")
    if not torch.isfinite(t).all():
        raise OptiscopeError(f"Expected finite values in `{name}`, but it holds NaN or inf")
    return t


def check_objective(objective: Callable[[torch.Tensor], torch.Tensor], d: int) -> None:
    """A callable objective that accepts d-dimensional points (checked without evaluating it)."""
    if not callable(objective):
        raise OptiscopeError(f"Expected a callable `objective`, but got {type(objective).__name__}")
    if isinstance(objective, Objective):
        objective.check_dim(d)


def check_particle_steps(runs: int, n_particles: int, d: int, steps: int) -> None:
    """Refuse a run past :data:`PARTICLE_STEP_BUDGET` coordinate updates."""
    amount = runs * n_particles * d * steps
    check_budget("particle-steps M·N·d·steps", amount, PARTICLE_STEP_BUDGET, hint="Use fewer particles, d or steps.")


def evaluate(objective: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """``objective(x)`` checked for its shape: (..., d) -> (...)."""
    fx = objective(x)
    if not isinstance(fx, torch.Tensor) or fx.shape != x.shape[:-1]:
        got = tuple(fx.shape) if isinstance(fx, torch.Tensor) else type(fx).__name__
        raise OptiscopeError(f"Expected the objective to map {tuple(x.shape)} to {tuple(x.shape[:-1])}, but got {got}")
    return fx.to(x.dtype)


def initial_energy(objective, x: torch.Tensor) -> torch.Tensor:
    """Energies at the start: NaN or inf there is a bad start (or objective), not a divergence."""
    fx = evaluate(objective, x)
    if not torch.isfinite(fx).all():
        raise OptiscopeError(
            "Expected finite objective values at `x0`, but f(x0) holds NaN or inf (is x0 too far out?)"
        )
    return fx


def finite_runs(fx: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """(M,) True where a run's energies and consensus point are all finite."""
    return torch.isfinite(fx).all(dim=-1) & torch.isfinite(v).all(dim=-1)


def make_state(step, dt, x, fx, v, alpha, div, single) -> CBOState:
    squeeze = (lambda t: t[0]) if single else (lambda t: t)
    return CBOState(
        step=step,
        time=step * dt,
        x=squeeze(x).detach(),
        energy=squeeze(fx).detach(),
        consensus=squeeze(v).detach(),
        alpha=float(alpha),
        diverged=bool(div.any()),
        diverged_runs=squeeze(div).clone(),
    )


def success(consensus: torch.Tensor, minimiser: torch.Tensor, tol: float = 0.25) -> torch.Tensor:
    """Success of a CBO run (CBO): https://arxiv.org/abs/1909.09249

    ``||v - x*||_inf < tol`` per run, the success criterion of the CBO literature (and of CBXpy).

    Shapes:
        consensus: (..., d), minimiser: (d,) -> (...) bool

    >>> success(torch.tensor([[0.1, -0.2], [0.3, 0.0]]), torch.zeros(2))
    tensor([ True, False])
    """
    return (consensus - minimiser.to(consensus)).abs().amax(dim=-1) < tol
