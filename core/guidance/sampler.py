"""The sampling loop: any denoiser, any fitting `diffusers.guiders` instance, one frozen state per step."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from core.errors import OptiscopeError, check_budget, check_int, check_seed

from .decompose import cosine, decompose, norms
from .denoisers import check_target
from .guiders import GuiderConfig, check_fits, make_guider

if TYPE_CHECKING:
    from diffusers.guiders.guider_utils import BaseGuidance


@dataclass(frozen=True)
class GuidanceState:
    """One sampler step. Δ = x0_cond − x0_uncond (raw, before momentum or rescale), split against x0_cond.

    Shapes (N samples): x, x0_*, delta_*: (N, *sample_shape); norm_*, cos: (N,).
    ``x0_uncond``, ``delta_*`` are None and ``norm_*``/``cos`` NaN on steps where the guider skipped the
    unconditional branch (adaptive guidance after truncation, or w = 1).
    """

    step: int  # 0-based
    steps: int  # of the whole run
    level: float  # σ (EDM) or t (DDIM) at which the model was evaluated
    x: torch.Tensor  # the sample after this step
    x0_cond: torch.Tensor
    x0_uncond: torch.Tensor | None
    x0_guided: torch.Tensor
    delta_parallel: torch.Tensor | None
    delta_orthogonal: torch.Tensor | None
    norm_parallel: torch.Tensor
    norm_orthogonal: torch.Tensor
    cos: torch.Tensor  # cos(x0_cond, x0_uncond) per sample
    model_evals: int  # running count of batched model calls (NFE): 2 per guided step, 1 per conditional-only step


def run(
    denoiser,
    target,
    *,
    guider: GuiderConfig | BaseGuidance,
    steps: int = 25,
    seed: int = 0,
    x_init: torch.Tensor | None = None,
) -> Iterator[GuidanceState]:
    r"""Classifier-free guidance (CFG): https://arxiv.org/abs/2207.12598 — a guided sampler, driven as diffusers does.

    Each step calls ``guider.set_state`` and ``guider.prepare_inputs`` (which builds momentum buffers at step 0
    and says how many branches it needs), evaluates the denoiser once per returned batch (``prepare_models`` /
    ``cleanup_models`` around it), stores the x0 prediction as the batch's ``noise_pred`` and combines them
    with ``guider(batches)``. Guidance therefore acts on x0 for every model (ε-models convert inside the denoiser).
    Validated when called; nothing is computed before the first ``next``. Computes on the denoiser's device.

    Args:
        denoiser: a denoiser from `core.guidance` (2-D mixture, empirical digits, the digits UNet, a pipeline).
        target (`torch.LongTensor`): the class each sample is guided toward.
        guider (`GuiderConfig` or `diffusers.guiders.BaseGuidance`): a config builds a fresh guider; a guider
            instance is copied, so the caller's object is never stepped (one guider can drive several runs).
        steps (`int`, defaults to `25`): number of sampler steps N.
        seed (`int`, defaults to `0`): seeds the initial noise (same seed, same start for every guider and device).
        x_init (`torch.Tensor`, optional): a start point instead of seeded noise.

    Budget: ``len(target) × steps`` sample-steps at most ``denoiser.max_sample_steps``.

    Shapes:
        target: (N,) -> every state's x: (N, *denoiser.sample_shape).

    >>> from core.guidance import GaussianMixtureDenoiser, GuiderConfig
    >>> from core.runs import last_state
    >>> last = last_state(run(GaussianMixtureDenoiser(), torch.arange(8), guider=GuiderConfig("cfg", w=3), steps=8))
    >>> last.x.shape, last.model_evals
    (torch.Size([8, 2]), 16)
    """
    target = check_target(denoiser, target)
    steps = check_int("steps", steps, 1, 1000)
    seed = check_seed(seed)
    check_budget(
        "sample-steps (samples × steps)",
        len(target) * steps,
        denoiser.max_sample_steps,
        hint="Use fewer samples or steps.",
    )
    guider = make_guider(guider) if isinstance(guider, GuiderConfig) else copy.deepcopy(guider)
    check_fits(guider, len(denoiser.sample_shape))
    if x_init is not None and tuple(x_init.shape) != (len(target), *denoiser.sample_shape):
        raise OptiscopeError(
            f"Expected `x_init` of shape {(len(target), *denoiser.sample_shape)}, but got {tuple(x_init.shape)}"
        )
    return _loop(denoiser, guider, target, steps, seed, x_init)


def _loop(
    denoiser, guider: BaseGuidance, target: torch.Tensor, steps: int, seed: int, x_init
) -> Iterator[GuidanceState]:
    levels = denoiser.levels(steps)
    if x_init is None:
        x = denoiser.init(len(target), seed)
    else:
        x = x_init.to(device=denoiser.device, dtype=denoiser.dtype).clone()
    evals = 0
    nan = torch.full((len(target),), float("nan"), device=x.device)
    for i in range(steps):
        level = levels[i]
        guider.set_state(step=i, num_inference_steps=steps, timestep=level)
        batches = guider.prepare_inputs({"labels": (target, None)})
        for batch in batches:
            guider.prepare_models(denoiser)
            with torch.no_grad():
                batch.noise_pred = denoiser.predict_x0(x, level, batch.labels)
            guider.cleanup_models(denoiser)
            evals += 1
        out = guider(batches)
        x0_guided = out.pred
        if not torch.isfinite(x0_guided).all():
            raise OptiscopeError(f"The guided prediction became non-finite at step {i}; lower `w` or add steps")
        x = denoiser.step(x, x0_guided.to(x.dtype), i, levels)
        yield _state(i, steps, level, x, out.pred_cond, batches, x0_guided, evals, nan)


def _state(i, steps, level, x, x0_cond, batches, x0_guided, evals, nan) -> GuidanceState:
    # the raw Δ against the raw cond prediction (CFG-Zero* rescales uncond inside: use the model's)
    x0_uncond = batches[1].noise_pred if len(batches) > 1 else None
    if x0_uncond is None:
        par = orth = None
        n_par = n_orth = cos = nan
    else:
        par, orth = decompose(x0_cond - x0_uncond, x0_cond)
        n_par, n_orth, cos = norms(par).float(), norms(orth).float(), cosine(x0_cond, x0_uncond).float()
    return GuidanceState(
        step=i,
        steps=steps,
        level=float(level),
        x=x.detach().clone(),
        x0_cond=x0_cond.detach().clone(),
        x0_uncond=None if x0_uncond is None else x0_uncond.detach().clone(),
        x0_guided=x0_guided.detach().clone(),
        delta_parallel=par,
        delta_orthogonal=orth,
        norm_parallel=n_par,
        norm_orthogonal=n_orth,
        cos=cos,
        model_evals=evals,
    )
