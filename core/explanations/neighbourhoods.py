"""The neighbourhoods of the local function approximation (LFA) framework, as samplers in interpretable space.

Each explanation method fits a linear model g(ξ) = wᵀξ (+ b) to the black box on its own neighbourhood Z
of x₀: ξ is the interpretable sample (a binary mask, Gaussian noise, a point on the path from 0), ``x(ξ)``
the model input it stands for, and ``π(ξ)`` its weight. Features are groups of input elements (``features``,
one id per element: each tabular column its own feature, an image patch one feature); ``ξ[features]``
spreads a feature's value over its elements.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from core.errors import OptiscopeError, check_choice, check_int, check_positive, check_range, check_seed

# Weight of the empty and full coalitions in KernelSHAP's regression: infinite in theory; captum's choice.
SHAPLEY_INF_WEIGHT = 1e6


@dataclass(frozen=True)
class LFAConfig:
    """The neighbourhoods' widths, as in the paper's code (AI4LIFE-GROUP/lfa).

    Args:
        sigma (`float`, defaults to `0.1`): std of the Gaussian neighbourhood (C-LIME, SmoothGrad), absolute.
        vg_sigma (`float`, defaults to `0.01`): std of the narrow Gaussian whose limit σ→0 is Vanilla Gradients.
        kernel_width (`float`, defaults to `1.0`): κ of LIME's kernel exp(−‖x₀ − x(ξ)‖²/κ²).
        a (`float`, defaults to `0.95`): Gradient×Input's path α ~ U(a, 1); a → 1 is the limit.
    """

    sigma: float = 0.1
    vg_sigma: float = 0.01
    kernel_width: float = 1.0
    a: float = 0.95

    def __post_init__(self) -> None:
        check_positive("sigma", self.sigma)
        check_positive("vg_sigma", self.vg_sigma)
        check_positive("kernel_width", self.kernel_width)
        check_range("a", self.a, 0.0, 1.0)


DEFAULT_CONFIG = LFAConfig()


@dataclass(frozen=True)
class Samples:
    """Interpretable samples ``xi`` (n, d), their model inputs ``x`` (n, *input), weights (n,)."""

    xi: torch.Tensor
    x: torch.Tensor
    weights: torch.Tensor


@dataclass(frozen=True)
class Neighbourhood:
    """One neighbourhood Z: how ξ is drawn, the input x(ξ) it stands for, and what the fit explains.

    ``delta`` neighbourhoods explain the drop f(x₀) − f(x(ξ)) (Occlusion), the others f(x(ξ)).
    """

    key: str
    label: str
    formula: str  # LaTeX: the distribution of ξ and x(ξ)
    kind: str  # "binary", "additive" or "path": which perturbations of the input it contains
    draw: Callable[[int, int, torch.Tensor, torch.Generator, LFAConfig], tuple[torch.Tensor, torch.Tensor | None]]
    multiplicative: bool
    intercept: bool = True
    delta: bool = False
    deterministic: bool = False


def expand(xi: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
    """Spread interpretable values (n, d) over the input's elements: (n, *features.shape)."""
    return xi[:, features]


