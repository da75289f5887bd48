"""Adaptive Guidance (AG) as a diffusers guider: CFG until the two predictions agree, then conditional only."""

from __future__ import annotations

import math

import torch
from diffusers.configuration_utils import register_to_config
from diffusers.guiders.guider_utils import BaseGuidance, GuiderOutput, rescale_noise_cfg

from core.errors import check_int, check_range

from .decompose import cosine


class AdaptiveGuidance(BaseGuidance):
    r"""Adaptive Guidance (AG): https://arxiv.org/abs/2312.12487

    CFG for at least ``warmup_steps`` steps; after that, as soon as cos(pred_cond, pred_uncond) exceeds
    ``gamma`` for every sample of the batch, the unconditional branch is dropped for all remaining
    steps (``num_conditions`` becomes 1, so a diffusers loop evaluates the model once per step). With
    N steps and truncation after step k the model-call count is 2k + (N − k). diffusers does not ship it.

    Args:
        guidance_scale (`float`, defaults to `7.5`): as in `ClassifierFreeGuidance`.
        gamma (`float`, defaults to `0.999`): the cosine threshold γ̄; γ̄ > 1 never truncates (plain CFG).
        warmup_steps (`int`, defaults to `1`): steps that always use CFG (≥ 1: the cosine needs both branches).
            At high noise cond and uncond predictions nearly coincide, so without a warm-up AG fires at step 0.
        guidance_rescale (`float`, defaults to `0.0`): CFG rescale φ (Lin et al. 2023).
        use_original_formulation (`bool`, defaults to `False`): ``pred_cond + s·Δ`` instead of ``pred_uncond + s·Δ``.
        start, stop (`float`): the fraction of steps where guidance is on, as in every diffusers guider.

    >>> g = AdaptiveGuidance(guidance_scale=2.0, gamma=-1.0, warmup_steps=2, use_original_formulation=True)
    >>> calls = 0
    >>> for i in range(5):
    ...     g.set_state(step=i, num_inference_steps=5, timestep=torch.tensor(i))
    ...     batches = g.prepare_inputs({})
    ...     calls += len(batches)
    ...     out = g.forward(torch.ones(1, 2), torch.ones(1, 2) if len(batches) == 2 else None)
    >>> calls  # 2·2 + (5 − 2)
    7
    """

    _input_predictions = ["pred_cond", "pred_uncond"]

    @register_to_config
    def __init__(
        self,
        guidance_scale: float = 7.5,
        gamma: float = 0.999,
        warmup_steps: int = 1,
        guidance_rescale: float = 0.0,
        use_original_formulation: bool = False,
        start: float = 0.0,
        stop: float = 1.0,
        enabled: bool = True,
    ):
        check_range("start", start, 0.0, 1.0)
        check_range("stop", stop, 0.0, 1.0)
        check_range("guidance_scale", guidance_scale, -100.0, 100.0)
        check_range("guidance_rescale", guidance_rescale, 0.0, 1.0)
        check_int("warmup_steps", warmup_steps, 1, 1000)  # the cosine needs both branches at least once
        check_range("gamma", gamma, -1.0, 2.0)  # γ̄ > 1 never truncates
        super().__init__(start, stop, enabled)
        self.guidance_scale = guidance_scale
        self.gamma = gamma
        self.warmup_steps = int(warmup_steps)
        self.guidance_rescale = guidance_rescale
        self.use_original_formulation = use_original_formulation
        self.truncated_at: int | None = None  # first conditional-only step of this run
        self.last_cosine: float | None = None

    def prepare_inputs(self, data: dict[str, tuple[torch.Tensor, torch.Tensor]]) -> list:
        if self._step == 0:  # a new run starts clean, like APG's MomentumBuffer
            self.truncated_at, self.last_cosine = None, None
        tuple_indices = [0] if self.num_conditions == 1 else [0, 1]
        return [
            self._prepare_batch(data, i, name) for i, name in zip(tuple_indices, self._input_predictions, strict=False)
        ]

    def prepare_inputs_from_block_state(self, data, input_fields: dict) -> list:
        if self._step == 0:
            self.truncated_at, self.last_cosine = None, None
        tuple_indices = [0] if self.num_conditions == 1 else [0, 1]
        return [
            self._prepare_batch_from_block_state(input_fields, data, i, name)
            for i, name in zip(tuple_indices, self._input_predictions, strict=False)
        ]

    def forward(self, pred_cond: torch.Tensor, pred_uncond: torch.Tensor | None = None) -> GuiderOutput:
        if not self._is_cfg_enabled() or pred_uncond is None:
            pred = pred_cond
        else:
            cos = cosine(pred_cond, pred_uncond).min().item()  # every sample must agree: one batch, one decision
            self.last_cosine = cos
            step = self._step or 0
            if self.truncated_at is None and step + 1 >= self.warmup_steps and cos > self.gamma:
                self.truncated_at = step + 1
            shift = pred_cond - pred_uncond
            pred = (pred_cond if self.use_original_formulation else pred_uncond) + self.guidance_scale * shift
        if self.guidance_rescale > 0.0:
            pred = rescale_noise_cfg(pred, pred_cond, self.guidance_rescale)
        return GuiderOutput(pred=pred, pred_cond=pred_cond, pred_uncond=pred_uncond)

    @property
    def is_conditional(self) -> bool:
        return self._count_prepared == 1

    @property
    def num_conditions(self) -> int:
        return 2 if self._is_cfg_enabled() else 1

    def _is_cfg_enabled(self) -> bool:
        if not self._enabled:
            return False
        if self.truncated_at is not None and self._step is not None and self._step >= self.truncated_at:
            return False
        in_range = True
        if self._num_inference_steps is not None:
            in_range = (
                int(self._start * self._num_inference_steps) <= self._step < int(self._stop * self._num_inference_steps)
            )
        zero = 0.0 if self.use_original_formulation else 1.0
        return in_range and not math.isclose(self.guidance_scale, zero)
