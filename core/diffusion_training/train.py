"""Training the 2-D denoiser, one optimiser step per state: DSM, guided distillation (stages 1 and 2), Self-NPO.

On Distillation of Guided Diffusion Models: https://arxiv.org/abs/2210.03142 (stage 1: a student conditioned on
w learns the CFG combination (1 + w')D_c − w'D_u = D_u + w(D_c − D_u), w = 1 + w'; stage 2: progressive
distillation halves its sampling steps, google-research ``diffusion_distillation/dpm.py``).
Self-NPO: https://arxiv.org/abs/2505.11777 (truncated fine-tuning of a copy of the model toward its own
guided predictions with w_neg; the copy is CFG's unconditional branch). The teacher everywhere is the toy's
exact denoiser, so every trained model can be compared with the truth.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace

import torch
from torch import nn

from core.errors import OptiscopeError, check_budget, check_choice, check_int, check_positive, check_range, check_seed

from . import sampling
from .losses import LOSSES, levels
from .mlp import EDMMLP

OBJECTIVES = {
    "dsm": "Denoising score matching, labels dropped to ∅ (a plain conditional denoiser)",
    "guided": "Stage 1: a w-conditioned student of the exact teacher's CFG",
    "progressive": "Stage 2: progressive distillation, halving the student's steps",
    "self_npo": "Self-NPO: truncated fine-tuning toward the model's own w_neg-guided predictions",
}
BUDGET = 3e11  # batch × parameters × model calls over the run: ~30 s on one CPU thread
MAX_SAMPLES, SAMPLE_STEPS = 4096, 32


@dataclass(frozen=True)
class TrainConfig:
    """One flat recipe for every objective (defaults: the reference note's toy recipes).

    Args:
        objective (`str`, defaults to `"guided"`): a key of ``OBJECTIVES``.
        batch_size (`int`, defaults to `256`).
        lr (`float`, defaults to `2e-3`): Adam's step, decayed by a cosine to 0 over each phase.
        log_sigma_mean, log_sigma_std (`float`, defaults to `0.0`, `1.6`): training σ ∼ exp N(mean, std²).
        label_dropout (`float`, defaults to `0.15`): "dsm": share of labels replaced by ∅.
        teacher_steps, student_steps (`int`, defaults to `32`, `4`): "progressive": halve from one to the other.
        w_neg (`float`, defaults to `-1.0`): "self_npo": −1 = pure unconditional targets, −5 = anti-guidance.
        npo_grid, npo_window (`int`, defaults to `25`, `5`): "self_npo": teacher steps on a Karras grid.
        ema (`float`, defaults to `0.999`): "self_npo": the teacher is this EMA of the student.
        grad_clip (`float`, defaults to `1.0`): gradient norm clip.
    """

    objective: str = "guided"
    batch_size: int = 256
    lr: float = 2e-3
    log_sigma_mean: float = 0.0
    log_sigma_std: float = 1.6
    label_dropout: float = 0.15
    teacher_steps: int = 32
    student_steps: int = 4
    w_neg: float = -1.0
    npo_grid: int = 25
    npo_window: int = 5
    ema: float = 0.999
    grad_clip: float = 1.0

    def __post_init__(self) -> None:
        check_choice("objective", self.objective, OBJECTIVES)
        check_int("batch_size", self.batch_size, 1, 8192)
        check_range("lr", self.lr, 1e-8, 1.0)
        check_range("log_sigma_mean", self.log_sigma_mean, -6.0, 3.0)
        check_range("log_sigma_std", self.log_sigma_std, 0.0, 5.0)
        check_range("label_dropout", self.label_dropout, 0.0, 1.0)
        check_int("teacher_steps", self.teacher_steps, 2, 256)
        check_int("student_steps", self.student_steps, 1, self.teacher_steps // 2)
        ratio = self.teacher_steps / self.student_steps
        if ratio != 2 ** round(math.log2(ratio)):
            raise OptiscopeError(
                f"Expected `teacher_steps` / `student_steps` to be a power of 2, "
                f"but got {self.teacher_steps} / {self.student_steps}"
            )
        check_range("w_neg", self.w_neg, -20.0, 20.0)
        check_int("npo_grid", self.npo_grid, 2, 256)
        check_int("npo_window", self.npo_window, 1, self.npo_grid)
        check_range("ema", self.ema, 0.0, 1.0)
        check_positive("grad_clip", self.grad_clip)

    @property
    def halvings(self) -> int:
        return round(math.log2(self.teacher_steps / self.student_steps)) if self.objective == "progressive" else 1

    def calls_per_step(self) -> int:
        """Model calls per training step (the budget's unit): teacher passes plus the student's forward."""
        calls = {"dsm": 1, "guided": 1, "progressive": 3, "self_npo": 2 * (self.npo_window + 1) + 1}
        return calls[self.objective]


@dataclass(frozen=True)
class TrainState:
    """One optimiser step (or the mean over the last ``every``).

    ``samples`` (n_samples, 2) are the current model's samples (labels ``sample_labels``) when asked for:
    its own sampler at ``sample_w`` (32 steps; the current step count in stage 2; CFG with the trained
    negative branch for Self-NPO). ``model`` is a frozen copy of the model after this step.
    """

    step: int  # optimiser steps so far (1-based after the first)
    stage: int  # index of the stage in ``run_stages`` (0 for a single ``run``)
    loss: float
    lr: float
    sampler_steps: int  # the student's sampling steps now (stage 2 halves it)
    samples: torch.Tensor | None
    sample_labels: torch.Tensor | None
    model: nn.Module


def run(
    model: EDMMLP,
    mixture,
    *,
    config: TrainConfig = TrainConfig(),
    steps: int = 1000,
    every: int = 1,
    n_samples: int | None = None,
    sample_w: float = 3.0,
    seed: int = 0,
) -> Iterator[TrainState]:
    r"""Train a copy of ``model`` on the 2-D ``mixture`` with ``config.objective``; one state per ``every`` steps.

    Args:
        model (`EDMMLP`): the start point, copied (never changed): a fresh one for "dsm" and "guided"
            ("guided" needs ``w_range``), the stage-1 student for "progressive", a "dsm"-trained base for
            "self_npo" (the base stays the conditional branch of the samples' CFG).
        mixture (`core.guidance.GaussianMixtureDenoiser`): the data and the exact teacher; its device is used.
        config (`TrainConfig`): the recipe.
        steps (`int`, defaults to `1000`): optimiser steps (per halving for "progressive").
        every (`int`, defaults to `1`): yield every k-th step (loss averaged over them) and the last.
        n_samples (`int`, optional): samples drawn with each yielded state (None = none).
        sample_w (`float`, defaults to `3.0`): guidance scale of those samples (inside a student's ``w_range``).
        seed (`int`, defaults to `0`): data, noise and the samples' start.

    Budget: batch × parameters × model calls × steps ≤ 3e11; n_samples ≤ 4096.

    >>> from core.guidance import GaussianMixtureDenoiser
    >>> from core.runs import last_state
    >>> last = last_state(run(EDMMLP(width=16, w_range=(1, 5)), GaussianMixtureDenoiser(), steps=5))
    >>> last.step, last.sampler_steps
    (5, 32)
    """
    if not isinstance(model, EDMMLP):
        raise OptiscopeError(f"Expected `model` to be an EDMMLP, but got {type(model).__name__}")
    if model.num_classes != mixture.num_classes or mixture.sample_shape != (2,):
        raise OptiscopeError(
            f"Expected a 2-D `mixture` with the model's {model.num_classes} classes, "
            f"but got {mixture.num_classes} classes of shape {mixture.sample_shape}"
        )
    if not isinstance(config, TrainConfig):
        raise OptiscopeError(f"Expected `config` to be a TrainConfig, but got {type(config).__name__}")
    needs_w = config.objective in ("guided", "progressive")
    if needs_w != (model.w_range is not None):
        kind = "a w-conditioned (w_range set)" if needs_w else "a plain (no w_range)"
        raise OptiscopeError(f"Objective `{config.objective}` trains {kind} model")
    steps = check_int("steps", steps, 1, 100_000)
    every = check_int("every", every, 1, steps * config.halvings)
    n_samples = None if n_samples is None else check_int("n_samples", n_samples, 1, MAX_SAMPLES)
    low, high = model.w_range or (0.0, 20.0)
    sample_w = check_range("sample_w", sample_w, low, high)
    seed = check_seed(seed)
    params = sum(p.numel() for p in model.parameters())
    work = config.batch_size * params * config.calls_per_step() * steps * config.halvings
    check_budget("parameter-evaluations (batch × parameters × calls × steps)", work, BUDGET, hint="Use fewer steps.")
    return _loop(model, mixture, config, steps, every, n_samples, sample_w, seed)


def _loop(model, mixture, config, steps, every, n_samples, sample_w, seed) -> Iterator[TrainState]:
    device = mixture.device
    base = copy.deepcopy(model).to(device).eval().requires_grad_(False)
    student = copy.deepcopy(base).train().requires_grad_(True)
    gen = torch.Generator().manual_seed(int(seed))
    done, losses = 0, []
    for phase in range(config.halvings):
        sampler_steps = config.teacher_steps >> (phase + 1) if config.objective == "progressive" else SAMPLE_STEPS
        teacher = copy.deepcopy(student).eval().requires_grad_(False)
        opt = torch.optim.Adam(student.parameters(), lr=config.lr, foreach=True)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda i: 0.5 * (1 + math.cos(math.pi * i / steps)))
        loss_fn = LOSSES[config.objective]
        for i in range(steps):
            loss = loss_fn(student, teacher, mixture, config, gen, sampler_steps)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(student.parameters(), config.grad_clip)
            opt.step()
            sched.step()
            if config.objective == "self_npo":
                _ema(teacher, student, config.ema)
            losses.append(loss.item())
            done += 1
            if not math.isfinite(losses[-1]):
                raise OptiscopeError(f"The loss became non-finite at step {done}; lower `lr`")
            if done % every == 0 or (phase == config.halvings - 1 and i == steps - 1):
                snapshot = copy.deepcopy(student).eval().requires_grad_(False)
                samples, labels = _samples(snapshot, base, config, mixture, n_samples, sample_w, sampler_steps, seed)
                lr = opt.param_groups[0]["lr"]
                loss = sum(losses) / len(losses)
                yield TrainState(done, 0, loss, lr, sampler_steps, samples, labels, snapshot)
                losses = []


def run_stages(
    model: EDMMLP,
    mixture,
    stages: Sequence[tuple[TrainConfig, int]],
    *,
    every: int = 1,
    n_samples: int | None = None,
    sample_w: float = 3.0,
    seed: int = 0,
) -> Iterator[TrainState]:
    """``run`` once per ``(config, steps)`` stage, each starting from the previous stage's final model.

    E.g. stage 1 then stage 2 of guided distillation, or a "dsm" base then its Self-NPO negative. Every stage
    is validated when called; steps count on across stages and ``state.stage`` says which one is running.
    """
    if not stages:
        raise OptiscopeError("Expected at least one `(config, steps)` stage, but got none")
    options = {"every": every, "n_samples": n_samples, "sample_w": sample_w, "seed": seed}
    for config, steps in stages:
        run(model, mixture, config=config, steps=steps, **options)  # validation only: nothing runs before `next`
    return _stages(model, mixture, list(stages), options)


def _stages(model, mixture, stages, options) -> Iterator[TrainState]:
    offset = 0
    for index, (config, steps) in enumerate(stages):
        state = None
        for state in run(model, mixture, config=config, steps=steps, **options):
            yield replace(state, step=state.step + offset, stage=index)
        offset, model = state.step + offset, state.model


@torch.no_grad()
def _ema(teacher: nn.Module, student: nn.Module, decay: float) -> None:
    for p_t, p_s in zip(teacher.parameters(), student.parameters(), strict=True):
        p_t.lerp_(p_s, 1 - decay)


def _samples(snapshot, base, config, mixture, n, w, steps, seed):
    if n is None:
        return None, None
    labels = torch.arange(n, device=mixture.device) % mixture.num_classes
    if config.objective in ("guided", "progressive"):
        predict = sampling.student(snapshot, labels, w)
    elif config.objective == "self_npo":
        predict = sampling.model_cfg(base, labels, w, negative=snapshot)
    else:
        predict = sampling.model_cfg(snapshot, labels, w)
    x = sampling.euler(predict, sampling.start_noise(n, seed, mixture.device), levels(config, steps))
    return x.detach(), labels
