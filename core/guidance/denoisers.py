"""Denoisers that run here: exact mixtures (2-D toy, smoothed-empirical digits) and ε-models (the digits UNet).

Every denoiser offers the same five members, which is all `sample()` needs:
``sample_shape``, ``num_classes``, ``levels(steps)`` (noise levels, highest first), ``init(n, generator)``,
``predict_x0(x, level, labels)`` (labels None = unconditional) and ``step(x, x0, i, levels)``.
Guidance always acts on the x0 prediction; ε-models convert to and from ε around it.
"""

from __future__ import annotations

import math

import torch

SIGMA_MAX, SIGMA_MIN, RHO = 20.0, 0.002, 7.0


def karras_sigmas(
    steps: int, sigma_max: float = SIGMA_MAX, sigma_min: float = SIGMA_MIN, rho: float = RHO
) -> torch.Tensor:
    """Karras et al. (EDM) noise levels from σ_max to σ_min, then a final 0, shape (steps + 1,), float64."""
    ramp = torch.linspace(0, 1, steps, dtype=torch.float64)
    sigmas = (sigma_max ** (1 / rho) + ramp * (sigma_min ** (1 / rho) - sigma_max ** (1 / rho))) ** rho
    return torch.cat([sigmas, sigmas.new_zeros(1)])


class EDMDenoiser:
    """Base of the exact denoisers: the deterministic EDM Euler ODE on the Karras schedule."""

    sampler_name = "EDM Euler, Karras σ 20 → 0.002 (ρ = 7)"
    level_name = "σ"
    dtype = torch.float64

    def levels(self, steps: int) -> torch.Tensor:
        return karras_sigmas(steps)

    def init(self, n: int, generator: torch.Generator) -> torch.Tensor:
        return SIGMA_MAX * torch.randn((n, *self.sample_shape), generator=generator, dtype=self.dtype)

    def step(self, x: torch.Tensor, x0: torch.Tensor, i: int, levels: torch.Tensor) -> torch.Tensor:
        sigma, sigma_next = levels[i].item(), levels[i + 1].item()
        return x + (sigma_next - sigma) * (x - x0) / sigma  # Euler on dx/dσ = (x − D(x, σ)) / σ


