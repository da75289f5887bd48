"""The math of APG as pure functions: split the CFG update into parts parallel and orthogonal to D_cond."""

from __future__ import annotations

import torch

from core.errors import OptiscopeError, check_positive, check_range


def _flat(t: torch.Tensor) -> torch.Tensor:
    return t.reshape(len(t), -1)  # (N, D): every non-batch dimension at once


def decompose(delta: torch.Tensor, cond: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Adaptive Projected Guidance (APG): https://arxiv.org/abs/2410.02416 — the projection step.

    Splits the guidance update ``delta = D_cond − D_uncond`` per sample into the part parallel to
    ``cond`` (it only rescales D_cond: saturation) and the orthogonal rest (detail, class), in float64.

    Args:
        delta (`torch.Tensor`): the update Δ, any shape with the batch first.
        cond (`torch.Tensor`): the conditional prediction D_cond, same shape.

    Shapes:
        delta, cond: (N, ...) -> parallel, orthogonal: (N, ...) in delta's dtype.

    >>> d, c = torch.tensor([[1.0, 1.0]]), torch.tensor([[2.0, 0.0]])
    >>> decompose(d, c)
    (tensor([[1., 0.]]), tensor([[0., 1.]]))
    """
    if delta.shape != cond.shape:
        raise OptiscopeError(
            f"Expected `delta` and `cond` of the same shape, but got {tuple(delta.shape)} and {tuple(cond.shape)}."
        )
    v0, v1 = _flat(delta).double(), _flat(cond).double()
    # float64: for near-parallel vectors the float32 projection leaves a visible orthogonal residue
    unit = torch.nn.functional.normalize(v1, dim=1)
    parallel = (v0 * unit).sum(dim=1, keepdim=True) * unit  # (N, D)
    orthogonal = v0 - parallel
    return parallel.reshape(delta.shape).to(delta.dtype), orthogonal.reshape(delta.shape).to(delta.dtype)


def norms(t: torch.Tensor) -> torch.Tensor:
    """Per-sample L2 norm over all non-batch dimensions, shape (N,)."""
    return torch.linalg.vector_norm(_flat(t).double(), dim=1).to(t.dtype)


def cosine(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-sample cosine similarity over all non-batch dimensions, shape (N,)."""
    return torch.nn.functional.cosine_similarity(_flat(a).double(), _flat(b).double(), dim=1).to(a.dtype)


def apg(
    pred_cond: torch.Tensor,
    pred_uncond: torch.Tensor,
    w: float,
    *,
    eta: float = 0.0,
    rescale: float = 0.0,
    momentum: float = 0.0,
    running: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Adaptive Projected Guidance (APG): https://arxiv.org/abs/2410.02416 — Algorithm 1 in the paper's w.

    ``D̂ = D_c + (w−1)(Δ⊥ + η·Δ∥)`` after reverse momentum (Δ̄ = Δ + β·Δ̄_prev) and rescaling
    (Δ ← Δ·min(1, r/‖Δ‖)). A reference for the diffusers guider, which the sampler actually drives.

    Args:
        pred_cond, pred_uncond (`torch.Tensor`): D_c and D_u (x0 predictions).
        w (`float`): the paper's guidance scale (w=1: no guidance).
        eta (`float`, defaults to `0.0`): weight of the parallel part.
        rescale (`float`, defaults to `0.0`): r, the norm cap on Δ (0 = off).
        momentum (`float`, defaults to `0.0`): β (negative in the paper).
        running (`torch.Tensor`, optional): Δ̄ of the previous step (None at the first step).

    Returns:
        ``(guided, running)``: D̂ and the new Δ̄ to pass to the next step.

    Shapes:
        pred_cond, pred_uncond: (N, ...) -> guided, running: (N, ...).

    >>> c, u = torch.tensor([[2.0, 0.0]]), torch.tensor([[1.0, -1.0]])
    >>> apg(c, u, w=3.0, eta=1.0)[0]  # η=1, no rescale, no momentum: CFG
    tensor([[4., 2.]])
    """
    _check_apg(pred_cond, pred_uncond, w, eta, rescale, momentum)
    delta = pred_cond - pred_uncond
    if running is not None:
        delta = delta + momentum * running
    running = delta
    if rescale > 0:
        scale = torch.clamp(rescale / norms(delta).clamp_min(1e-12), max=1.0)
        delta = delta * scale.view(-1, *([1] * (delta.ndim - 1)))
    parallel, orthogonal = decompose(delta, pred_cond)
    return pred_cond + (w - 1.0) * (orthogonal + eta * parallel), running


def _check_apg(pred_cond: torch.Tensor, pred_uncond: torch.Tensor, w, eta, rescale, momentum) -> None:
    """The bounds of `GuiderConfig`, and finite predictions of one shape."""
    check_range("w", w, 0.0, 100.0)
    check_range("eta", eta, -10.0, 10.0)
    check_positive("rescale", rescale, strict=False)
    check_range("momentum", momentum, -0.99, 0.99)
    if pred_cond.shape != pred_uncond.shape or pred_cond.ndim < 2:
        raise OptiscopeError(
            f"Expected `pred_cond` and `pred_uncond` of one shape (N, ...), but got {tuple(pred_cond.shape)} "
            f"and {tuple(pred_uncond.shape)}"
        )
    floats = pred_cond.is_floating_point() and pred_uncond.is_floating_point()
    if not (floats and torch.isfinite(pred_cond).all() and torch.isfinite(pred_uncond).all()):
        raise OptiscopeError("Expected finite floating-point `pred_cond` and `pred_uncond`")
