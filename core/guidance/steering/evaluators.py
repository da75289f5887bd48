"""The small models around the samplers: evaluators (proxies) for Dynamic CFG, the toy classifier, judges.

Evaluators score clean predictions; on the 2-D mixture they are exact log-densities, on the digits the
shipped classifier and the distance to the nearest training digit. The judge of a run is always a
different model (on digits: the landscape lab's ``digits-mlp-converged``, a ReLU MLP trained by SGD).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from core.errors import OptiscopeError, check_int, check_range

from ..denoisers import MixtureDenoiser
from ..sweep import reference_samples
from .dynamic import Evaluator


def _mixture(denoiser) -> MixtureDenoiser:
    if not isinstance(denoiser, MixtureDenoiser):
        raise OptiscopeError(f"Expected an exact mixture denoiser, but got {type(denoiser).__name__}")
    return denoiser


def _component_logits(denoiser: MixtureDenoiser, x: torch.Tensor) -> torch.Tensor:
    flat = x.reshape(len(x), -1).to(denoiser.means)
    return -torch.cdist(flat, denoiser.means).square() / (2 * denoiser.std**2)  # (N, M)


def mixture_log_density(denoiser, x: torch.Tensor) -> torch.Tensor:
    """log p_data(x) of the clean mixture (equal weights, isotropic std), shape (N,).

    >>> from core.guidance import GaussianMixtureDenoiser
    >>> round(mixture_log_density(GaussianMixtureDenoiser(), torch.tensor([[2.0, 0.0]])).item(), 3)
    -0.123
    """
    D = _mixture(denoiser)
    d = D.means.shape[1]
    norm = math.log(len(D.means)) + 0.5 * d * math.log(2 * math.pi * D.std**2)
    return torch.logsumexp(_component_logits(D, x), dim=1) - norm


def mixture_class_log_prob(denoiser, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """log p(y|x) of the clean mixture's Bayes classifier, shape (N,)."""
    D = _mixture(denoiser)
    logits = _component_logits(D, x)
    return torch.logsumexp(logits + D._mask[labels.long()], dim=1) - torch.logsumexp(logits, dim=1)


def mixture_nll(denoiser, x: torch.Tensor) -> float:
    """Sample NLL: −mean log p_data(x) of samples ``x`` (lower = closer to the data)."""
    return -mixture_log_density(denoiser, x).mean().item()


def mixture_evaluators(denoiser, *, fidelity: float = 1.0) -> tuple[Evaluator, ...]:
    """Exact oracles of the 2-D mixture: alignment log p(y|x̂0), fidelity log p_data(x̂0) with weight ``fidelity``.

    ``fidelity=0`` leaves alignment alone (the note's overshooting sampler).
    """
    D = _mixture(denoiser)
    fidelity = check_range("fidelity", fidelity, 0.0, 1e3)
    alignment = Evaluator("alignment log p(y|x̂0)", lambda x, y: mixture_class_log_prob(D, x, y))
    if not fidelity:
        return (alignment,)
    return alignment, Evaluator("fidelity log p(x̂0)", lambda x, y: mixture_log_density(D, x), fidelity)


class NearestDigit:
    """Fidelity proxy: −RMS distance of a prediction to its nearest training digit (8×8 in [−1, 1])."""

    def __init__(self, device: torch.device | str = "cpu"):
        from core.data.digits import load_digits_split

        from ..models import to_model_range

        train = to_model_range(load_digits_split(0.25, seed=0)["x_train"]).reshape(-1, 64)
        self.train = train.to(device)
        self.train_sq = self.train.square().sum(1)  # (T,): |a − b|² = |a|² − 2ab + |b|², one matmul

    def __call__(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        flat = x.reshape(len(x), -1).to(self.train)
        sq = flat.square().sum(1, keepdim=True) - 2 * flat @ self.train.T + self.train_sq
        return -(sq.min(dim=1).values.clamp_min(0) / 64).sqrt()


def digits_evaluators(classifier: nn.Module, *, fidelity: float = 3.0) -> tuple[Evaluator, ...]:
    """The digits proxies: the shipped classifier's log p(y|x̂0) and λ·(−RMS to the nearest training digit)."""
    fidelity = check_range("fidelity", fidelity, 0.0, 1e3)
    device = next(classifier.parameters()).device

    def alignment(x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        logits = classifier(x.float())
        return torch.log_softmax(logits, dim=1).gather(1, labels[:, None].long()).squeeze(1)

    evaluators = (Evaluator("alignment log p(y|x̂0) (digits-classifier)", alignment),)
    if not fidelity:
        return evaluators
    return *evaluators, Evaluator("fidelity −RMS to nearest training digit", NearestDigit(device), fidelity)


def judge_accuracy(judge: nn.Module, x: torch.Tensor, target: torch.Tensor) -> float:
    """Digits accuracy by an independent judge taking (N, 8, 8) pixels in [0, 1] (the zoo's ``digits-mlp-*``)."""
    pixels = ((x.reshape(len(x), 8, 8).float().clamp(-1, 1) + 1) / 2).to(next(judge.parameters()).device)
    with torch.no_grad():
        return (judge(pixels).argmax(1).cpu() == target.cpu()).double().mean().item()


def toy_classifier(denoiser, *, steps: int = 400, n_samples: int = 2000, seed: int = 0) -> nn.Module:
    """An "off-the-shelf" classifier of the 2-D mixture: a 2-64-64-C ReLU MLP trained on clean points only.

    Full-batch Adam (lr 1e-2), ``steps`` steps on ``n_samples`` points drawn with ``seed`` (the note's recipe).
    """
    D = _mixture(denoiser)
    steps, n_samples = check_int("steps", steps, 1, 5000), check_int("n_samples", n_samples, 8, 100_000)
    seed = check_int("seed", seed, 0, 2**63 - 2)
    x, y = reference_samples(D, n_samples, seed=seed)
    gen = torch.Generator().manual_seed(seed)
    net = nn.Sequential(nn.Linear(2, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, D.num_classes))
    for layer in (net[0], net[2], net[4]):  # seeded init: never the global RNG
        bound = 1 / math.sqrt(layer.in_features)
        nn.init.uniform_(layer.weight, -bound, bound, generator=gen)
        nn.init.uniform_(layer.bias, -bound, bound, generator=gen)
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    x = x.float()
    for _ in range(steps):
        loss = nn.functional.cross_entropy(net(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return net.eval().requires_grad_(False).to(D.device)
