"""Denoisers that run here: exact mixtures (2-D toy, smoothed-empirical digits) and ε-models (the digits UNet).

Every denoiser offers the same members, which is all `run()` needs: ``sample_shape``, ``num_classes``,
``device``, ``dtype``, ``max_sample_steps`` (its budget), ``levels(steps)`` (noise levels, highest first),
``init(n, seed)``, ``predict_x0(x, level, labels)`` (labels None = unconditional) and ``step(x, x0, i, levels)``.
Guidance always acts on the x0 prediction; ε-models convert to and from ε around it. Denoisers are
read-only after construction, so one instance can serve several threads at once.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch

from core.errors import OptiscopeError, check_int, check_positive

SIGMA_MAX, SIGMA_MIN, RHO = 20.0, 0.002, 7.0


def karras_sigmas(
    steps: int, sigma_max: float = SIGMA_MAX, sigma_min: float = SIGMA_MIN, rho: float = RHO
) -> torch.Tensor:
    """Karras et al. (EDM) noise levels from σ_max to σ_min, then a final 0, shape (steps + 1,), float64 on the CPU."""
    ramp = torch.linspace(0, 1, steps, dtype=torch.float64)
    sigmas = (sigma_max ** (1 / rho) + ramp * (sigma_min ** (1 / rho) - sigma_max ** (1 / rho))) ** rho
    return torch.cat([sigmas, sigmas.new_zeros(1)])


def _seeded_noise(shape: tuple[int, ...], seed: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    # drawn on the CPU, then moved: one seed gives the same start on every device (cpu/cuda comparisons)
    noise = torch.randn(shape, generator=torch.Generator().manual_seed(int(seed)), dtype=dtype)
    return noise.to(device)


class EDMDenoiser:
    """Base of the exact denoisers: the deterministic EDM Euler ODE on the Karras schedule."""

    sampler_name = "EDM Euler, Karras σ 20 → 0.002 (ρ = 7)"
    level_name = "σ"
    dtype = torch.float64
    sample_shape: tuple[int, ...]
    device: torch.device

    def levels(self, steps: int) -> torch.Tensor:
        return karras_sigmas(steps)

    def init(self, n: int, seed: int) -> torch.Tensor:
        return SIGMA_MAX * _seeded_noise((n, *self.sample_shape), seed, self.dtype, self.device)

    def step(self, x: torch.Tensor, x0: torch.Tensor, i: int, levels: torch.Tensor) -> torch.Tensor:
        sigma, sigma_next = levels[i].item(), levels[i + 1].item()
        return x + (sigma_next - sigma) * (x - x0) / sigma  # Euler on dx/dσ = (x − D(x, σ)) / σ


class MixtureDenoiser(EDMDenoiser):
    r"""The exact denoiser of an isotropic Gaussian mixture with one component per mean (Karras et al. 2022, eq. 57).

    Component i is N(μ_i, s²I) with class c_i. D_y(x, σ) is the posterior-weighted mean over the
    components of class y (over all of them when y is None): E[x0 | x, σ] = Σ_i p(i|x) (μ_i + s²/(s²+σ²)(x − μ_i)).
    Everything lives on ``means``' device.

    Shapes:
        means: (M, *sample_shape), classes: (M,); x: (N, *sample_shape), labels: (N,) -> x0: (N, *sample_shape).
    """

    def __init__(
        self, means: torch.Tensor, classes: torch.Tensor, std: float, num_classes: int, *, max_sample_steps: int
    ):
        self.std = check_positive("std", std)
        self.device = means.device
        self.sample_shape = tuple(means.shape[1:])
        self.means = means.reshape(len(means), -1).to(self.dtype)  # (M, D)
        self.classes = classes.long().to(self.device)
        self.num_classes = num_classes
        self.max_sample_steps = max_sample_steps
        # (num_classes, M): −inf masks out the components of other classes
        onehot = self.classes[None, :] == torch.arange(num_classes, device=self.device)[:, None]
        self._mask = torch.where(onehot, 0.0, -math.inf).to(self.dtype)

    def predict_x0(self, x: torch.Tensor, level: float | torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        var = self.std**2 + float(level) ** 2
        flat = x.reshape(len(x), -1).to(self.dtype)  # (N, D)
        logits = -torch.cdist(flat, self.means).square() / (2 * var)  # (N, M)
        if labels is not None:
            logits = logits + self._mask[labels.long()]
        post = torch.softmax(logits, dim=1)
        shrink = self.std**2 / var
        x0 = (1 - shrink) * (post @ self.means) + shrink * flat  # Σ p_i (μ_i + shrink·(x − μ_i))
        return x0.reshape(x.shape).to(x.dtype)


class GaussianMixtureDenoiser(MixtureDenoiser):
    """The 2-D toy: ``n_classes`` Gaussians of std ``std`` evenly on a circle of ``radius``, one class each.

    Budget: 50,000 sample-steps (samples × steps) per run, a fraction of a second on one CPU thread.

    >>> D = GaussianMixtureDenoiser()
    >>> D.predict_x0(torch.zeros(1, 2, dtype=torch.float64), 1000.0, torch.tensor([0])).round(decimals=3)
    tensor([[2., 0.]], dtype=torch.float64)
    """

    def __init__(
        self, n_classes: int = 8, radius: float = 2.0, std: float = 0.15, *, device: torch.device | str = "cpu"
    ):
        n_classes = check_int("n_classes", n_classes, 2, 64)
        self.radius = check_positive("radius", radius)
        angles = 2 * math.pi * torch.arange(n_classes, dtype=torch.float64, device=device) / n_classes
        means = radius * torch.stack([angles.cos(), angles.sin()], 1)
        classes = torch.arange(n_classes, device=device)
        super().__init__(means, classes, std, n_classes, max_sample_steps=50_000)


class EmpiricalDigitsDenoiser(MixtureDenoiser):
    """The exact "smoothed empirical" denoiser of the 8×8 digits: every training image is a Gaussian of std ``std``.

    Images live in [-1, 1], shape (1, 8, 8), like the UNet's. Budget: 20,000 sample-steps per run.
    """

    def __init__(self, std: float = 0.2, *, seed: int = 0, device: torch.device | str = "cpu"):
        from core.data.digits import load_digits_split

        from .models import to_model_range

        data = load_digits_split(0.25, seed=check_int("seed", seed, 0, 2**31 - 1))
        means = to_model_range(data["x_train"]).double().to(device)
        super().__init__(means, data["y_train"], std, 10, max_sample_steps=20_000)


def leading_timesteps(steps: int, num_train_timesteps: int, steps_offset: int = 0) -> torch.Tensor:
    """DDIM's "leading" timesteps (as ``DDIMScheduler.set_timesteps``), as a pure function: no scheduler is touched.

    >>> leading_timesteps(4, 1000)
    tensor([750, 500, 250,   0])
    """
    steps = check_int("steps", steps, 1, num_train_timesteps)
    ratio = num_train_timesteps // steps
    return torch.from_numpy((np.arange(steps) * ratio)[::-1].copy() + steps_offset)


class EpsilonDenoiser:
    """An ε-prediction model sampled with DDIM (η = 0, "leading" spacing, no clipping); guidance on x0.

    ``model_fn(x, t, labels)`` returns ε; the unconditional branch passes ``null_label`` for every sample.
    x̂0 = (x_t − √(1−ᾱ)ε)/√ᾱ, and the guided x̂0 is mapped back with ε̂ = (x_t − √ᾱ·x̂0)/√(1−ᾱ).
    Only ᾱ is kept from the scheduler (a tensor read, never written), so a shared instance is thread-safe
    as long as ``model_fn`` is (a forward pass of a module in eval mode is).
    """

    sampler_name = "DDIM (η = 0), leading timesteps, clip_sample off"
    level_name = "t"
    dtype = torch.float32

    def __init__(
        self,
        model_fn: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor],
        scheduler_config,
        sample_shape: tuple[int, ...],
        num_classes: int,
        null_label: int,
        *,
        device: torch.device | str = "cpu",
        max_sample_steps: int = 4_000,
        decode: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ):
        from diffusers import DDIMScheduler

        self.model_fn = model_fn
        self.sample_shape = tuple(sample_shape)
        self.num_classes = int(num_classes)
        self.null_label = int(null_label)
        self.device = torch.device(device)
        self.max_sample_steps = max_sample_steps
        self.decode = decode  # latents -> images (a VAE), or None
        scheduler = DDIMScheduler.from_config(scheduler_config, clip_sample=False, set_alpha_to_one=True)
        self.num_train_timesteps = int(scheduler.config.num_train_timesteps)
        self.steps_offset = int(scheduler.config.steps_offset)
        self.alphas_cumprod = scheduler.alphas_cumprod.double()  # (num_train_timesteps,) on the CPU: scalars only

    def levels(self, steps: int) -> torch.Tensor:
        return leading_timesteps(steps, self.num_train_timesteps, self.steps_offset)

    def init(self, n: int, seed: int) -> torch.Tensor:
        return _seeded_noise((n, *self.sample_shape), seed, self.dtype, self.device)

    def _alpha(self, t: int) -> float:
        return self.alphas_cumprod[t].item() if t >= 0 else 1.0  # set_alpha_to_one: ᾱ = 1 after the last step

    @torch.no_grad()
    def predict_x0(self, x: torch.Tensor, level, labels: torch.Tensor | None) -> torch.Tensor:
        t = int(level)
        if labels is None:
            labels = torch.full((len(x),), self.null_label, dtype=torch.long, device=x.device)
        eps = self.model_fn(x, torch.full((len(x),), t, dtype=torch.long, device=x.device), labels.long())
        a = self._alpha(t)
        return (x - math.sqrt(1 - a) * eps) / math.sqrt(a)

    def step(self, x: torch.Tensor, x0: torch.Tensor, i: int, levels: torch.Tensor) -> torch.Tensor:
        t = int(levels[i])
        t_prev = int(levels[i + 1]) if i + 1 < len(levels) else -1
        a, a_prev = self._alpha(t), self._alpha(t_prev)
        eps = (x - math.sqrt(a) * x0) / math.sqrt(1 - a)
        return math.sqrt(a_prev) * x0 + math.sqrt(1 - a_prev) * eps  # DDIM, η = 0


def digits_unet(*, model: torch.nn.Module | None = None) -> EpsilonDenoiser:
    """The shipped class-conditional digits UNet (zoo `digits-unet`) as a denoiser; label 10 is the null class.

    ``model`` (e.g. the app's shared ``ui.zoo_model("digits-unet")``) is only called, never changed; the
    denoiser runs on its device. Budget: 4,000 sample-steps per run (about 7 s on one CPU thread).
    """
    from core import zoo

    from .models import NULL_CLASS, make_scheduler

    model = zoo.load("digits-unet") if model is None else model
    device = next(model.parameters()).device

    def model_fn(x: torch.Tensor, t: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return model(x, t, class_labels=labels).sample

    config = make_scheduler("ddpm").config
    return EpsilonDenoiser(model_fn, config, (1, 8, 8), NULL_CLASS, NULL_CLASS, device=device, max_sample_steps=4_000)


def check_target(denoiser, target) -> torch.Tensor:
    """``target`` as a (N,) long tensor of classes of ``denoiser``, on its device."""
    try:
        raw = torch.as_tensor(target).reshape(-1)
    except (TypeError, ValueError, RuntimeError):
        raise OptiscopeError(f"Expected `target` to be class indices, but got {target!r}") from None
    if raw.is_complex() or raw.dtype == torch.bool or (raw.is_floating_point() and not torch.equal(raw, raw.round())):
        raise OptiscopeError(f"Expected `target` to be whole class indices, but got {raw.tolist()[:10]}")
    target = raw.long()
    if len(target) == 0:
        raise OptiscopeError("Expected `target` to hold at least one class index, but got none")
    if target.min() < 0 or target.max() >= denoiser.num_classes:
        raise OptiscopeError(
            f"Expected `target` classes between 0 and {denoiser.num_classes - 1}, but got {target.tolist()[:10]}"
        )
    return target.to(denoiser.device)
