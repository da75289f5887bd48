"""The race's workloads: four small models that train to their targets in seconds on one CPU thread.

A mini-AlgoPerf (Kasimbeg et al., https://arxiv.org/abs/2505.24005): each workload has a validation metric to
minimise, a ``step_hint`` (the target-setting budget; a race runs 1.5×) and a target set by AlgoPerf's rule scaled
down (:data:`TARGET_RECIPE`). Targets are stored unrounded: writing 4/449 as 0.0089 makes every run miss.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

import torch
from torch import nn

from core.data.digits import load_digits_split
from core.device import generator
from core.errors import check_choice

TARGET_RECIPE = (
    "NadamW (AlgoPerf's self-tuning betas, eps and decoupled weight decay, 2% linear warmup then cosine to 0 at "
    "step_hint), learning-rate grid {3e-3, 1e-2, 3e-2, 1e-1, 3e-1}, seeds 0-2, step_hint steps; target = median over "
    "the seeds of the best validation metric at the best learning rate (`python -m core.optimizer_race.studies "
    "--calibrate`)."
)
CALIBRATION_LRS = (3e-3, 1e-2, 3e-2, 1e-1, 3e-1)
BATCH = 128


@dataclass(frozen=True)
class Workload:
    """One race lane: a model, its data, the metric (lower is better) and the target it must reach."""

    key: str
    title: str
    metric: str  # the validation metric's name
    step_hint: int  # the target-setting budget; a race runs 1.5 × step_hint
    every: int  # evaluate every `every` steps
    tuned_lr: float  # NadamW's best grid learning rate (the calibrated baseline)
    target: float  # strict: the recipe's median best, unrounded
    relaxed_target: float  # looser: ~1.2× the strict loss targets, about 2× the strict error rates
    build: Callable[[torch.Generator], nn.Module]
    data: Callable[[], dict[str, torch.Tensor]]
    loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    score: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # the validation metric

    @property
    def budget(self) -> int:
        """Steps of one race run (AlgoPerf's self-tuning budget is 1.5 × the target-setting one)."""
        return math.ceil(1.5 * self.step_hint)


def init_(model: nn.Module, gen: torch.Generator) -> nn.Module:
    """torch's default Linear init, U(±1/√fan_in) for weights and biases, drawn from ``gen`` (not the global RNG)."""
    for layer in model.modules():
        if isinstance(layer, nn.Linear):
            bound = 1.0 / math.sqrt(layer.in_features)
            nn.init.uniform_(layer.weight, -bound, bound, generator=gen)
            nn.init.uniform_(layer.bias, -bound, bound, generator=gen)
    return model


def _mlp(sizes: tuple[int, ...], act: type[nn.Module]) -> Callable[[torch.Generator], nn.Module]:
    def build(gen: torch.Generator) -> nn.Module:
        layers: list[nn.Module] = []
        for fan_in, fan_out in zip(sizes[:-1], sizes[1:], strict=True):
            layers += [nn.Linear(fan_in, fan_out), act()]
        return init_(nn.Sequential(*layers[:-1]), gen)

    return build


@lru_cache(maxsize=1)
def digits() -> dict[str, torch.Tensor]:
    """The 1,348 / 449 digits split of ``load_digits_split(0.25, seed=0)``, flattened to 64 features."""
    split = load_digits_split(0.25, seed=0)
    return {k: v.flatten(1) if k.startswith("x") else v for k, v in split.items()}


@lru_cache(maxsize=1)
def autoencoder_digits() -> dict[str, torch.Tensor]:
    """Digits whose target is the image itself."""
    d = digits()
    return {"x_train": d["x_train"], "y_train": d["x_train"], "x_test": d["x_test"], "y_test": d["x_test"]}


@lru_cache(maxsize=1)
def spirals(n_train: int = 1000, n_test: int = 500, noise: float = 0.6, seed: int = 0) -> dict[str, torch.Tensor]:
    """Two interleaved spirals in the plane (1.5 turns each), labels 0/1, with Gaussian noise."""
    gen = generator(seed)
    n = n_train + n_test
    label = torch.arange(n) % 2
    radius = torch.rand(n, generator=gen) * 3 * math.pi + 0.5  # 1.5 turns
    angle = radius + math.pi * label
    x = torch.stack([radius * torch.cos(angle), radius * torch.sin(angle)], 1) / math.pi
    x = x + noise * torch.randn(n, 2, generator=gen) / math.pi
    order = torch.randperm(n, generator=gen)
    x, label = x[order], label[order]
    return {"x_train": x[:n_train], "y_train": label[:n_train], "x_test": x[n_train:], "y_test": label[n_train:]}


def _error_rate(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return (logits.argmax(1) != y).float().mean()


_CE, _MSE = nn.functional.cross_entropy, nn.functional.mse_loss
_DIGITS = {"data": digits, "loss": _CE}
WORKLOADS: dict[str, Workload] = {
    w.key: w
    for w in (
        Workload(
            key="digits_mlp",
            title="Digits MLP 64-64-10",
            metric="val error",
            step_hint=400,
            every=10,
            tuned_lr=0.1,
            target=0.011135857552289963,
            relaxed_target=0.020,
            build=_mlp((64, 64, 10), nn.ReLU),
            score=_error_rate,
            **_DIGITS,
        ),
        Workload(
            key="digits_softmax",
            title="Digits softmax regression",
            metric="val CE",
            step_hint=400,
            every=10,
            tuned_lr=0.3,
            target=0.12000417709350586,
            relaxed_target=0.14,
            build=_mlp((64, 10), nn.ReLU),
            score=_CE,
            **_DIGITS,
        ),
        Workload(
            key="spirals_mlp",
            title="Two-spirals MLP 2-64-64-2",
            metric="val error",
            step_hint=600,
            every=20,
            tuned_lr=0.03,
            target=0.012000000104308128,
            relaxed_target=0.020,
            build=_mlp((2, 64, 64, 2), nn.Tanh),
            data=spirals,
            loss=_CE,
            score=_error_rate,
        ),
        Workload(
            key="digits_ae",
            title="Digits autoencoder 64-32-8-32-64",
            metric="val MSE",
            step_hint=600,
            every=20,
            tuned_lr=0.03,
            target=0.024547893553972244,
            relaxed_target=0.030,
            build=_mlp((64, 32, 8, 32, 64), nn.Tanh),
            data=autoencoder_digits,
            loss=_MSE,
            score=_MSE,
        ),
    )
}


def get_workload(key: str) -> Workload:
    """The registered workload ``key`` (an OptiscopeError names the known keys otherwise)."""
    return WORKLOADS[check_choice("workload", key, tuple(WORKLOADS))]
