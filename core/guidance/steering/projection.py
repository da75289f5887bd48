"""CFG-MP / CFG-MP+: https://arxiv.org/abs/2601.21892 — a manifold projection before each noisy CFG step."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import torch

from core.errors import check_choice, check_int, check_range

from .base import Guided, StepInput, cfg_step, check_scale, flow_map, next_flow_time, oracle_cosine

RIDGE = 1e-4  # the DiT code's regulariser of the Anderson normal equations
Map = Callable[[torch.Tensor], torch.Tensor]


def anderson_mix(z: tuple[torch.Tensor, torch.Tensor], g: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    r"""Anderson acceleration with window m = 1 (β = 1), per sample, as CFG-MP's DiT code solves it.

    With residuals f_j = G(z_j) − z_j of the last two iterates, (F Fᵀ + 10⁻⁴ I)·α = 1, α ← α/Σα, and
    z⁺ = α₀·G(z₀) + α₁·G(z₁).

    >>> z = (torch.tensor([[0.0]]), torch.tensor([[1.0]]))  # G(z) = 0.5 z + 1, fixed point 2
    >>> anderson_mix(z, (0.5 * z[0] + 1, 0.5 * z[1] + 1)).round(decimals=2)  # the ridge 1e-4 biases it a hair
    tensor([[2.]])
    """
    f0, f1 = ((gj - zj).reshape(len(zj), -1).double() for zj, gj in zip(z, g, strict=True))
    a, b, c = (f0 * f0).sum(1) + RIDGE, (f0 * f1).sum(1), (f1 * f1).sum(1) + RIDGE  # F Fᵀ + ridge, per sample
    alpha0, alpha1 = c - b, a - b  # the solution of [[a, b], [b, c]]·α = 1, up to the common factor 1/det
    total = alpha0 + alpha1
    alpha0, alpha1 = (alpha0 / total).to(g[0].dtype), (alpha1 / total).to(g[0].dtype)
    shape = (-1, *[1] * (g[0].dim() - 1))
    return alpha0.reshape(shape) * g[0] + alpha1.reshape(shape) * g[1]


def fixed_point(g_map: Map, z: torch.Tensor, iterations: int, solver: str) -> tuple[list[torch.Tensor], list[float]]:
    """Iterate z ← G(z) (Picard) or its Anderson mix (m = 1, first iteration Picard) ``iterations`` times.

    Returns the iterates z₀ … z_K and the residual mean |G(z_k) − z_k| of each iteration.
    """
    iterates, residuals, history = [z], [], []
    for _ in range(iterations):
        g = g_map(z)
        residuals.append((g - z).abs().double().mean().item())
        history = [*history[-1:], (z, g)]
        if solver == "anderson" and len(history) == 2:
            z = anderson_mix((history[0][0], history[1][0]), (history[0][1], history[1][1]))
        else:
            z = g
        iterates.append(z)
    return iterates, residuals


def projection_map(s: StepInput, t: float, scale: float, h: float) -> Map:
    r"""G(z) = z' + h·v_c(z', t) with z' = z − h·v_u(z, t), in flow coordinates (2 model calls per use).

    Both velocities use the current t (t + h only sets h, as in the reference code): v = (x̂0 − z)/(1 − t),
    with x̂0 the denoiser's prediction at x = z/``scale``.
    """

    def velocity(z: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        x0 = s.predict(z / scale, labels)
        return (x0 - z) / (1 - t)  # v = (D_flow − z)/(1 − t), D_flow = x̂0

    def g_map(z: torch.Tensor) -> torch.Tensor:
        z_half = z - h * velocity(z, None)
        return z_half + h * velocity(z_half, s.target)

    return g_map


@dataclass(frozen=True)
class CFGMP:
    r"""CFG with manifold projection (CFG-MP, CFG-MP+): https://arxiv.org/abs/2601.21892

    On noisy steps (flow time t < ``threshold``) the sample z is first moved to a fixed point of
    G(z) = z' + h·v_c(z', t), z' = z − h·v_u(z, t), h = Δt/2, by ``iterations`` Picard steps (CFG-MP)
    or Anderson steps with window m = 1 (CFG-MP+); then the CFG Euler step z ← z + Δt·[v_u + w(v_c − v_u)].
    Flow coordinates z = t·x0 + (1 − t)·n come from the denoiser's σ (EDM) or ᾱ (DDIM); flow-Euler with a
    fixed x̂0 is exactly their step. Cost: 2 + 2K model calls on a projected step, 2 elsewhere.

    Args:
        w (`float`, defaults to `4.0`): the CFG scale of the Euler step.
        iterations (`int`, defaults to `2`): K, the inner iterations per projected step (0 = plain CFG).
        solver (`str`, defaults to `"picard"`): ``"picard"`` (CFG-MP) or ``"anderson"`` (CFG-MP+).
        threshold (`float`, defaults to `0.6`): project while the flow time t is below it (the DiT code's 0.6).
    """

    w: float = 4.0
    iterations: int = 2
    solver: str = "picard"
    threshold: float = 0.6

    def __post_init__(self):
        check_scale("w", self.w)
        check_int("iterations", self.iterations, 0, 20)
        check_choice("solver", self.solver, ("picard", "anderson"))
        check_range("threshold", self.threshold, 0.0, 1.0)

    def check(self, denoiser) -> None:
        """Nothing beyond the sampler's own checks."""

    def projects(self, denoiser, levels: torch.Tensor, i: int) -> bool:
        return self.iterations > 0 and flow_map(denoiser, float(levels[i]))[0] < self.threshold

    def calls(self, denoiser, levels: torch.Tensor, i: int) -> int:
        return 2 + 2 * self.iterations * self.projects(denoiser, levels, i)

    def guide(self, s: StepInput) -> Guided:
        scale = torch.full((len(s.x),), self.w, dtype=s.x.dtype, device=s.x.device)
        if not self.projects(s.denoiser, s.levels, s.i):
            return cfg_step(s, s.x, scale, cosine=_nan(s.x))
        t, to_z = flow_map(s.denoiser, s.level)
        h = (next_flow_time(s.denoiser, s.levels, s.i) - t) / 2
        iterates, residuals = fixed_point(projection_map(s, t, to_z, h), to_z * s.x, self.iterations, self.solver)
        xs = torch.stack(iterates) / to_z  # (K + 1, N, ...) back in x coordinates
        out = cfg_step(s, xs[-1], scale, model_evals=2 * self.iterations, residuals=tuple(residuals), iterates=xs)
        # how far the projection acts as extra guidance: its displacement against D_c − D_u (at the end point)
        return replace(out, cosine=oracle_cosine(xs[-1] - xs[0], out.x0_cond, out.x0_uncond))


def _nan(x: torch.Tensor) -> torch.Tensor:
    return torch.full((len(x),), float("nan"), device=x.device)


def solver_residuals(denoiser, x: torch.Tensor, target: torch.Tensor, *, levels: torch.Tensor, i: int, iterations: int):
    """Residual mean |G(z) − z| per iteration of Picard and of Anderson (m = 1) from the same x at ``levels[i]``.

    What the page plots beside a CFG-MP run: both solvers on one projection (2·K model calls each).
    Returns ``{"picard": [...], "anderson": [...]}``.
    """
    iterations = check_int("iterations", iterations, 1, 20)
    s = StepInput(denoiser, x, check_int("i", i, 0, len(levels) - 2), levels, target)
    t, to_z = flow_map(denoiser, s.level)
    h = (next_flow_time(denoiser, levels, i) - t) / 2
    g_map = projection_map(s, t, to_z, h)
    return {solver: fixed_point(g_map, to_z * x, iterations, solver)[1] for solver in ("picard", "anderson")}
