"""The eight attribution methods of the LFA paper, each computed by captum with the options that make it its LFA.

Captum's defaults do not match the papers: ``Saliency`` returns |∇f| (``abs=True``), ``Lime`` fits a Lasso
with a cosine kernel, ``NoiseTunnel``'s ``stdevs`` is an absolute σ, and C-LIME has no class (it is
``LimeBase`` with Gaussian perturbations and a constant kernel). The calls below are the ones that return
:func:`core.explanations.lfa` solutions; ``tests/test_explanations.py`` checks each against it.
"""

from __future__ import annotations

import contextlib
import math
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

import torch
from captum._utils.models.linear_model import SkLearnLinearRegression
from captum.attr import (
    FeatureAblation,
    InputXGradient,
    IntegratedGradients,
    KernelShap,
    Lime,
    LimeBase,
    NoiseTunnel,
    Saliency,
)
from captum.attr._core.lime import get_exp_kernel_similarity_function
from torch import nn

from core.device import generator
from core.errors import check_choice, check_seed
from core.explanations.lfa import _check_config, _checked, faithfulness, lfa, output
from core.explanations.neighbourhoods import DEFAULT_CONFIG, LFAConfig, expand

_BATCH = 256  # perturbations per forward pass
# KernelShap and NoiseTunnel draw from torch's global RNG, and LimeBase's DataLoader takes a seed from it: every
# captum call runs under a lock with the global RNG seeded, and the caller's state is restored after.
_GLOBAL_RNG = threading.Lock()


@dataclass(frozen=True)
class Method:
    """One attribution method as an LFA: its neighbourhood, its loss, and the captum call that computes it."""

    key: str
    label: str
    neighbourhood: str
    loss: str
    family: str  # "multiplicative" (masks, paths: returns w⊙x₀ on linear f) or "additive" (returns w)
    captum: str  # the exact call
    paper: str
    attribute: Callable[..., torch.Tensor]


@contextlib.contextmanager
def _seeded_global_rng(seed: int, device: torch.device) -> Iterator[None]:
    devices = [device.index or 0] if device.type == "cuda" else []
    with _GLOBAL_RNG, torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


def _leaf(x0: torch.Tensor) -> torch.Tensor:
    """A copy of x₀ that requires grad (captum's gradient methods warn, and set the flag, otherwise)."""
    return x0.detach().clone().requires_grad_(True)


def _per_feature(attr: torch.Tensor, features: torch.Tensor, d: int) -> torch.Tensor:
    """Input-space attributions (1, *input) summed per feature: the gradient in ξ-space. (d,)"""
    total = torch.zeros(d, device=attr.device, dtype=attr.dtype)
    return total.index_add_(0, features.flatten(), attr.detach().flatten())


def _interp(attr: torch.Tensor, d: int) -> torch.Tensor:
    return attr.detach().reshape(d)


def _lime(f, x0, features, d, n, seed, config):
    xi = torch.bernoulli(
        torch.full((n, d), 0.5, device=x0.device, dtype=x0.dtype), generator=generator(seed, x0.device)
    )

    def masks(_, **kwargs):  # the same draws as lfa(neighbourhood="binary", seed=seed)
        yield from xi.split(1)

    kernel = get_exp_kernel_similarity_function("euclidean", kernel_width=config.kernel_width / math.sqrt(2))
    lime = Lime(f, interpretable_model=SkLearnLinearRegression(), similarity_func=kernel, perturb_func=masks)
    return _interp(
        lime.attribute(
            x0,
            feature_mask=features[None],
            baselines=0.0,
            n_samples=n,
            perturbations_per_eval=_BATCH,
            return_input_shape=False,
        ),
        d,
    )


def _kernelshap(f, x0, features, d, n, seed, config):
    attr = KernelShap(f).attribute(
        x0,
        feature_mask=features[None],
        baselines=0.0,
        n_samples=n,
        perturbations_per_eval=_BATCH,
        return_input_shape=False,
    )
    return _interp(attr, d)


def _occlusion(f, x0, features, d, n, seed, config):
    attr = FeatureAblation(f).attribute(x0, feature_mask=features[None], baselines=0.0, perturbations_per_eval=_BATCH)
    first = torch.zeros(d, dtype=torch.long, device=x0.device).scatter_(  # one element of each feature
        0, features.flatten().flip(0), torch.arange(features.numel(), device=x0.device).flip(0)
    )
    return attr.detach().flatten()[first]