def inputs_of(nb: Neighbourhood, xi: torch.Tensor, x0: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
    """x(ξ) for a batch of ξ (n, d); x0 is (1, *input)."""
    spread = expand(xi, features)  # (n, *input)
    if nb.delta:
        return x0 * (1 - spread)
    return x0 * spread if nb.multiplicative else x0 + spread


def sample(
    nb: Neighbourhood, x0: torch.Tensor, features: torch.Tensor, n_samples: int, gen: torch.Generator, config: LFAConfig
) -> Samples:
    """``n_samples`` draws from ``nb`` around x0 (the one-hot neighbourhood always has d)."""
    d = int(features.max()) + 1
    xi, weights = nb.draw(n_samples, d, x0, gen, config)
    x = inputs_of(nb, xi, x0, features)
    if weights is None:
        weights = _exp_kernel(x0, x, config.kernel_width) if nb.key == "binary" else torch.ones_like(xi[:, 0])
    if not float(weights.sum()) > 0:
        raise OptiscopeError(
            f"Every sample's kernel weight underflows to 0 with `kernel_width` {config.kernel_width}: the masked "
            "inputs are too far from x₀ for it; raise it (about the norm of x₀ for images)"
        )
    return Samples(xi, x, weights)


def _exp_kernel(x0: torch.Tensor, x: torch.Tensor, width: float) -> torch.Tensor:
    sq = (x - x0).flatten(1).pow(2).sum(1)  # (n,)
    return torch.exp(-sq / width**2)


def _uniform(n, d, x0, gen):
    return torch.rand(n, 1, generator=gen, device=x0.device, dtype=x0.dtype).expand(n, d)


def _binary(n, d, x0, gen, config):
    return torch.bernoulli(torch.full((n, d), 0.5, device=x0.device, dtype=x0.dtype), generator=gen), None


def shapley_sizes(d: int) -> torch.Tensor:
    """P(k) ∝ (d − 1)/(k (d − k)) for k = 1..d−1: the coalition sizes KernelSHAP draws (unit weights)."""
    k = torch.arange(1, d, dtype=torch.float64)
    p = (d - 1) / (k * (d - k))
    return p / p.sum()


def _shapley(n, d, x0, gen, config):
    if d < 2:
        raise OptiscopeError(f"Expected at least 2 features for KernelSHAP, but got {d}")
    opts = {"device": x0.device, "dtype": x0.dtype}
    k = torch.multinomial(shapley_sizes(d).to(x0.device), max(n - 2, 0), replacement=True, generator=gen) + 1
    ranks = torch.rand(max(n - 2, 0), d, generator=gen, device=x0.device).argsort(1).argsort(1)
    coalitions = (ranks < k[:, None]).to(x0.dtype)  # k ones at uniformly random places
    xi = torch.cat([torch.ones(1, d, **opts), torch.zeros(1, d, **opts), coalitions])[:n]
    weights = torch.ones(len(xi), **opts)
    weights[:2] = SHAPLEY_INF_WEIGHT
    return xi, weights


def _one_hot(n, d, x0, gen, config):
    return torch.eye(d, device=x0.device, dtype=x0.dtype), None


def _gaussian(std: Callable[[LFAConfig], float]):
    def draw(n, d, x0, gen, config):
        return torch.randn(n, d, generator=gen, device=x0.device, dtype=x0.dtype) * std(config), None

    return draw


def _path(low: Callable[[LFAConfig], float]):
    def draw(n, d, x0, gen, config):
        a = low(config)
        return a + (1 - a) * _uniform(n, d, x0, gen), None

    return draw


NEIGHBOURHOODS: dict[str, Neighbourhood] = {
    nb.key: nb
    for nb in (
        Neighbourhood(
            "binary",
            "Binary masks, exponential kernel",
            r"\xi\sim\mathrm{Bern}(\tfrac12)^d,\;"
            r"x=x_0\odot\xi,\;\pi=e^{-\|x_0-x\|^2/\kappa^2}",
            "binary",
            _binary,
            True,
        ),
        Neighbourhood(
            "shapley",
            "Binary masks, Shapley kernel",
            r"|\xi|=k\sim\tfrac{d-1}{k(d-k)},\;x=x_0\odot\xi",
            "binary",
            _shapley,
            True,
        ),
        Neighbourhood(
            "one-hot",
            "One feature removed",
            r"\xi=e_i,\;x=x_0\odot(1-e_i),\;"
            r"y=f(x_0)-f(x)",
            "binary",
            _one_hot,
            True,
            intercept=False,
            delta=True,
            deterministic=True,
        ),
        Neighbourhood(
            "gaussian",
            "Gaussian noise σ",
            r"\xi\sim\mathcal N(0,\sigma^2 I),\;x=x_0+\xi",
            "additive",
            _gaussian(lambda c: c.sigma),
            False,
        ),
        Neighbourhood(
            "gaussian-narrow",
            "Gaussian noise σ→0",
            r"\xi\sim\mathcal N(0,\sigma_0^2 I),\;x=x_0+\xi",
            "additive",
            _gaussian(lambda c: c.vg_sigma),
            False,
        ),
        Neighbourhood(
            "path",
            "Path from 0 (α ~ U(0,1))",
            r"\alpha\sim U(0,1),\;\xi=\alpha\mathbf 1,\;x=\alpha x_0",
            "path",
            _path(lambda c: 0.0),
            True,
        ),
        Neighbourhood(
            "path-end",
            "Path end (α ~ U(a,1))",
            r"\alpha\sim U(a,1),\;\xi=\alpha\mathbf 1,\;x=\alpha x_0",
            "path",
            _path(lambda c: c.a),
            True,
        ),
    )
}


def check_features(features: torch.Tensor | None, x0: torch.Tensor) -> torch.Tensor:
    """The feature ids (one per input element, 0..d−1 each used): default one feature per element."""
    shape = x0.shape[1:]
    if features is None:
        return torch.arange(math.prod(shape), device=x0.device).reshape(shape)
    if not isinstance(features, torch.Tensor) or features.dtype not in (torch.int32, torch.int64):
        raise OptiscopeError(
            f"Expected `features` to be an integer tensor of shape {tuple(shape)}, but got {features!r}"
        )
    features = features.reshape(features.shape[1:]) if features.dim() == len(shape) + 1 else features
    if tuple(features.shape) != tuple(shape):
        raise OptiscopeError(
            f"Expected `features` to cover the input: shape {tuple(shape)}, but got {tuple(features.shape)}"
        )
    ids = torch.unique(features)
    if int(ids.min()) != 0 or int(ids.max()) != len(ids) - 1:
        raise OptiscopeError(
            f"Expected `features` to number the features 0..d−1 with none missing, but got ids {ids.tolist()[:12]}"
        )
    check_int("features (count)", len(ids), 1)
    return features.to(device=x0.device, dtype=torch.long)


def neighbourhood_samples(
    inputs: torch.Tensor,
    *,
    neighbourhood: str,
    features: torch.Tensor | None = None,
    n_samples: int = 200,
    seed: int = 0,
    config: LFAConfig = DEFAULT_CONFIG,
) -> Samples:
    """Draws from one neighbourhood of ``inputs`` (1, *input), to look at: ξ (n, d), x(ξ) (n, *input), π (n,).

    >>> s = neighbourhood_samples(torch.ones(1, 3), neighbourhood="binary", n_samples=4)
    >>> tuple(s.xi.shape), tuple(s.x.shape), bool(((s.x == 0) | (s.x == 1)).all())
    ((4, 3), (4, 3), True)
    """
    nb = NEIGHBOURHOODS[check_choice("neighbourhood", neighbourhood, NEIGHBOURHOODS)]
    if not isinstance(inputs, torch.Tensor) or not inputs.is_floating_point() or inputs.dim() < 2 or len(inputs) != 1:
        raise OptiscopeError(f"Expected `inputs` to be one float input of shape (1, ...), but got {inputs!r}")
    if not isinstance(config, LFAConfig):
        raise OptiscopeError(f"Expected `config` to be an LFAConfig, but got {type(config).__name__}")
    features = check_features(features, inputs)
    n_samples = check_int("n_samples", n_samples, 1, 100_000)
    gen = torch.Generator(device=inputs.device).manual_seed(check_seed(seed))
    return sample(nb, inputs, features, n_samples, gen, config)


def feature_values(x: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
    """Each feature's mean over its elements, per row: (n, *input) → (n, d) (the columns themselves for tables)."""
    d = int(features.max()) + 1
    flat = features.flatten()
    counts = torch.zeros(d, device=x.device, dtype=x.dtype).index_add_(0, flat, torch.ones_like(flat, dtype=x.dtype))
    sums = torch.zeros(len(x), d, device=x.device, dtype=x.dtype).index_add_(1, flat, x.flatten(1))
    return sums / counts
