"""The sampling loop: any denoiser, any fitting `diffusers.guiders` instance, one frozen state per step."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch
from diffusers.guiders.guider_utils import BaseGuidance

from .decompose import cosine, decompose, norms
from .guiders import check_fits


@dataclass(frozen=True)
class GuidanceState:
    """One sampler step. Δ = x0_cond − x0_uncond (raw, before momentum or rescale), split against x0_cond.

    Shapes (N samples): x, x0_*, delta_*: (N, *sample_shape); norm_*, cos: (N,).
    ``x0_uncond``, ``delta_*`` are None and ``norm_*``/``cos`` NaN on steps where the guider skipped the
    unconditional branch (adaptive guidance after truncation, or w = 1).
    """

    step: int  # 0-based
    num_steps: int
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


def sample(
    denoiser,
    guider: BaseGuidance,
    labels: torch.Tensor,
    *,
    steps: int,
    seed: int = 0,
    x_init: torch.Tensor | None = None,
) -> Iterator[GuidanceState]:
    r"""Classifier-free guidance (CFG): https://arxiv.org/abs/2207.12598 — a guided sampler, driven as diffusers does.

    Each step calls ``guider.set_state`` and ``guider.prepare_inputs`` (which builds momentum buffers at step 0
    and says how many branches it needs), evaluates the denoiser once per returned batch (``prepare_models`` /
    ``cleanup_models`` around it), stores the x0 prediction as the batch's ``noise_pred`` and combines them
    with ``guider(batches)``. Guidance therefore acts on x0 for every model (ε-models convert inside the denoiser).

    Args:
        denoiser: a denoiser from `core.guidance` (2-D mixture, empirical digits, the digits UNet, a pipeline).
        guider (`diffusers.guiders.BaseGuidance`): e.g. ``make_guider("apg", w=15)``; its state is reset at step 0.
        labels (`torch.LongTensor`): the class of each sample.
        steps (`int`): number of sampler steps N.
        seed (`int`, defaults to `0`): seeds the initial noise (same seed, same start for every guider).
        x_init (`torch.Tensor`, optional): a start point instead of seeded noise.

    Shapes:
        labels: (N,) -> every state's x: (N, *denoiser.sample_shape).

    >>> from core.guidance import GaussianMixtureDenoiser, make_guider
    >>> states = list(sample(GaussianMixtureDenoiser(), make_guider("cfg", w=3), torch.arange(8), steps=8))
    >>> states[-1].x.shape, states[-1].model_evals
    (torch.Size([8, 2]), 16)
    """
    labels = torch.as_tensor(labels).long().reshape(-1)
    if steps < 1 or int(steps) != steps:
        raise ValueError(f"Expected `steps` to be a positive integer, but got {steps}.")
    if len(labels) == 0:
        raise ValueError("Expected at least one label.")
    if labels.min() < 0 or labels.max() >= denoiser.num_classes:
        raise ValueError(f"Expected labels in [0, {denoiser.num_classes - 1}], but got {labels.tolist()[:10]}.")
    check_fits(guider, len(denoiser.sample_shape))
    steps = int(steps)
    levels = denoiser.levels(steps)
    if x_init is None:
        x = denoiser.init(len(labels), torch.Generator().manual_seed(int(seed)))
    else:
        x = x_init.to(denoiser.dtype).clone()
    evals = 0
    nan = torch.full((len(labels),), float("nan"))
    for i in range(steps):
        level = levels[i]
        guider.set_state(step=i, num_inference_steps=steps, timestep=level)
        batches = guider.prepare_inputs({"labels": (labels, None)})
        for batch in batches:
            guider.prepare_models(denoiser)
            with torch.no_grad():
                batch.noise_pred = denoiser.predict_x0(x, level, batch.labels)
            guider.cleanup_models(denoiser)
            evals += 1
        out = guider(batches)
        x0_cond, x0_uncond = out.pred_cond, out.pred_uncond
        x0_guided = out.pred
        if x0_uncond is not None:
            # the raw Δ against the raw cond prediction (CFG-Zero* rescales uncond inside; use the model's)
            x0_uncond = batches[1].noise_pred
            delta = x0_cond - x0_uncond
            par, orth = decompose(delta, x0_cond)
            n_par, n_orth, cos = norms(par).float(), norms(orth).float(), cosine(x0_cond, x0_uncond).float()
        else:
            par = orth = None
            n_par, n_orth, cos = nan, nan, nan
        if not torch.isfinite(x0_guided).all():
            raise ValueError(f"The guided prediction became non-finite at step {i}; lower w or add steps.")
        x = denoiser.step(x, x0_guided.to(x.dtype), i, levels)
        yield GuidanceState(
            step=i,
            num_steps=steps,
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


def run(denoiser, guider: BaseGuidance, labels: torch.Tensor, *, steps: int, seed: int = 0) -> GuidanceState:
    """Exhaust `sample` and return the last state (its ``x`` is the final sample)."""
    *_, last = sample(denoiser, guider, labels, steps=steps, seed=seed)
    return last
