"""The Laplace-principle consensus point and the quantities the page reads off it."""

from __future__ import annotations

import torch

from core.cbo.config import MAX_RATE, NOISES, check_alpha
from core.cbo.state import check_finite
from core.errors import OptiscopeError, check_choice, check_int, check_range


def consensus_weights(fx: torch.Tensor, alpha: float) -> torch.Tensor:
    r"""Consensus weights (CBO): https://arxiv.org/abs/1604.05648

    Normalised Gibbs weights ``exp(-alpha f_i) / sum_j exp(-alpha f_j)`` over the last axis.

    Computed as a softmax of ``-alpha f``, which subtracts the largest exponent ``-alpha min f`` first: nothing
    overflows for any alpha in [1e-12, 1e15] and energies of 1e4 and more (the naive form ``exp(-alpha f)``
    underflows to 0/0 = NaN).

    Args:
        fx (`torch.Tensor`): energies of the particles.
        alpha (`float`): inverse temperature, >= 0.

    Shapes:
        fx: (..., N) -> weights: (..., N), summing to 1 over N.

    >>> consensus_weights(torch.tensor([1e4, 1e4 + 1.0]), 1.0)
    tensor([0.7311, 0.2689])
    """
    alpha = check_alpha("alpha", alpha)
    return _weights(check_finite("fx", fx), alpha)


def _weights(fx: torch.Tensor, alpha: float) -> torch.Tensor:
    return torch.softmax(fx * -alpha, dim=-1)  # softmax shifts by its max itself: two ops per step, not four


def consensus(x: torch.Tensor, fx: torch.Tensor, alpha: float) -> torch.Tensor:
    r"""Consensus point (CBO): https://arxiv.org/abs/1604.05648

    The weighted mean ``v_alpha = sum_i x_i w_i`` with Gibbs weights ``w_i ∝ exp(-alpha f(x_i))``;
    alpha -> 0 gives the plain mean, alpha -> inf the best particle (the Laplace principle).

    Args:
        x (`torch.Tensor`): particles; the particle axis is the second-to-last.
        fx (`torch.Tensor`): their energies ``f(x)``.
        alpha (`float`): inverse temperature, >= 0 (1e-12 .. 1e15 are all fine).

    Shapes:
        x: (..., N, d), fx: (..., N) -> consensus: (..., d)

    >>> x = torch.tensor([[0.0, 0.0], [2.0, 2.0]])
    >>> consensus(x, torch.tensor([0.0, 1e4]), 1e15)
    tensor([0., 0.])
    >>> consensus(x, torch.tensor([0.0, 1e4]), 1e-12)
    tensor([1., 1.])
    """
    alpha = check_alpha("alpha", alpha)
    x, fx = check_finite("x", x), check_finite("fx", fx)
    if x.dim() < 2 or fx.shape != x.shape[:-1]:
        expected, got = tuple(x.shape[:-1]), tuple(fx.shape)
        raise OptiscopeError(f"Expected `fx` of shape {expected} for `x` of shape {tuple(x.shape)}, but got {got}")
    return gibbs_mean(x, fx, alpha)


def gibbs_mean(x: torch.Tensor, fx: torch.Tensor, alpha: float) -> torch.Tensor:
    """:func:`consensus` without its checks, for the loops: non-finite values flow through (they flag divergence).

    Shapes: x: (..., N, d), fx: (..., N) -> (..., d)
    """
    w = _weights(fx, alpha)
    w = (w if w.dtype == x.dtype else w.to(x.dtype)).unsqueeze(-2)  # (..., 1, N)
    return torch.matmul(w, x).squeeze(-2)


def gibbs_mean_rows(
    x: torch.Tensor, fx: torch.Tensor, alpha: float, logits: torch.Tensor, rows: torch.Tensor
) -> torch.Tensor:
    """:func:`gibbs_mean` for the step loop: three ops, where a small swarm's step pays ~5 µs for each.

    ``-alpha f`` is written into ``logits``, an (M, N) buffer the caller owns (and may read: non-finite there
    means a non-finite energy); ``rows``, its (M, 1, N) view made once, feeds the softmax and ``bmm`` with no
    reshape per step. The result keeps its particle axis, as the step broadcasts it.

    Shapes: x: (M, N, d), fx: (M, N) of x's dtype, logits: (M, N), rows: (M, 1, N) -> (M, 1, d)
    """
    torch.mul(fx, -alpha, out=logits)
    return torch.bmm(torch.softmax(rows, dim=-1), x)


def effective_sample_size(weights: torch.Tensor) -> torch.Tensor:
    """Effective sample size (ESS) of the consensus weights, as read in https://arxiv.org/abs/2306.09778

    Kish's ``1 / sum w_i^2`` of normalised weights: N for uniform weights, 1 when one particle has them all.

    Shapes:
        weights: (..., N) -> ess: (...)

    >>> effective_sample_size(torch.tensor([0.25, 0.25, 0.25, 0.25]))
    tensor(4.)
    """
    weights = check_finite("weights", weights)
    if (weights < 0).any():
        raise OptiscopeError("Expected non-negative `weights`, but some are negative")
    return 1.0 / (weights**2).sum(dim=-1).clamp_min(torch.finfo(weights.dtype).tiny)


def variance_to(x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Variance V of the swarm around a target, the Lyapunov functional of https://arxiv.org/abs/2103.15130

    ``V = 1/2 mean_i ||x_i - target||^2``.

    Shapes:
        x: (..., N, d), target: (d,) or (..., d) -> V: (...)

    >>> variance_to(torch.ones(3, 2), torch.zeros(2))
    tensor(1.)
    """
    target = target.to(x).expand(*x.shape[:-2], x.shape[-1]).unsqueeze(-2)
    return 0.5 * ((x - target) ** 2).sum(dim=-1).mean(dim=-1)


def decay_rate(lam: float, sigma: float, *, d: int, noise: str = "anisotropic") -> float:
    """Decay rate of V (CBO convergence): https://arxiv.org/abs/2103.15130

    The mean-field exponential rate ``2 lam - d sigma^2`` (isotropic) or ``2 lam - sigma^2`` (anisotropic).

    Negative means V grows: isotropic CBO diverges when ``2 lam < d sigma^2``.

    >>> decay_rate(1.0, 0.32, d=16, noise="isotropic")
    0.3616
    """
    lam, sigma = check_range("lam", lam, 0.0, MAX_RATE), check_range("sigma", sigma, 0.0, MAX_RATE)
    d, noise = check_int("d", d), check_choice("noise", noise, NOISES)
    return round(2 * lam - (d if noise == "isotropic" else 1) * sigma**2, 12)
