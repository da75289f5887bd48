"""The steering sampler: the guidance lab's denoisers and steps, one guider-style object, one frozen state per step."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch

from core.errors import OptiscopeError, check_budget, check_int, check_seed

from ..denoisers import check_target
from .base import StepInput, require_guider

CALL_BUDGET = 6  # sample-model-calls per sample-step of the denoiser's budget: 3× a CFG run at that budget


@dataclass(frozen=True)
class SteeringState:
    """One sampler step of a steering guider.

    Shapes (N samples): x, x0_*: (N, *sample_shape); scale, cosine: (N,); scores: (N, |S|, evaluators);
    iterates: (K + 1, N, *sample_shape).
    """

    step: int  # 0-based
    steps: int
    level: float  # σ (EDM) or t (DDIM) at which the model was evaluated
    x: torch.Tensor  # the sample after this step
    x0_cond: torch.Tensor  # NaN where the method never asks for it (EluCD without the oracle)
    x0_uncond: torch.Tensor
    x0_guided: torch.Tensor
    scale: torch.Tensor  # the scale applied to each sample (Dynamic CFG: the chosen one; EluCD: s_i)
    cosine: torch.Tensor  # the method's direction against the oracle D_c − D_u (NaN where it has none)
    scores: torch.Tensor | None  # Dynamic CFG: each evaluator's raw score of each candidate
    residuals: tuple[float, ...]  # CFG-MP: mean |G(z) − z| per inner iteration; () on unprojected steps
    iterates: torch.Tensor | None  # CFG-MP: the projection's iterates, in x coordinates
    model_evals: int  # running count of batched model calls of the method (NFE)
    telemetry_evals: int  # running count of calls made only for the telemetry (EluCD's oracle)


def model_calls(guider, denoiser, *, steps: int) -> int:
    """The model calls (NFE) a run of ``guider`` takes: 2 per CFG step, 2 + 2K per projected CFG-MP step, 1 for EluCD.

    >>> from core.guidance import GaussianMixtureDenoiser
    >>> from core.guidance.steering import CFG
    >>> model_calls(CFG(w=3.0), GaussianMixtureDenoiser(), steps=8)
    16
    """
    require_guider(guider)
    levels = denoiser.levels(check_int("steps", steps, 1, 1000))
    return sum(guider.calls(denoiser, levels, i) for i in range(steps))


def run(denoiser, target, *, guider, steps: int = 32, seed: int = 0) -> Iterator[SteeringState]:
    r"""Sample ``denoiser`` toward ``target`` with a steering guider; one :class:`SteeringState` per step.

    The guider (`CFG`, `DynamicCFG`, `CFGMP`, `EluCD`) returns the guided x̂0 (and may move x first, as
    CFG-MP's projection does); the denoiser's own step (EDM Euler or DDIM, as in `core.guidance.run`) follows.
    Validated when called; nothing is computed before the first ``next``. Computes on the denoiser's device.

    Args:
        denoiser: a denoiser of `core.guidance` (2-D mixture, empirical digits, the digits UNet).
        target (`torch.LongTensor`): the class each sample is guided toward.
        guider: a steering guider (immutable; one instance can drive several runs at once).
        steps (`int`, defaults to `32`): sampler steps N.
        seed (`int`, defaults to `0`): seeds the initial noise (same seed, same start for every guider).

    Budget: ``len(target) × steps`` sample-steps within ``denoiser.max_sample_steps``, and the samples ×
    model calls within 6× that (CFG-MP's inner calls count).

    Shapes:
        target: (N,) -> every state's x: (N, *denoiser.sample_shape).

    >>> from core.guidance import GaussianMixtureDenoiser
    >>> from core.guidance.steering import CFGMP
    >>> from core.runs import last_state
    >>> last = last_state(run(GaussianMixtureDenoiser(), torch.arange(8), guider=CFGMP(w=4, iterations=2), steps=8))
    >>> last.x.shape, last.model_evals
    (torch.Size([8, 2]), 32)
    """
    target = check_target(denoiser, target)
    steps = check_int("steps", steps, 1, 1000)
    seed = check_seed(seed)
    require_guider(guider)
    hint = "Use fewer samples, steps or inner iterations."
    check_budget("sample-steps (samples × steps)", len(target) * steps, denoiser.max_sample_steps, hint=hint)
    calls = model_calls(guider, denoiser, steps=steps)
    check_budget(
        "sample-model-calls (samples × NFE)", len(target) * calls, CALL_BUDGET * denoiser.max_sample_steps, hint=hint
    )
    guider.check(denoiser)
    return _loop(denoiser, guider, target, steps, seed)


def _loop(denoiser, guider, target: torch.Tensor, steps: int, seed: int) -> Iterator[SteeringState]:
    levels = denoiser.levels(steps)
    x = denoiser.init(len(target), seed)
    evals = telemetry = 0
    for i in range(steps):
        out = guider.guide(StepInput(denoiser, x, i, levels, target))
        if not torch.isfinite(out.x0_guided).all():
            raise OptiscopeError(f"The guided prediction became non-finite at step {i}; lower the scale or add steps")
        x = denoiser.step(out.x, out.x0_guided.to(x.dtype), i, levels)
        evals, telemetry = evals + out.model_evals, telemetry + out.telemetry_evals
        yield SteeringState(
            step=i,
            steps=steps,
            level=float(levels[i]),
            x=x.detach().clone(),
            x0_cond=out.x0_cond.detach().clone(),
            x0_uncond=out.x0_uncond.detach().clone(),
            x0_guided=out.x0_guided.detach().clone(),
            scale=out.scale.detach().clone(),
            cosine=out.cosine.detach().clone(),
            scores=None if out.scores is None else out.scores.detach().clone(),
            residuals=out.residuals,
            iterates=None if out.iterates is None else out.iterates.detach().clone(),
            model_evals=evals,
            telemetry_evals=telemetry,
        )
