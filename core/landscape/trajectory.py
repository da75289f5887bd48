"""Projecting an optimizer's path onto the plane of a surface."""

from __future__ import annotations

import torch

from core.errors import OptiscopeError
from core.landscape.functional import Params, check_params, check_point, flatten


def project(path: list[Params], center: Params, directions: tuple[Params, Params]) -> torch.Tensor:
    """Plane coordinates (a, b) of each θ_t, least squares on span(d1, d2) (Li et al.): https://arxiv.org/abs/1712.09913

    Solves (DᵀD)·c = Dᵀ(θ_t − θ) with D = [d1 d2], so it is exact for points in the plane even when d1, d2
    are not orthogonal (filter normalization breaks Gram–Schmidt's orthogonality).

    Shapes:
        returns (T, 2), float64 on θ's device.

    >>> c = {"x": torch.zeros(2)}
    >>> project([{"x": torch.tensor([2.0, 3.0])}], c, ({"x": torch.tensor([1.0, 0.0])}, {"x": torch.tensor([1.0, 1.0])})).tolist()
    [[-1.0, 3.0]]
    """
    check_point(center, "center")
    if not isinstance(path, (list, tuple)) or not path:
        raise OptiscopeError(f"Expected `path` as a non-empty list of parameter dicts, but got {type(path).__name__}")
    if not isinstance(directions, (tuple, list)) or len(directions) != 2:
        raise OptiscopeError(f"Expected `directions` as (d1, d2), but got {type(directions).__name__}")
    d1, d2 = directions
    check_params(d1, center, "first direction")
    check_params(d2, center, "second direction")
    device = next(iter(center.values())).device
    path = [
        {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in p.items()} if isinstance(p, dict) else p
        for p in path
    ]
    for p in path:  # a path recorded on the CPU projects onto a plane on any device
        check_params(p, center, "path point")
    basis = torch.stack([flatten({k: d1[k] for k in center}), flatten({k: d2[k] for k in center})]).double().T  # (P, 2)
    origin = flatten(center)
    deltas = torch.stack([flatten({k: p[k] for k in center}) - origin for p in path]).double().T  # (P, T)
    gram = basis.T @ basis
    if torch.linalg.matrix_rank(gram) < 2:
        raise OptiscopeError("Expected two independent `directions`, but they are parallel (or zero)")
    return torch.linalg.solve(gram, basis.T @ deltas).T
