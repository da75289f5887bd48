"""Random directions in parameter space and their normalizations (Li et al., https://arxiv.org/abs/1712.09913)."""

from __future__ import annotations

import torch

from core.errors import OptiscopeError, check_choice, check_seed
from core.landscape.functional import Params, check_params, check_point, flatten, unflatten

NORMS = ("filter", "layer", "model", "weight", None)


def normalize(direction: Params, params: Params, *, norm: str | None = "filter", zero_1d: bool = True) -> Params:
    """Scale ``direction`` to the geometry of ``params``.

    ``filter``: each slice along axis 0 of a ≥2-D tensor gets ‖d_{l,i}‖ = ‖θ_{l,i}‖; ``layer``: each tensor
    ‖d_l‖ = ‖θ_l‖; ``model``: ‖d‖ = ‖θ‖; ``weight``: d ⊙ θ; ``None``: unchanged. With ``filter``, 1-D
    tensors (biases, BatchNorm) are zeroed when ``zero_1d`` (Li et al.'s ``biasbn``), else scaled to ‖θ_l‖.
    """
    check_choice("norm", norm, NORMS)
    check_params(direction, params)
    out = _scaled(direction, params, norm, zero_1d)
    if not all(bool(torch.isfinite(v).all()) for v in out.values()):
        dtype = next(iter(params.values())).dtype
        raise OptiscopeError(f"Expected `params` whose {norm} norms are finite, but they overflow {dtype}")
    return out


def _scaled(direction: Params, params: Params, norm: str | None, zero_1d: bool) -> Params:
    if norm is None:
        return {k: v.clone() for k, v in direction.items()}
    if norm == "model":
        scale = flatten(params).norm() / (flatten(direction).norm() + 1e-10)
        return {k: v * scale for k, v in direction.items()}
    out = {}
    for k, d in direction.items():
        theta = params[k]
        if norm == "weight":
            out[k] = d * theta
        elif norm == "layer" or d.dim() < 2:
            out[k] = torch.zeros_like(d) if (norm == "filter" and zero_1d) else d * theta.norm() / (d.norm() + 1e-10)
        else:  # filter: one norm per output slice
            dims = tuple(range(1, d.dim()))
            norm_of = lambda x, dims=dims: torch.linalg.vector_norm(x, dim=dims, keepdim=True)  # noqa: E731
            out[k] = d * norm_of(theta) / (norm_of(d) + 1e-10)
    return out


def random_direction(
    params: Params,
    *,
    norm: str | None = "filter",
    seed: int = 0,
    orthogonal_to: Params | None = None,
    zero_1d: bool = True,
) -> Params:
    """Filter-normalized random direction (Li et al.): https://arxiv.org/abs/1712.09913

    Draws d ~ N(0, I) (Gaussian, not loss-landscapes' uniform[0, 1]) on the CPU, so every device gets the
    same direction; with ``orthogonal_to`` it is first made orthogonal to that direction (Gram–Schmidt),
    then normalized (see :func:`normalize`) and placed on the parameters' device.

    Args:
        params (`dict[str, Tensor]`): the point θ the direction is scaled to.
        norm (`str`, defaults to `"filter"`): one of ``"filter"``, ``"layer"``, ``"model"``, ``"weight"``, ``None``.
        seed (`int`, defaults to `0`): the Gaussian draw.
        orthogonal_to (`dict`, optional): the first direction, for the second one.

    >>> theta = {"w": torch.ones(3, 2)}
    >>> d = random_direction(theta, norm="filter", seed=0)
    >>> torch.allclose(d["w"].norm(dim=1), theta["w"].norm(dim=1))
    True
    """
    check_choice("norm", norm, NORMS)
    flat = _gaussian(params, seed)
    if orthogonal_to is not None:
        check_params(orthogonal_to, params)
        u = flatten({k: orthogonal_to[k] for k in params}).cpu().double()
        if u.norm() > 0:
            u = u / u.norm()
            flat = flat - (flat @ u) * u
    return normalize(_as_params(flat, params), params, norm=norm, zero_1d=zero_1d)


def _gaussian(params: Params, seed: int) -> torch.Tensor:
    check_point(params)
    gen = torch.Generator().manual_seed(check_seed(seed))
    return torch.randn(sum(v.numel() for v in params.values()), generator=gen, dtype=torch.float64)


def _as_params(flat: torch.Tensor, params: Params) -> Params:
    return {k: v.to(params[k].device, params[k].dtype) for k, v in unflatten(flat, params).items()}


def random_directions(
    params: Params, *, norm: str | None = "filter", seed: int = 0, zero_1d: bool = True
) -> tuple[Params, Params]:
    """Two directions ``(d1, d2)`` for a plane, from seeds ``seed`` and ``seed + 1`` (Li et al.): https://arxiv.org/abs/1712.09913

    The raw Gaussian draws are Gram–Schmidt orthogonalized *before* normalization, so the pair depends
    only on the seed and the shapes, and filter normalization keeps its rescaling invariance.

    >>> d1, d2 = random_directions({"w": torch.ones(3, 2)}, norm=None, seed=0)
    >>> abs(float((d1["w"] * d2["w"]).sum())) < 1e-6
    True
    """
    check_choice("norm", norm, NORMS)
    g1, g2 = _gaussian(params, seed), _gaussian(params, seed + 1)
    u = g1 / g1.norm()
    g2 = g2 - (g2 @ u) * u
    return tuple(normalize(_as_params(g, params), params, norm=norm, zero_1d=zero_1d) for g in (g1, g2))
