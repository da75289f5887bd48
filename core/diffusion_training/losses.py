"""The training losses of ``run``, one per objective: (student, teacher, mixture, config, generator, steps) -> loss.

Guided distillation (stage 1, and stage 2's progressive targets): https://arxiv.org/abs/2210.03142; Self-NPO's
truncated targets: https://arxiv.org/abs/2505.11777; DSM with EDM's weighting: https://arxiv.org/abs/2206.00364.

Every random draw is made on the CPU from the run's generator and moved to the mixture's device, so one seed
gives one run on every device.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING

import torch

from core.guidance.denoisers import SIGMA_MAX, SIGMA_MIN

from . import sampling
from .mlp import EDMMLP

if TYPE_CHECKING:
    from .train import TrainConfig


def exact_x0(mixture, x: torch.Tensor, sigma: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
    """The mixture's exact D(x, σ, y) with one σ per sample (``core.guidance`` takes one σ per call).

    Shapes: x: (B, 2), sigma: (B,), labels: (B,) or None -> (B, 2).
    """
    var = (mixture.std**2 + sigma.double().square())[:, None]  # (B, 1)
    x64 = x.double()
    logits = -torch.cdist(x64, mixture.means).square() / (2 * var)  # (B, M)
    if labels is not None:
        logits = logits + mixture._mask[labels.long()]
    shrink = mixture.std**2 / var
    x0 = (1 - shrink) * (torch.softmax(logits, dim=1) @ mixture.means) + shrink * x64
    return x0.to(x.dtype)


def levels(config: TrainConfig, steps: int) -> torch.Tensor:
    """The student's σ levels: every k-th level of the teacher's grid in stage 2 (grids must nest)."""
    if config.objective != "progressive":
        return sampling.grid(steps)
    return sampling.grid(config.teacher_steps)[:: config.teacher_steps // steps]


def _randn(shape: tuple[int, ...], gen: torch.Generator, device: torch.device) -> torch.Tensor:
    return torch.randn(shape, generator=gen).to(device)  # drawn on the CPU: the same run on every device


def _data(mixture, n: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    idx = torch.randint(0, len(mixture.means), (n,), generator=gen).to(mixture.device)
    x0 = mixture.means[idx].float() + mixture.std * _randn((n, 2), gen, mixture.device)
    return x0, mixture.classes[idx]


def _sigmas(config: TrainConfig, n: int, gen: torch.Generator, device: torch.device) -> torch.Tensor:
    log_sigma = config.log_sigma_mean + config.log_sigma_std * _randn((n,), gen, device)
    return log_sigma.exp().clamp(SIGMA_MIN, 4 * SIGMA_MAX)


def _uniform_w(student: EDMMLP, n: int, gen: torch.Generator, device: torch.device) -> torch.Tensor:
    low, high = student.w_range
    return low + (high - low) * torch.rand((n,), generator=gen).to(device)


def _weighted(student: EDMMLP, pred: torch.Tensor, target: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    return (student.loss_weight(sigma) * (pred - target).square().sum(1)).mean()


def _dsm_loss(student, teacher, mixture, config, gen, _steps) -> torch.Tensor:
    x0, labels = _data(mixture, config.batch_size, gen)
    dropped = torch.rand(len(labels), generator=gen).to(labels.device) < config.label_dropout
    labels = torch.where(dropped, mixture.num_classes, labels)
    sigma = _sigmas(config, len(x0), gen, x0.device)
    x = x0 + sigma[:, None] * _randn(x0.shape, gen, x0.device)
    return _weighted(student, student(x, sigma, labels), x0, sigma)


def _guided_loss(student, teacher, mixture, config, gen, _steps) -> torch.Tensor:
    x0, labels = _data(mixture, config.batch_size, gen)
    sigma, w = _sigmas(config, len(x0), gen, x0.device), _uniform_w(student, len(x0), gen, x0.device)
    x = x0 + sigma[:, None] * _randn(x0.shape, gen, x0.device)
    d_c, d_u = exact_x0(mixture, x, sigma, labels), exact_x0(mixture, x, sigma, None)
    return _weighted(student, student(x, sigma, labels, w), d_u + w[:, None] * (d_c - d_u), sigma)


def _progressive_loss(student, teacher, mixture, config, gen, steps) -> torch.Tensor:
    """Two teacher Euler steps z_t → z_mid → z_s make the target x̃ = (z_s − (σ_s/σ_t)z_t) / (1 − σ_s/σ_t)."""
    x0, labels = _data(mixture, config.batch_size, gen)
    grid = levels(config, steps * 2).to(x0.device, torch.float32)  # the teacher's grid
    k = 2 * torch.randint(0, steps, (len(x0),), generator=gen).to(x0.device)
    s_t, s_mid, s_s = grid[k], grid[k + 1], grid[k + 2]
    w = _uniform_w(student, len(x0), gen, x0.device)
    z_t = x0 + s_t[:, None] * _randn(x0.shape, gen, x0.device)
    with torch.no_grad():
        x_hat = teacher(z_t, s_t, labels, w)
        z_mid = x_hat + (s_mid / s_t)[:, None] * (z_t - x_hat)
        x_hat = teacher(z_mid, s_mid, labels, w)
        z_s = x_hat + (s_s / s_mid)[:, None] * (z_mid - x_hat)
        ratio = (s_s / s_t)[:, None]
        target = (z_s - ratio * z_t) / (1 - ratio)  # = z_s on the last step (σ_s = 0)
    return _weighted(student, student(z_t, s_t, labels, w), target, s_t)


def _self_npo_loss(student, teacher, mixture, config, gen, _steps) -> torch.Tensor:
    """Self-NPO: from z_{t_i} ∼ q(·|x0), ``npo_window`` teacher DDIM steps guided by D_c + w_neg(D_c − D_u);
    its x0 at the end point is the target of the student at a re-noised point x' (t' above the end point)."""
    x0, labels = _data(mixture, config.batch_size, gen)
    grid = sampling.grid(config.npo_grid).to(x0.device, torch.float32)
    i = torch.randint(0, config.npo_grid, (len(x0),), generator=gen).to(x0.device)
    z = x0 + grid[i][:, None] * _randn(x0.shape, gen, x0.device)
    null = torch.full_like(labels, mixture.num_classes)

    def anti(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        d_c = teacher(x, sigma.clamp_min(SIGMA_MIN), labels)
        return d_c + config.w_neg * (d_c - teacher(x, sigma.clamp_min(SIGMA_MIN), null))

    with torch.no_grad():
        for j in range(config.npo_window):
            s, s_next = grid[(i + j).clamp_max(config.npo_grid)], grid[(i + j + 1).clamp_max(config.npo_grid)]
            pred = anti(z, s)
            z = torch.where((s > 0)[:, None], pred + (s_next / s.clamp_min(SIGMA_MIN))[:, None] * (z - pred), z)
        s_end = grid[(i + config.npo_window).clamp_max(config.npo_grid)]
        target = torch.where((s_end > 0)[:, None], anti(z, s_end), z)
        low = s_end.clamp_min(SIGMA_MIN).log()
        s_new = (low + (math.log(SIGMA_MAX) - low) * torch.rand(len(z), generator=gen).to(z.device)).exp()
        x_new = z + (s_new.square() - s_end.square()).clamp_min(0).sqrt()[:, None] * _randn(z.shape, gen, z.device)
    return (student(x_new, s_new, labels) - target).square().sum(1).mean()  # plain MSE, as the reference


LOSSES: dict[str, Callable[..., torch.Tensor]] = {
    "dsm": _dsm_loss,
    "guided": _guided_loss,
    "progressive": _progressive_loss,
    "self_npo": _self_npo_loss,
}