class MixtureDenoiser(EDMDenoiser):
    r"""The exact denoiser of an isotropic Gaussian mixture with one component per mean (Karras et al. 2022, eq. 57).

    Component i is N(μ_i, s²I) with class c_i. D_y(x, σ) is the posterior-weighted mean over the
    components of class y (over all of them when y is None): E[x0 | x, σ] = Σ_i p(i|x) (μ_i + s²/(s²+σ²)(x − μ_i)).

    Shapes:
        means: (M, *sample_shape), classes: (M,); x: (N, *sample_shape), labels: (N,) -> x0: (N, *sample_shape).
    """

    def __init__(self, means: torch.Tensor, classes: torch.Tensor, std: float, num_classes: int):
        if std <= 0:
            raise ValueError(f"Expected `std` > 0, but got {std}.")
        self.sample_shape = tuple(means.shape[1:])
        self.means = means.reshape(len(means), -1).to(self.dtype)  # (M, D)
        self.classes = classes.long()
        self.std = float(std)
        self.num_classes = num_classes
        # (num_classes, M): −inf masks out the components of other classes
        onehot = self.classes[None, :] == torch.arange(num_classes)[:, None]
        self._mask = torch.where(onehot, 0.0, -math.inf).to(self.dtype)

    def predict_x0(self, x: torch.Tensor, level: float | torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        sigma2 = float(level) ** 2
        var = self.std**2 + sigma2
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

    >>> D = GaussianMixtureDenoiser()
    >>> D.predict_x0(torch.zeros(1, 2, dtype=torch.float64), 1000.0, torch.tensor([0])).round(decimals=3)
    tensor([[2., 0.]], dtype=torch.float64)
    """

    def __init__(self, n_classes: int = 8, radius: float = 2.0, std: float = 0.15):
        if n_classes < 2 or radius <= 0:
            raise ValueError(f"Expected `n_classes` >= 2 and `radius` > 0, but got {n_classes} and {radius}.")
        angles = 2 * math.pi * torch.arange(n_classes, dtype=torch.float64) / n_classes
        self.radius = float(radius)
        super().__init__(radius * torch.stack([angles.cos(), angles.sin()], 1), torch.arange(n_classes), std, n_classes)


class EmpiricalDigitsDenoiser(MixtureDenoiser):
    """The exact "smoothed empirical" denoiser of the 8×8 digits: every training image is a Gaussian of std ``std``.

    Images live in [-1, 1], shape (1, 8, 8), like the UNet's.
    """

    def __init__(self, std: float = 0.2, seed: int = 0):
        from core.data.digits import load_digits_split

        from .models import to_model_range

        data = load_digits_split(0.25, seed=seed)
        super().__init__(to_model_range(data["x_train"]).double(), data["y_train"], std, 10)


class EpsilonDenoiser:
    """An ε-prediction model sampled with DDIM (η = 0, "leading" spacing, no clipping); guidance on x0.

    ``model_fn(x, t, labels)`` returns ε; the unconditional branch passes ``null_label`` for every sample.
    x̂0 = (x_t − √(1−ᾱ)ε)/√ᾱ, and the guided x̂0 is mapped back with ε̂ = (x_t − √ᾱ·x̂0)/√(1−ᾱ).
    """

    sampler_name = "DDIM (η = 0), leading timesteps, clip_sample off"
    level_name = "t"
    dtype = torch.float32

    def __init__(self, model_fn, scheduler_config, sample_shape, num_classes: int, null_label: int, decode=None):
        from diffusers import DDIMScheduler

        self.model_fn = model_fn
        self.sample_shape = tuple(sample_shape)
        self.num_classes = int(num_classes)
        self.null_label = int(null_label)
        self.decode = decode  # latents -> images (a VAE), or None
        self.scheduler = DDIMScheduler.from_config(
            scheduler_config, clip_sample=False, timestep_spacing="leading", set_alpha_to_one=True
        )
        self.alphas_cumprod = self.scheduler.alphas_cumprod.double()

    def levels(self, steps: int) -> torch.Tensor:
        self.scheduler.set_timesteps(steps)
        return self.scheduler.timesteps.clone()

    def init(self, n: int, generator: torch.Generator) -> torch.Tensor:
        return torch.randn((n, *self.sample_shape), generator=generator, dtype=self.dtype)

    def _alpha(self, t: int) -> float:
        return self.alphas_cumprod[t].item() if t >= 0 else 1.0  # set_alpha_to_one: ᾱ = 1 after the last step

    @torch.no_grad()
    def predict_x0(self, x: torch.Tensor, level, labels: torch.Tensor | None) -> torch.Tensor:
        t = int(level)
        if labels is None:
            labels = torch.full((len(x),), self.null_label, dtype=torch.long)
        eps = self.model_fn(x, torch.full((len(x),), t, dtype=torch.long), labels.long())
        a = self._alpha(t)
        return (x - math.sqrt(1 - a) * eps) / math.sqrt(a)

    def step(self, x: torch.Tensor, x0: torch.Tensor, i: int, levels: torch.Tensor) -> torch.Tensor:
        t = int(levels[i])
        t_prev = int(levels[i + 1]) if i + 1 < len(levels) else -1
        a, a_prev = self._alpha(t), self._alpha(t_prev)
        eps = (x - math.sqrt(a) * x0) / math.sqrt(1 - a)
        return math.sqrt(a_prev) * x0 + math.sqrt(1 - a_prev) * eps  # DDIM, η = 0


def digits_unet(model=None) -> EpsilonDenoiser:
    """The shipped class-conditional digits UNet (zoo `digits-unet`) as a denoiser; label 10 is the null class."""
    from core import zoo

    from .models import NULL_CLASS, make_scheduler

    model = zoo.load("digits-unet") if model is None else model.eval()

    def model_fn(x, t, labels):
        return model(x, t, class_labels=labels).sample

    return EpsilonDenoiser(model_fn, make_scheduler("ddpm").config, (1, 8, 8), NULL_CLASS, NULL_CLASS)
