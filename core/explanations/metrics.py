"""How explanations agree with each other, and the paper's perturbation test of faithfulness (its Exp. 3)."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from core.device import generator
from core.errors import OptiscopeError, check_choice, check_int, check_positive
from core.explanations.lfa import output

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
    if len(attributions) < 1:
        raise OptiscopeError("Expected at least one attribution, but got none")
    shapes = {tuple(a.shape) for a in attributions.values()}
    if len(shapes) != 1:
        raise OptiscopeError(f"Expected attributions of one shape, but got {sorted(shapes)}")
    a = torch.stack([v.detach().reshape(-1, v.shape[-1]) for v in attributions.values()])  # (m, N, d)
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
    n, d = inputs.shape
    k_max = check_int("k_max", k_max, 1, d)
    draws = 1 if perturbation == "binary" else check_int("n_samples", n_samples, 1)
    sigma = check_positive("sigma", sigma)
    scores = {}
    with torch.no_grad():
        f0 = _outputs(model, inputs, targets)  # (N,)
        for name, attr in attributions.items():
            if tuple(attr.shape) != (n, d):
                raise OptiscopeError(f"Expected attribution `{name}` of shape {(n, d)}, but got {tuple(attr.shape)}")
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


def _outputs(model: nn.Module, x: torch.Tensor, targets: torch.Tensor | None) -> torch.Tensor:
    if targets is None:
        return output(model, x, None)
    return model(x).gather(1, targets[:, None])[:, 0]
