"""Local function approximation (LFA) solved directly: weighted least squares or the mean gradient.

For a linear g(ξ) = wᵀξ (+ b), the squared loss E_π[(y(ξ) − g(ξ))²] is minimised by weighted least squares
on [1, ξ], and the gradient-matching loss E‖∇_ξ y(ξ) − w‖² by w* = E[∇_ξ y(ξ)]. Every method in
:data:`core.explanations.METHODS` is one of these on one neighbourhood, so each captum result can be
checked against :func:`lfa`, and any explanation scored on any neighbourhood by :func:`faithfulness`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
from torch import nn

from core.device import generator
from core.errors import OptiscopeError, check_budget, check_choice, check_int, check_seed
from core.explanations.neighbourhoods import (
    DEFAULT_CONFIG,
    NEIGHBOURHOODS,
    LFAConfig,
    Neighbourhood,
    Samples,
    check_features,
    inputs_of,
    sample,
)

LOSSES = {"squared": "Weighted squared error", "gradient": "Gradient matching"}
LOSS_FORMULAS = {
    "squared": r"\mathbb E_{\xi\sim Z}\,\pi(\xi)\,\big(y(\xi)-b-w^\top\xi\big)^2",
    "gradient": r"\mathbb E_{\xi\sim Z}\,\big\|\nabla_\xi\, y(\xi)-w\big\|^2",
}
# n_samples × input elements held at once; 5e7 floats is 200 MB in float32.
SAMPLE_ELEMENT_BUDGET = 5e7
_CHUNK_ELEMENTS = 2**22  # elements per forward/backward batch


def check_inputs(model: nn.Module, inputs: torch.Tensor, target: int | None) -> int | None:
    """Validate one input (1, *shape) and the explained output; returns the target (None: a scalar output)."""
    if not callable(model):
        raise OptiscopeError(f"Expected `model` to be a torch module or callable, but got {type(model).__name__}")
    if not isinstance(inputs, torch.Tensor) or not inputs.is_floating_point() or inputs.dim() < 2:
        raise OptiscopeError(f"Expected `inputs` to be a float tensor of shape (1, ...), but got {_describe(inputs)}")
    if inputs.shape[0] != 1:
        raise OptiscopeError(f"Expected `inputs` to hold one input (1, ...) to explain, but got {tuple(inputs.shape)}")
    if not torch.isfinite(inputs).all():
        raise OptiscopeError("Expected `inputs` to be finite, but it holds NaN or infinite values")
    out = first_call(model, inputs)
    outputs = 1 if out.dim() == 1 else math.prod(out.shape[1:])
    if out.dim() > 2:
        raise OptiscopeError(f"Expected the model to return (N,) or (N, C) outputs, but got {tuple(out.shape)}")
    if target is None:
        if outputs != 1:
            raise OptiscopeError(f"Expected a `target` class between 0 and {outputs - 1}, but got None")
        return None
    return check_int("target", target, 0, outputs - 1)


def first_call(model: nn.Module, inputs: torch.Tensor) -> torch.Tensor:
    """The model on ``inputs`` (no grad): inputs it cannot take (a wrong dtype or size) are a message, not a traceback."""
    try:
        with torch.no_grad():
            out = model(inputs)
    except RuntimeError as err:
        raise OptiscopeError(
            f"Expected `inputs` the model can take, but {_describe(inputs)} failed: {str(err).splitlines()[0]:.120}"
        ) from None
    if not isinstance(out, torch.Tensor) or out.dim() == 0:
        raise OptiscopeError(f"Expected the model to return (N,) or (N, C) outputs, but got {_describe(out)}")
    return out


def _describe(value: object) -> str:
    return f"{value.dtype} {tuple(value.shape)}" if isinstance(value, torch.Tensor) else type(value).__name__


def output(model: nn.Module, x: torch.Tensor, target: int | None) -> torch.Tensor:
    """The explained scalar per row: the target logit, or the regression output. (n, *input) → (n,)."""
    out = model(x)
    return out.reshape(len(x)) if target is None else out[:, target]


def check_samples(nb: Neighbourhood, loss: str, n_samples: int, d: int, numel: int) -> int:
    """``n_samples`` as an int, enough for a regression, within the budget."""
    n_samples = check_int("n_samples", n_samples, 1)
    need = d + int(nb.intercept)
    if loss == "squared" and not nb.deterministic and n_samples < need:
        raise OptiscopeError(
            f"Expected `n_samples` >= {need} (features + intercept) for a regression on the `{nb.key}` "
            f"neighbourhood, but got {n_samples}"
        )
    check_budget(
        "sampled input elements (n_samples × input size)",
        n_samples * numel,
        SAMPLE_ELEMENT_BUDGET,
        hint="Lower `n_samples` or use fewer, larger features.",
    )
    return n_samples


def responses(model: nn.Module, s: Samples, x0: torch.Tensor, target: int | None, nb: Neighbourhood) -> torch.Tensor:
    """y(ξ) for every sample: f(x(ξ)), or the drop f(x₀) − f(x(ξ)). (n,)"""
    with torch.no_grad():
        y = torch.cat([output(model, chunk, target) for chunk in _chunks(s.x)])
        return output(model, x0, target) - y if nb.delta else y


def gradients(
    model: nn.Module, s: Samples, x0: torch.Tensor, features: torch.Tensor, target: int | None, nb: Neighbourhood
) -> torch.Tensor:
    """∇_ξ y(ξ) at every sample (n, d), by autograd through x(ξ) (the model's parameters are not touched)."""
    grads = []
    with torch.enable_grad():
        for xi in _chunks(s.xi, x0[0].numel()):
            xi = xi.detach().requires_grad_(True)
            y = output(model, inputs_of(nb, xi, x0, features), target)
            grads.append(torch.autograd.grad(-y.sum() if nb.delta else y.sum(), xi)[0])
    return torch.cat(grads).detach()


def _chunks(x: torch.Tensor, numel: int | None = None) -> tuple[torch.Tensor, ...]:
    size = max(1, _CHUNK_ELEMENTS // (numel or x[0].numel()))
    return x.split(size)


def _weighted_lstsq(xi: torch.Tensor, y: torch.Tensor, weights: torch.Tensor, intercept: bool) -> torch.Tensor:
    """argmin_w Σ π (y − b − wᵀξ)², min-norm (pinv via SVD, any device); returns w (d,)."""
    dtype = torch.float64 if xi.device.type != "mps" else torch.float32  # the fit in double: ~1e-12, not 1e-6
    design = torch.cat([torch.ones_like(xi[:, :1]), xi], 1) if intercept else xi
    root = (weights / weights.sum()).sqrt().to(dtype)[:, None]
    solution = torch.linalg.pinv(root * design.to(dtype)) @ (root[:, 0] * y.to(dtype))
    return solution[int(intercept) :].to(xi.dtype)


def lfa(
    model: nn.Module,
    inputs: torch.Tensor,
    *,
    neighbourhood: str,
    loss: str,
    target: int | None = None,
    features: torch.Tensor | None = None,
    n_samples: int = 1000,
    seed: int = 0,
    config: LFAConfig = DEFAULT_CONFIG,
) -> torch.Tensor:
    r"""Local function approximation (LFA): https://arxiv.org/abs/2206.01254

    Solves g* = argmin_{g linear} E_{ξ∼Z}[ℓ(f, g, x₀, ξ)] directly: weighted least squares for the squared
    loss, the mean gradient ∇_ξ y(ξ) for gradient matching, on ``n_samples`` draws from the neighbourhood.

    Args:
        model (`nn.Module`): maps (n, *input) to (n, C) logits or (n,) / (n, 1) outputs; only read.
        inputs (`torch.Tensor`): the input x₀ explained, (1, *input).
        neighbourhood (`str`): a key of :data:`NEIGHBOURHOODS` (``"binary"``, ``"gaussian"``, ``"path"``...).
        loss (`str`): ``"squared"`` or ``"gradient"``.
        target (`int`, optional): the explained class (None for a scalar output).
        features (`torch.Tensor`, optional): feature id (0..d−1) of each input element; default one per element.
        n_samples (`int`, defaults to `1000`): draws from the neighbourhood (≥ d + 1 for a regression).
        seed (`int`, defaults to `0`): seed of the draws (a private generator).
        config (`LFAConfig`): the neighbourhoods' widths.

    Returns:
        the attribution w (d,), in interpretable space.

    Shapes:
        inputs: (1, *input); features: (*input) → w: (d,)

    >>> model = nn.Linear(3, 1).double()
    >>> x0 = torch.tensor([[1.0, 2.0, 3.0]], dtype=torch.float64)
    >>> w = lfa(model, x0, neighbourhood="gaussian", loss="gradient", n_samples=10)
    >>> torch.allclose(w, model.weight[0].detach())
    True
    """
    nb, loss, features, target, n_samples = _checked(model, inputs, neighbourhood, loss, target, features, n_samples)
    s = _draw(nb, inputs, features, n_samples, seed, config)
    if loss == "gradient":
        return gradients(model, s, inputs, features, target, nb).mean(0)
    return _weighted_lstsq(s.xi, responses(model, s, inputs, target, nb), s.weights, nb.intercept)


def _checked(model, inputs, neighbourhood, loss, target, features, n_samples):
    nb = NEIGHBOURHOODS[check_choice("neighbourhood", neighbourhood, NEIGHBOURHOODS)]
    loss = check_choice("loss", loss, LOSSES)
    target = check_inputs(model, inputs, target)
    features = check_features(features, inputs)
    n_samples = check_samples(nb, loss, n_samples, int(features.max()) + 1, inputs[0].numel())
    return nb, loss, features, target, n_samples


def _draw(nb: Neighbourhood, inputs: torch.Tensor, features, n_samples: int, seed: int, config: LFAConfig) -> Samples:
    """The neighbourhood's samples around ``inputs``, seeded: the same draw for an explanation and its loss."""
    return sample(nb, inputs, features, n_samples, generator(check_seed(seed), inputs.device), _check_config(config))


def _check_config(config: LFAConfig) -> LFAConfig:
    if not isinstance(config, LFAConfig):
        raise OptiscopeError(f"Expected `config` to be an LFAConfig, but got {type(config).__name__}")
    return config


def faithfulness(
    model: nn.Module,
    inputs: torch.Tensor,
    attributions: Mapping[str, torch.Tensor],
    *,
    neighbourhood: str,
    loss: str,
    target: int | None = None,
    features: torch.Tensor | None = None,
    n_samples: int = 1000,
    seed: int = 1,
    config: LFAConfig = DEFAULT_CONFIG,
) -> dict[str, float]:
    """The LFA loss of each explanation w on one neighbourhood (lower is more faithful there).

    Every explanation is scored on the same fresh draws (``seed`` 1 by default: held out from a fit with
    seed 0); squared losses use each w's optimal intercept.

    Shapes:
        attributions: {name: (d,)} → {name: loss}
    """
    nb, loss, features, target, n_samples = _checked(model, inputs, neighbourhood, loss, target, features, n_samples)
    d = int(features.max()) + 1
    w = _stack(attributions, d, inputs)  # (m, d)
    s = _draw(nb, inputs, features, n_samples, seed, config)
    if loss == "gradient":
        g = gradients(model, s, inputs, features, target, nb)  # (n, d)
        values = (g[:, None, :] - w[None]).pow(2).sum(-1).mean(0)  # (m,)
    else:
        residual = responses(model, s, inputs, target, nb)[:, None] - s.xi @ w.T  # (n, m)
        p = s.weights[:, None] / s.weights.sum()
        if nb.intercept:
            residual = residual - (p * residual).sum(0)
        values = (p * residual.pow(2)).sum(0)
    return dict(zip(attributions, values.tolist(), strict=True))


def _stack(attributions: Mapping[str, torch.Tensor], d: int, inputs: torch.Tensor) -> torch.Tensor:
    if not attributions:
        raise OptiscopeError("Expected at least one attribution to score, but got none")
    rows = []
    for name, w in attributions.items():
        real = isinstance(w, torch.Tensor) and w.is_floating_point() and w.numel() == d
        if not real or not bool(torch.isfinite(w).all()):
            raise OptiscopeError(
                f"Expected attribution `{name}` to hold {d} finite real values (one per feature), but got {_describe(w)}"
            )
        rows.append(w.detach().reshape(d).to(device=inputs.device, dtype=inputs.dtype))
    return torch.stack(rows)
