"""Training an MLP on digits with each perturbation rule against backprop, after "From gradient descent to neural
adaptation" (García Fernández, Ahmad, van Gerven): https://arxiv.org/abs/2510.18812

Every rule feeds its gradient estimate to the same Adam; the true minibatch gradient (autograd) is computed beside
it only to report the estimate's cosine with it. Float64 throughout: a forward difference with a small σ cancels
catastrophically in float32 (the note's pitfall 1).
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch.func import vmap

from core.device import generator
from core.errors import check_budget, check_choice, check_int, check_range, check_seed
from core.learning_rules.noprop import check_digits
from core.learning_rules.perturbation import estimate, mlp_loss, node_perturbation

RULES = {
    "backprop": "Backprop",
    "node": "Node perturbation",
    "forward": "Forward gradient (JVP)",
    "weight": "Weight perturbation",
    "spsa": "SPSA",
}
_ESTIMATOR = {"weight": "weight", "spsa": "spsa", "forward": "forward"}
WORK_BUDGET = 5e11  # multiply-adds: steps × (probes + 2) × batch × parameters (2,000 WP steps at h = 32: 9.3e8)


@dataclass(frozen=True)
class RuleConfig:
    """One learning rule on the MLP 64-``hidden``-10 (the note's recipe: Adam 1e-3, batch 64, one probe)."""

    rule: str = "node"  # a key of RULES
    hidden: int = 32
    lr: float = 1e-3  # Adam's step size
    batch_size: int = 64
    n_samples: int = 1  # probes per step (weight, spsa, forward); node perturbation has one per sample
    sigma: float = 1e-4  # perturbation size (weight, spsa, node)

    def __post_init__(self) -> None:
        check_choice("rule", self.rule, tuple(RULES))
        check_int("hidden", self.hidden, 1, 1024)
        check_range("lr", self.lr, 1e-9, 1.0)
        check_int("batch_size", self.batch_size, 1, 100_000)
        check_int("n_samples", self.n_samples, 1, 10_000)
        check_range("sigma", self.sigma, 1e-12, 1.0)  # σ <= 0 probes nothing; σ > 1 leaves the loss's linear range

    @property
    def passes_per_step(self) -> int:
        """Forward passes per update: K + 1 (weight), 2K (SPSA), K JVPs (forward), clean + noisy (node), 1 (backprop)."""
        k = self.n_samples
        return {"backprop": 1, "node": 2, "forward": k, "weight": k + 1, "spsa": 2 * k}[self.rule]


@dataclass(frozen=True)
class RuleState:
    """Every ``every`` steps: the mean training loss and cosine(estimate, true gradient) over those steps, the
    test loss and accuracy now, forward passes so far, and the training seconds so far (evaluation excluded, the
    true gradient for the cosine included)."""

    step: int
    loss: float
    cosine: float
    test_loss: float
    accuracy: float
    forward_passes: int
    seconds: float


def run(
    data: dict[str, torch.Tensor],
    *,
    config: RuleConfig = RuleConfig(),
    steps: int = 2000,
    every: int = 50,
    seed: int = 0,
    device: torch.device | str | None = None,
) -> Iterator[RuleState]:
    """Train the MLP 64-hidden-10 on digits with ``config.rule``; one :class:`RuleState` every ``every`` steps.

    Args:
        data (`dict`): ``x_train`` (N, 8, 8) or (N, 64), ``y_train`` (N,), ``x_test``, ``y_test`` (labels 0..9).
        config (`RuleConfig`): the rule and its settings. steps (`int`, defaults to `2000`): Adam updates.

    >>> from core.data.digits import load_digits_split
    >>> last = list(run(load_digits_split(0.2), config=RuleConfig(rule="backprop"), steps=20, every=10))[-1]
    >>> last.step, round(last.cosine, 6)
    (20, 1.0)
    """
    if not isinstance(config, RuleConfig):
        raise TypeError(f"Expected `config` to be a RuleConfig, but got {type(config).__name__}")
    steps, every = check_int("steps", steps), check_int("every", every)
    n_params = config.hidden * 75 + 10
    work = steps * (config.n_samples + 2) * config.batch_size * n_params
    check_budget("multiply-adds steps·(probes+2)·batch·parameters", work, WORK_BUDGET)
    x, y, x_test, y_test = check_digits(data, device)
    return _loop(x.double(), y, x_test.double(), y_test, config, steps, every, check_seed(seed))


def _init(hidden: int, g: torch.Generator, device) -> torch.Tensor:
    """nn.Linear's U(±1/√fan_in) weights, zero biases, as one flat vector (w1, b1, w2, b2)."""

    def uniform(*shape: int) -> torch.Tensor:
        bound = 1 / math.sqrt(shape[-1])
        return (torch.rand(*shape, generator=g, device=device, dtype=torch.float64) * 2 - 1).flatten() * bound

    zeros = torch.zeros(hidden + 10, device=device, dtype=torch.float64)
    return torch.cat([uniform(hidden, 64), zeros[:hidden], uniform(10, hidden), zeros[hidden:]])


def unflatten(theta: torch.Tensor, hidden: int) -> dict[str, torch.Tensor]:
    """The flat (d,) vector as the MLP's w1 (h, 64), b1 (h,), w2 (10, h), b2 (10,)."""
    w1, b1, w2, b2 = theta.split([hidden * 64, hidden, 10 * hidden, 10])
    return {"w1": w1.view(hidden, 64), "b1": b1, "w2": w2.view(10, hidden), "b2": b2}


def _estimate(config: RuleConfig, theta, x, y, seed: int) -> torch.Tensor:
    if config.rule == "node":
        grads = node_perturbation(unflatten(theta, config.hidden), x, y, sigma=config.sigma, seed=seed)
        return torch.cat([grads[k].flatten() for k in ("w1", "b1", "w2", "b2")])

    def loss(row: torch.Tensor) -> torch.Tensor:
        return mlp_loss(unflatten(row, config.hidden), x, y).mean()

    batched = loss if config.rule == "forward" else vmap(loss)
    method = _ESTIMATOR[config.rule]
    return estimate(batched, theta, method=method, n_samples=config.n_samples, sigma=config.sigma, seed=seed)


def _loop(x, y, x_test, y_test, config: RuleConfig, steps: int, every: int, seed: int) -> Iterator[RuleState]:
    g = generator(seed, x.device)
    theta = _init(config.hidden, g, x.device).requires_grad_()
    opt = torch.optim.Adam([theta], lr=config.lr)
    losses, cosines, seconds = [], [], 0.0
    for step in range(1, steps + 1):
        start = time.perf_counter()
        batch = torch.randint(len(y), (config.batch_size,), generator=g, device=x.device)
        loss = mlp_loss(unflatten(theta, config.hidden), x[batch], y[batch]).mean()
        (true,) = torch.autograd.grad(loss, theta)
        if config.rule == "backprop":
            grad = true
        else:
            probe_seed = int(torch.randint(2**62, (1,), generator=g, device=x.device))
            grad = _estimate(config, theta.detach(), x[batch], y[batch], probe_seed)
        theta.grad = grad
        opt.step()
        seconds += time.perf_counter() - start
        losses.append(float(loss.detach()))
        cosines.append(float(torch.cosine_similarity(grad, true, 0)))
        if step % every == 0 or step == steps:
            yield _evaluate(step, theta.detach(), config, x_test, y_test, losses, cosines, seconds)
            losses, cosines = [], []


@torch.no_grad()
def _evaluate(step, theta, config: RuleConfig, x, y, losses, cosines, seconds) -> RuleState:
    params = unflatten(theta, config.hidden)
    logits = torch.relu(x @ params["w1"].T + params["b1"]) @ params["w2"].T + params["b2"]
    return RuleState(
        step=step,
        loss=sum(losses) / len(losses),
        cosine=sum(cosines) / len(cosines),
        test_loss=float(mlp_loss(params, x, y).mean()),
        accuracy=float((logits.argmax(-1) == y).double().mean()),
        forward_passes=step * config.passes_per_step,
        seconds=seconds,
    )