def _clime(f, x0, features, d, n, seed, config):
    xi = torch.randn(n, d, generator=generator(seed, x0.device), device=x0.device, dtype=x0.dtype) * config.sigma

    def noise(_, **kwargs):  # the same draws as lfa(neighbourhood="gaussian", seed=seed)
        yield from xi.split(1)

    clime = LimeBase(
        f,
        SkLearnLinearRegression(),
        similarity_func=lambda *a, **k: 1.0,
        perturb_func=noise,
        perturb_interpretable_space=True,
        from_interp_rep_transform=lambda z, x, **k: x + expand(z, features),
        to_interp_rep_transform=None,
    )
    return _interp(clime.attribute(x0, n_samples=n, perturbations_per_eval=_BATCH), d)


def _smoothgrad(f, x0, features, d, n, seed, config):
    attr = NoiseTunnel(Saliency(f)).attribute(
        _leaf(x0), nt_type="smoothgrad", nt_samples=n, stdevs=config.sigma, abs=False, nt_samples_batch_size=_BATCH
    )
    return _per_feature(attr, features, d)


def _vanilla(f, x0, features, d, n, seed, config):
    return _per_feature(Saliency(f).attribute(_leaf(x0), abs=False), features, d)


def _ig(f, x0, features, d, n, seed, config):
    attr = IntegratedGradients(f).attribute(
        _leaf(x0), baselines=0.0, n_steps=n, method="gausslegendre", internal_batch_size=_BATCH
    )
    return _per_feature(attr, features, d)


def _gxi(f, x0, features, d, n, seed, config):
    return _per_feature(InputXGradient(f).attribute(_leaf(x0)), features, d)


_LIME = "https://arxiv.org/abs/1602.04938"
METHODS: dict[str, Method] = {
    m.key: m
    for m in (
        Method(
            "lime",
            "LIME",
            "binary",
            "squared",
            "multiplicative",
            "Lime(f, interpretable_model=SkLearnLinearRegression(), similarity_func=get_exp_kernel_similarity_"
            "function('euclidean', kernel_width=κ/√2)).attribute(x, feature_mask=m, baselines=0, n_samples=n)",
            _LIME,
            _lime,
        ),
        Method(
            "kernelshap",
            "KernelSHAP",
            "shapley",
            "squared",
            "multiplicative",
            "KernelShap(f).attribute(x, feature_mask=m, baselines=0, n_samples=n)",
            "https://arxiv.org/abs/1705.07874",
            _kernelshap,
        ),
        Method(
            "occlusion",
            "Occlusion",
            "one-hot",
            "squared",
            "multiplicative",
            "FeatureAblation(f).attribute(x, feature_mask=m, baselines=0)  # = Occlusion(f), window 1",
            "https://arxiv.org/abs/1311.2901",
            _occlusion,
        ),
        Method(
            "clime",
            "C-LIME",
            "gaussian",
            "squared",
            "additive",
            "LimeBase(f, SkLearnLinearRegression(), similarity_func=1, perturb_func=σ·randn(d), "
            "perturb_interpretable_space=True, from_interp_rep_transform=x₀+ξ[m]).attribute(x, n_samples=n)",
            "https://arxiv.org/abs/2102.06015",
            _clime,
        ),
        Method(
            "smoothgrad",
            "SmoothGrad",
            "gaussian",
            "gradient",
            "additive",
            "NoiseTunnel(Saliency(f)).attribute(x, nt_type='smoothgrad', nt_samples=n, stdevs=σ, abs=False)",
            "https://arxiv.org/abs/1706.03825",
            _smoothgrad,
        ),
        Method(
            "vanilla",
            "Vanilla gradients",
            "gaussian-narrow",
            "gradient",
            "additive",
            "Saliency(f).attribute(x, abs=False)",
            "https://arxiv.org/abs/1312.6034",
            _vanilla,
        ),
        Method(
            "ig",
            "Integrated gradients",
            "path",
            "gradient",
            "multiplicative",
            "IntegratedGradients(f).attribute(x, baselines=0, n_steps=n, method='gausslegendre')",
            "https://arxiv.org/abs/1703.01365",
            _ig,
        ),
        Method(
            "gxi",
            "Gradient × input",
            "path-end",
            "gradient",
            "multiplicative",
            "InputXGradient(f).attribute(x)",
            "https://arxiv.org/abs/1605.01713",
            _gxi,
        ),
    )
}
# The guiding principle: pick the method whose neighbourhood is the change you care about.
QUESTIONS: dict[str, tuple[str, str]] = {
    "remove-near": ("Removing random subsets of features (set to 0), few at a time", "lime"),
    "remove-any": ("Removing coalitions of every size, each size counted fairly (Shapley)", "kernelshap"),
    "remove-one": ("Removing one feature at a time", "occlusion"),
    "noise": ("Small random changes to every feature at once (σ)", "smoothgrad"),
    "tiny": ("Infinitesimal changes (σ → 0)", "vanilla"),
    "scale": ("Scaling the whole input up from 0 (the baseline) to x₀", "ig"),
    "scale-end": ("Scaling the input slightly down (α ∈ [a, 1])", "gxi"),
}


