"""The lab's small denoisers: an EDM-preconditioned MLP conditioned on the class label and the guidance scale w.

Elucidating the Design Space of Diffusion-Based Generative Models (EDM): https://arxiv.org/abs/2206.00364 —
D(x, σ, y, w) = c_skip(σ)·x + c_out(σ)·F(c_in(σ)·x, c_noise(σ), y, w), so the raw network F sees unit-scale
inputs and targets at every noise level. The label ``num_classes`` is the null (unconditional) label.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from core.errors import OptiscopeError, check_int, check_range, check_seed

MAX_WIDTH, MAX_DEPTH = 1024, 8
FREQUENCIES = 6  # Fourier features per scalar input (log σ and w): 2^0 … 2^5 cycles over its range


def fourier(value: torch.Tensor, n: int = FREQUENCIES) -> torch.Tensor:
    """sin/cos features of a (B,) tensor at geometric frequencies, shape (B, 2n)."""
    angles = value[:, None] * (math.pi * 2.0 ** torch.arange(n, device=value.device, dtype=value.dtype))
    return torch.cat([angles.sin(), angles.cos()], dim=1)


class EDMMLP(nn.Module):
    """An EDM-preconditioned MLP denoiser on 2-D points: D(x, σ, y, w), a class label y and (optionally) w.

    Args:
        num_classes (`int`): classes 0 … num_classes − 1; ``num_classes`` is the null label (unconditional).
        width (`int`, defaults to `128`): hidden units per layer.
        depth (`int`, defaults to `3`): hidden layers.
        sigma_data (`float`, defaults to `1.42`): EDM's σ_data, the data's std (the 8-mode toy's is √(2 + .15²)).
        w_range (`tuple[float, float]`, optional): a w-conditioned student and the guidance scales it was
            distilled on (it cannot extrapolate beyond them); None for a plain denoiser that ignores w.
        seed (`int`, defaults to `0`): the initial weights.

    Shapes:
        x: (B, 2), sigma: (B,) or scalar, labels: (B,), w: (B,) or scalar -> D: (B, 2).
    """

    def __init__(
        self,
        num_classes: int = 8,
        *,
        width: int = 128,
        depth: int = 3,
        sigma_data: float = 1.42,
        w_range: tuple[float, float] | None = None,
        seed: int = 0,
    ):
        super().__init__()
        with torch.random.fork_rng(devices=[]):  # torch's initialisers draw from the global RNG: seed a fork of it
            torch.manual_seed(check_seed(seed))
            self._build(num_classes, width, depth, sigma_data, w_range)

    def _build(self, num_classes, width, depth, sigma_data, w_range) -> None:
        self.num_classes = check_int("num_classes", num_classes, 1, 1000)
        width = check_int("width", width, 1, MAX_WIDTH)
        depth = check_int("depth", depth, 1, MAX_DEPTH)
        self.sigma_data = check_range("sigma_data", sigma_data, 1e-3, 1e3)
        if w_range is not None and not (0.0 <= w_range[0] < w_range[1] < math.inf):
            raise OptiscopeError(f"Expected `w_range` (low, high) with 0 <= low < high, but got {w_range!r}")
        self.w_range = None if w_range is None else (float(w_range[0]), float(w_range[1]))
        self.label = nn.Embedding(num_classes + 1, 16)
        inputs = 2 + 2 * FREQUENCIES + 16 + (2 * FREQUENCIES if w_range else 0)
        layers: list[nn.Module] = []
        for i in range(depth):
            layers += [nn.Linear(inputs if i == 0 else width, width), nn.SiLU()]
        self.body = nn.Sequential(*layers, nn.Linear(width, 2))

    def forward(
        self, x: torch.Tensor, sigma: torch.Tensor | float, labels: torch.Tensor, w: torch.Tensor | float | None = None
    ) -> torch.Tensor:
        sigma = torch.as_tensor(sigma, dtype=x.dtype, device=x.device).expand(len(x))
        total = sigma.square() + self.sigma_data**2
        c_skip, c_out = self.sigma_data**2 / total, sigma * self.sigma_data / total.sqrt()
        features = [x / total.sqrt()[:, None], fourier(sigma.clamp_min(1e-8).log() / 8), self.label(labels.long())]
        if self.w_range is not None:
            if w is None:
                raise OptiscopeError("This student is conditioned on the guidance scale: pass `w`")
            w = torch.as_tensor(w, dtype=x.dtype, device=x.device).expand(len(x))
            features.append(fourier((w - self.w_range[0]) / (4 * (self.w_range[1] - self.w_range[0]))))
        out = self.body(torch.cat(features, dim=1))
        return c_skip[:, None] * x + c_out[:, None] * out

    def loss_weight(self, sigma: torch.Tensor) -> torch.Tensor:
        """EDM's λ(σ) = 1/c_out(σ)²: the x0 error weighted as the raw network's error (≈ 1/σ² at low noise)."""
        return (sigma.square() + self.sigma_data**2) / (sigma * self.sigma_data).square()
