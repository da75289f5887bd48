"""LLA's generalization criteria computed from an SLQ spectrum (arXiv 2412.10146, ``src_lla/hessian/viz.py``)."""

from __future__ import annotations

import torch

from core.errors import OptiscopeError, check_positive, check_range

MAX_EXPONENT = 10.0


def criteria(nodes, weights, *, n: float = 0.5) -> dict[str, float]:
    """Loss Landscape Analysis criteria (LLA): https://arxiv.org/abs/2412.10146

    ``re = |min θ / max θ|`` (how negative the most negative curvature is next to the sharpest one) and
    ``Kh_n = Σ_{θ<0}(|θ|τ)^n / Σ_{θ>0}(θτ)^n`` (the negative spectral mass against the positive). Both are
    ≈ 0 at a clean minimum and grow with saddle-like, non-convex curvature; each is computed per SLQ run
    and averaged. They are meaningful only for mainly positive spectra (arXiv 2504.17618).

    Args:
        nodes (`Tensor`): Ritz values θ_k, shape (m,) or (R, m) for R runs.
        weights (`Tensor`): their weights τ_k, same shape.
        n (`float`, defaults to `0.5`): the exponent of Kh_n, 0 < n ≤ 10.

    >>> criteria([-1.0, 4.0], [0.5, 0.5], n=0.5)
    {'re': 0.25, 'kh': 0.5}
    """
    check_range("n", check_positive("n", n), 0.0, MAX_EXPONENT)
    try:
        nodes = torch.as_tensor(nodes, dtype=torch.float64)
        weights = torch.as_tensor(weights, dtype=torch.float64, device=nodes.device)
    except (TypeError, ValueError, RuntimeError) as err:
        raise OptiscopeError(f"Expected `nodes` and `weights` as numbers, but got {err}") from None
    if nodes.shape != weights.shape or nodes.dim() == 0 or nodes.numel() == 0:
        raise OptiscopeError(
            f"Expected `nodes` and `weights` of one non-empty shape, but got {tuple(nodes.shape)} and {tuple(weights.shape)}"
        )
    if not (torch.isfinite(nodes).all() and torch.isfinite(weights).all()) or bool((weights < 0).any()):
        raise OptiscopeError("Expected finite `nodes` and non-negative finite `weights`, but got NaN, inf or < 0")
    nodes, weights = nodes.reshape(-1, nodes.shape[-1]), weights.reshape(-1, weights.shape[-1])
    top = nodes.max(-1).values
    if bool((top <= 0).any()):
        raise OptiscopeError("Expected a positive eigenvalue in every run of `nodes`, but this spectrum has none")
    re = (nodes.min(-1).values / top).abs()
    # In logs: (|θ|τ)^n underflows to 0/0 for tiny weights or a large n.
    log_mass = n * torch.log(nodes.abs() * weights)  # -inf where the mass is 0
    nowhere = torch.tensor(-torch.inf, dtype=torch.float64, device=nodes.device)
    negative = torch.where(nodes < 0, log_mass, nowhere).logsumexp(-1)
    positive = torch.where(nodes > 0, log_mass, nowhere).logsumexp(-1)
    if not bool(torch.isfinite(positive).all()):
        raise OptiscopeError("Expected weight on a positive eigenvalue in every run of `weights`, but one run has none")
    kh = (negative - positive).exp()
    return {"re": float(re.mean()), "kh": float(kh.mean())}