def explain(
    model: nn.Module,
    inputs: torch.Tensor,
    *,
    method: str,
    target: int | None = None,
    features: torch.Tensor | None = None,
    n_samples: int = 1000,
    seed: int = 0,
    config: LFAConfig = DEFAULT_CONFIG,
) -> torch.Tensor:
    r"""One method's attribution, computed by captum: "Which explanation should I choose?" https://arxiv.org/abs/2206.01254

    Args:
        model (`nn.Module`): (n, *input) → (n, C) logits or (n,) outputs; only read (no hooks, no swaps).
        inputs (`torch.Tensor`): x₀, (1, *input).
        method (`str`): a key of :data:`METHODS`.
        target (`int`, optional): the explained class (None for a scalar output).
        features (`torch.Tensor`, optional): feature id of each input element (captum's ``feature_mask``).
        n_samples (`int`, defaults to `1000`): samples (LIME, KernelSHAP, C-LIME, SmoothGrad) or IG steps.
        seed (`int`, defaults to `0`): seed of the draws (LIME and C-LIME draw exactly :func:`lfa`'s samples).
        config (`LFAConfig`): σ, the narrow σ, LIME's κ and GxI's a.

    Returns:
        the attribution (d,) in interpretable space (gradients summed over each feature's elements).

    >>> model = nn.Linear(3, 2).double()
    >>> x0 = torch.tensor([[1.0, 2.0, 3.0]], dtype=torch.float64)
    >>> w = explain(model, x0, method="gxi", target=1)
    >>> torch.allclose(w, model.weight[1].detach() * x0[0])
    True
    """
    m = METHODS[check_choice("method", method, METHODS)]
    _, _, features, target, n_samples = _checked(model, inputs, m.neighbourhood, m.loss, target, features, n_samples)
    d, config = int(features.max()) + 1, _check_config(config)
    with _seeded_global_rng(check_seed(seed), inputs.device):
        return m.attribute(lambda x: output(model, x, target), inputs, features, d, n_samples, seed, config)


def explain_all(
    model: nn.Module,
    inputs: torch.Tensor,
    *,
    target: int | None = None,
    features: torch.Tensor | None = None,
    n_samples: int = 1000,
    seed: int = 0,
    config: LFAConfig = DEFAULT_CONFIG,
) -> dict[str, torch.Tensor]:
    """:func:`explain` for every method in :data:`METHODS`, with the same options: ``{method: (d,)}``."""
    options = dict(target=target, features=features, n_samples=n_samples, seed=seed, config=config)
    return {key: explain(model, inputs, method=key, **options) for key in METHODS}


def lfa_all(
    model: nn.Module,
    inputs: torch.Tensor,
    *,
    target: int | None = None,
    features: torch.Tensor | None = None,
    n_samples: int = 1000,
    seed: int = 0,
    config: LFAConfig = DEFAULT_CONFIG,
) -> dict[str, torch.Tensor]:
    """:func:`core.explanations.lfa` on every method's neighbourhood and loss, same options: ``{method: (d,)}``."""
    options = dict(target=target, features=features, n_samples=n_samples, seed=seed, config=config)
    return {
        key: lfa(model, inputs, neighbourhood=m.neighbourhood, loss=m.loss, **options) for key, m in METHODS.items()
    }


def loss_matrix(
    model: nn.Module,
    inputs: torch.Tensor,
    attributions: Mapping[str, torch.Tensor],
    *,
    target: int | None = None,
    features: torch.Tensor | None = None,
    n_samples: int = 1000,
    seed: int = 1,
    config: LFAConfig = DEFAULT_CONFIG,
) -> dict[str, dict[str, float]]:
    """The method × neighbourhood matrix: each explanation's LFA loss in each method's own neighbourhood.

    Returns ``{column method: {explanation: loss}}``; no explanation wins every column (no free lunch), and each
    method's own explanation wins its own column up to sampling noise. Draws use ``seed`` (held out from fits).
    """
    return {
        key: faithfulness(
            model,
            inputs,
            attributions,
            neighbourhood=m.neighbourhood,
            loss=m.loss,
            target=target,
            features=features,
            n_samples=n_samples,
            seed=seed,
            config=config,
        )
        for key, m in METHODS.items()
    }
