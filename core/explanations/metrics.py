"""How explanations agree with each other, and the paper's perturbation test of faithfulness (its Exp. 3)."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from core.device import generator
from core.errors import OptiscopeError, check_budget, check_choice, check_int, check_positive, check_seed
from core.explanations.lfa import SAMPLE_ELEMENT_BUDGET, _describe, first_call, output

AGREEMENT = {
    "l1": "mean |a − b|",
    "cosine": "cosine distance 1 − cos(a, b)",
    "top-k": "shared top-k features (by |a|), fraction",
    "rank": "Spearman rank correlation",
}
PERTURBATIONS = {"binary": "set to 0", "gaussian": "add N(0, σ²)"}
ORDERS = {"top": "most important first", "bottom": "least important first"}


def agreement(attributions: Mapping[str, torch.Tensor], *, k: int = 5) -> dict[str, torch.Tensor]:
    """Pairwise agreement of explanations (averaged over rows when each is (N, d)): ``{metric: (m, m)}``.

    >>> a = {"x": torch.tensor([1.0, 2.0, 3.0]), "y": torch.tensor([3.0, 2.0, 1.0])}
    >>> agreement(a, k=1)["rank"].round()
    tensor([[ 1., -1.],
            [-1.,  1.]])
    """
    dtype = next(iter(check_attributions(attributions).values())).dtype
    a = torch.stack([v.detach().reshape(-1, v.shape[-1]).to(dtype) for v in attributions.values()])  # (m, N, d)
    k = check_int("k", k, 1, a.shape[-1])
    pair = lambda x: (x[:, None], x[None])  # noqa: E731  (m, 1, N, ·) against (1, m, N, ·)
    left, right = pair(a)
    top = torch.zeros_like(a).scatter_(-1, a.abs().topk(k, -1).indices, 1.0)  # (m, N, d)
    t_left, t_right = pair(top)
    ranks = a.argsort(-1).argsort(-1).to(a.dtype)
    r = ranks - ranks.mean(-1, keepdim=True)
    r = r / r.norm(dim=-1, keepdim=True).clamp_min(1e-30)
    r_left, r_right = pair(r)
    return {
        "l1": (left - right).abs().mean(-1).mean(-1),
        "cosine": (1 - torch.cosine_similarity(left, right, dim=-1)).mean(-1),
        "top-k": (t_left * t_right).sum(-1).mean(-1) / k,
        "rank": (r_left * r_right).sum(-1).mean(-1),
    }


def perturbation_test(
    model: nn.Module,
    inputs: torch.Tensor,
    attributions: Mapping[str, torch.Tensor],
    *,
    targets: torch.Tensor | None = None,
    perturbation: str = "binary",
    order: str = "top",
    k_max: int = 11,
    n_samples: int = 100,
    sigma: float = 0.1,
    seed: int = 0,
) -> dict[str, float]:
    """The paper's Exp. 3: perturb each point's top (or bottom) k features by |attribution|, k = 1..k_max.

    The score is the mean |f(x) − f(x′)| over points, k and (Gaussian) draws: high on ``top`` and low on
    ``bottom`` means faithful to that kind of change. Binary sets the features to 0 (the masks' neighbourhood);
    Gaussian adds N(0, σ²) noise to them (the gradients' neighbourhood).

    Shapes:
        inputs: (N, d); attributions: {name: (N, d)}; targets: (N,) class per row (None: scalar outputs)
    """
    perturbation = check_choice("perturbation", perturbation, PERTURBATIONS)
    order = check_choice("order", order, ORDERS)
    if not (isinstance(inputs, torch.Tensor) and inputs.is_floating_point() and inputs.dim() == 2 and inputs.numel()):
        raise OptiscopeError(f"Expected `inputs` to be a float (N, d) tensor, but got {_describe(inputs)}")
    if not torch.isfinite(inputs).all():
        raise OptiscopeError("Expected `inputs` to be finite, but it holds NaN or infinite values")
    n, d = inputs.shape
    check_attributions(attributions, (n, d))
    k_max = check_int("k_max", k_max, 1, d)
    draws = 1 if perturbation == "binary" else check_int("n_samples", n_samples, 1)
    check_budget("perturbed input elements N·d·k_max·draws", n * d * k_max * draws, SAMPLE_ELEMENT_BUDGET)
    sigma, seed = check_positive("sigma", sigma), check_seed(seed)
    scores = {}
    with torch.no_grad():
        targets = _check_targets(model, inputs, targets)
        f0 = _outputs(model, inputs, targets)  # (N,)
        for name, attr in attributions.items():
            rank = attr.abs().argsort(1, descending=order == "top").argsort(1)  # (N, d): 0 = first perturbed
            gen = generator(seed, inputs.device)
            total = 0.0
            for k in range(1, k_max + 1):
                mask = (rank < k).to(inputs.dtype)  # (N, d)
                x = inputs.expand(draws, n, d)
                if perturbation == "binary":
                    x = x * (1 - mask)
                else:
                    x = x + mask * sigma * torch.randn(x.shape, generator=gen, device=x.device, dtype=x.dtype)
                f = _outputs(model, x.reshape(-1, d), None if targets is None else targets.repeat(draws))
                total += float((f.reshape(draws, n) - f0).abs().mean())
            scores[name] = total / k_max
    return scores


def check_attributions(attributions: Mapping[str, torch.Tensor], shape: tuple[int, ...] | None = None) -> Mapping:
    """At least one attribution, each a finite real (d,) or (N, d) tensor, all of one shape (``shape`` if given)."""
    if not isinstance(attributions, Mapping) or not attributions:
        raise OptiscopeError("Expected at least one attribution {name: tensor}, but got none")
    for name, a in attributions.items():
        real = isinstance(a, torch.Tensor) and a.is_floating_point() and 1 <= a.dim() <= 2 and a.numel() > 0
        if not real or not bool(torch.isfinite(a).all()):
            raise OptiscopeError(f"Expected attribution `{name}` to be a finite real (d,) or (N, d) tensor")
    shapes = {tuple(a.shape) for a in attributions.values()}
    if len(shapes) != 1 or (shape is not None and shapes != {shape}):
        raise OptiscopeError(f"Expected attributions of one shape {shape or ''}, but got {sorted(shapes)}")
    return attributions


def _check_targets(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor | None) -> torch.Tensor | None:
    """``targets`` (N,) as class indices of the model's outputs, or None for a model with one output per row."""
    out = first_call(model, inputs[:1])
    classes = out[0].numel()
    if targets is None:
        if classes != 1:
            raise OptiscopeError(f"Expected `targets` (one class per row) for a model with {classes} outputs")
        return None
    integer = isinstance(targets, torch.Tensor) and not (targets.is_floating_point() or targets.is_complex())
    if not (integer and targets.dtype != torch.bool and targets.shape == inputs.shape[:1]):
        raise OptiscopeError(
            f"Expected `targets` to be an integer ({len(inputs)},) tensor, but got {_describe(targets)}"
        )
    if out.dim() != 2 or not ((targets >= 0) & (targets < classes)).all():
        raise OptiscopeError(
            f"Expected `targets` between 0 and {classes - 1} of (N, C) outputs, but got {targets.tolist()!s:.80}"
        )
    return targets.long()


def _outputs(model: nn.Module, x: torch.Tensor, targets: torch.Tensor | None) -> torch.Tensor:
    if targets is None:
        return output(model, x, None)
    return model(x).gather(1, targets[:, None])[:, 0]
