"""The plane a surface is drawn on: filter-normalized random axes or Hessian eigenvector axes."""

from __future__ import annotations

from dataclasses import dataclass

from core.errors import OptiscopeError, check_choice, check_int, check_seed
from core.landscape.directions import random_directions
from core.landscape.functional import LossFn, Params
from core.landscape.lanczos import eigenpairs

AXES = ("random", "hessian", "pair")  # filter-normalized random; (λmax, λmin); eigenvectors (i, j) from the top
MAX_PAIR = 20


@dataclass(frozen=True)
class Plane:
    """Two directions through θ and what they are (:func:`plane`)."""

    d1: Params
    d2: Params
    label: str  # e.g. "unit eigenvectors of λmax = 1.09, λmin = -0.0123"
    eigenvalues: tuple[float, ...] = ()  # the Hessian eigenvalues of d1 and d2 (Hessian axes only)


def plane(loss_fn: LossFn, params: Params, *, axes: str = "random", i: int = 1, j: int = 2, seed: int = 0) -> Plane:
    """Axes for a loss surface (Böttcher & Wheeler's Hessian axes): https://arxiv.org/abs/2208.13219

    Args:
        loss_fn (`Callable`), params (`dict`): the loss and the point θ.
        axes (`str`, defaults to `"random"`): ``"random"``: filter-normalized Gaussian directions (Li et al.);
            ``"hessian"``: the unit eigenvectors of λmax and λmin, so a saddle shows as a surface curving down;
            ``"pair"``: the eigenvectors of the i-th and j-th largest eigenvalues.
        i, j (`int`, default `1`, `2`): which eigenvalues (1 = largest, ≤ 20) for ``"pair"``; i ≠ j.
        seed (`int`, defaults to `0`): the random directions or the Lanczos start.

    >>> import torch
    >>> A = torch.diag(torch.tensor([3.0, -1.0, 2.0], dtype=torch.float64))
    >>> p = plane(lambda q: 0.5 * q["x"] @ A @ q["x"], {"x": torch.zeros(3, dtype=torch.float64)}, axes="hessian")
    >>> [round(v, 6) for v in p.eigenvalues], [round(abs(v), 6) for v in p.d2["x"].tolist()]
    ([3.0, -1.0], [0.0, 1.0, 0.0])
    """
    check_choice("axes", axes, AXES)
    i, j = check_int("i", i, 1, MAX_PAIR), check_int("j", j, 1, MAX_PAIR)
    seed = check_seed(seed)
    if axes == "random":
        d1, d2 = random_directions(params, norm="filter", seed=seed)
        return Plane(d1, d2, "filter-normalized random (Gaussian, Gram–Schmidt)")
    if axes == "hessian":
        top, low = (eigenpairs(loss_fn, params, k=1, which=w, seed=seed) for w in ("LA", "SA"))
        values = (float(top.eigenvalues[0]), float(low.eigenvalues[0]))
        label = f"unit eigenvectors of λmax = {values[0]:.4g}, λmin = {values[1]:.4g}"
        return Plane(top.eigenvectors[0], low.eigenvectors[0], label, values)
    if i == j:
        raise OptiscopeError(
            f"Expected two different eigenvalues `i` ≠ `j` (one direction is no plane), but got {i} and {j}"
        )
    pairs = eigenpairs(loss_fn, params, k=max(i, j), which="LA", seed=seed)
    values = (float(pairs.eigenvalues[i - 1]), float(pairs.eigenvalues[j - 1]))
    label = f"unit eigenvectors λ{i} = {values[0]:.4g}, λ{j} = {values[1]:.4g}"
    return Plane(pairs.eigenvectors[i - 1], pairs.eigenvectors[j - 1], label, values)
