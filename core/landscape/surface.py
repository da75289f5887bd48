"""The loss on a line or plane through θ: L(θ + a·d1 + b·d2) at exact grid coordinates.

Every point is computed from θ directly (no in-place walk, so no drift and no off-by-one), without autograd,
and θ is never written to. Three engines, fastest first:

* ``affine``: for an ``nn.Sequential`` whose first parametrized layer is ``Linear``/``Conv2d`` (every zoo
  model here). That layer's output is affine in (a, b): Z = X·W + a·X·D1 + b·X·D2, so the three products
  are computed once and a chunk of grid points gets its pre-activations from one small GEMM. An MLP tail
  (Linear and elementwise layers, cross-entropy) then runs as batched matmuls; any other tail is vmapped.
* ``vmap``: any vmappable closure; chunks of grid points through ``torch.func.vmap`` (accelerators only by
  default: on a CPU it is no faster than the loop on an MLP and 2.8× slower on the shapes CNN).
* ``loop``: a plain ``no_grad`` loop.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, vmap

from core.errors import OptiscopeError, check_budget, check_choice, check_int, check_positive
from core.landscape.functional import LossFn, ModelLoss, Params, check_params, check_point, num_params

MAX_N = 201
# Loss evaluations × parameters one surface may cost: the digits MLP up to n = 101 (~5 s on one CPU
# thread), the 98k-parameter shapes CNN up to n = 21 (its convolutions cost ~40 ms a point here).
MAX_GRID_WORK = 5e7
ENGINES = ("affine", "vmap", "loop")
_CHUNK_ELEMENTS = 2**20  # activations per chunk of grid points (4 MB in float32: stays in cache)


@dataclass(frozen=True)
class Surface:
    """The loss on a line or plane through θ (:func:`surface`); one state of :func:`refine`."""

    a: torch.Tensor  # (n,) coordinates along d1
    b: torch.Tensor | None  # (n,) along d2, None for a 1-D slice
    loss: torch.Tensor  # (n, n) with first index a, or (n,)
    extent: float
    engine: str  # "affine", "vmap" or "loop"


def _points(params: Params, d1: Params, d2: Params | None, a: torch.Tensor, b: torch.Tensor, names) -> Params:
    out = {}
    for k in names:
        shape = (-1,) + (1,) * params[k].dim()
        p = params[k] + a.view(shape) * d1[k]
        out[k] = p + b.view(shape) * d2[k] if d2 is not None else p
    return out  # each (K, *shape)


def _loop(loss_fn, params, d1, d2, a, b) -> torch.Tensor:
    out = a.new_empty(len(a))
    for i in range(len(a)):
        point = _points(params, d1, d2, a[i : i + 1], b[i : i + 1], params)
        out[i] = loss_fn({k: v[0] for k, v in point.items()})
    return out


def _vmap(loss_fn, params, d1, d2, a, b, chunk: int) -> torch.Tensor:
    return torch.cat(
        [
            vmap(loss_fn)(_points(params, d1, d2, a[i : i + chunk], b[i : i + chunk], params))
            for i in range(0, len(a), chunk)
        ]
    )


def _affine_split(model: nn.Module):
    """(prefix, first layer name, first layer, rest) of a Sequential whose first parametrized layer is affine."""
    if not isinstance(model, nn.Sequential):
        return None
    children = list(model.named_children())
    for i, (name, module) in enumerate(children):
        if any(True for _ in module.parameters()):
            if type(module) not in (nn.Linear, nn.Conv2d) or any(True for _ in model[:i].buffers()):
                return None
            return model[:i], name, module, nn.Sequential(OrderedDict(children[i + 1 :]))
    return None


def _affine(loss: ModelLoss, params, d1, d2, a, b) -> torch.Tensor:
    prefix, name, layer, rest = _affine_split(loss.module())  # this thread's copy: functional_call swaps on it

    def first(x, w, bias):
        return F.linear(x, w, bias) if isinstance(layer, nn.Linear) else layer._conv_forward(x, w, bias)

    wk, bk = f"{name}.weight", f"{name}.bias"
    bias = lambda d: d.get(bk) if layer.bias is not None else None  # noqa: E731
    x0 = prefix(loss.inputs)
    z0 = first(x0, params[wk], bias(params))  # (N, ...) computed once per surface
    z1 = first(x0, d1[wk], bias(d1))
    z2 = first(x0, d2[wk], bias(d2)) if d2 is not None else None
    names = [k for k, _ in rest.named_parameters() if k in params]
    target, criterion = loss.target, loss.criterion

    def tail(p, z):
        return criterion(functional_call(rest, p, (z,)), target)

    # Z(a, b) = [1, a, b] · [Z0; Z1; Z2]: one small GEMM per chunk writes each pre-activation once.
    basis = torch.stack([z0, z1] + ([z2] if z2 is not None else [])).flatten(1)  # (2 or 3, N·features)
    mlp = z0.dim() == 2 and _is_mlp(rest)
    chunk = max(1, _CHUNK_ELEMENTS // max(1, z0.numel()))
    out = []
    for i in range(0, len(a), chunk):
        ak, bk_ = a[i : i + chunk], b[i : i + chunk]
        coef = torch.stack([torch.ones_like(ak), ak] + ([bk_] if z2 is not None else []), dim=1)  # (K, 2 or 3)
        z = (coef @ basis).view(len(ak), *z0.shape)  # (K, N, ...)
        if mlp:
            out.append(_mlp_tail(rest, _points(params, d1, d2, ak, bk_, names), z, criterion, target))
        else:
            out.append(vmap(tail)(_points(params, d1, d2, ak, bk_, names), z))
    return torch.cat(out)


_ELEMENTWISE = (nn.ReLU, nn.LeakyReLU, nn.GELU, nn.SiLU, nn.Tanh, nn.Sigmoid, nn.ELU, nn.Softplus, nn.Identity)


def _is_mlp(rest: nn.Sequential) -> bool:
    return all(isinstance(m, (nn.Linear, *_ELEMENTWISE)) for m in rest.children())


def _mlp_tail(rest: nn.Sequential, points: Params, z: torch.Tensor, criterion, target) -> torch.Tensor:
    """The rest of an MLP for K grid points at once: one batched matmul per layer instead of vmap's overhead."""
    h = z  # (K, N, features)
    for name, module in rest.named_children():
        if isinstance(module, nn.Linear):
            h = torch.bmm(h, points[f"{name}.weight"].transpose(1, 2))  # (K, N, out)
            if module.bias is not None:
                h = h + points[f"{name}.bias"].unsqueeze(1)
        elif isinstance(module, nn.ReLU):
            h = h.relu_()  # h is this chunk's own buffer: in place saves a pass over memory
        else:
            h = module(h)
    if criterion is F.cross_entropy and not target.is_floating_point():
        # mean cross-entropy of each point's (N, C) logits; vmapped log_softmax + nll_loss cost 2/3 of the grid
        picked = h.gather(2, target.view(1, -1, 1).expand(len(h), -1, 1)).squeeze(2)  # (K, N)
        return (torch.logsumexp(h, 2) - picked).mean(1)
    return vmap(criterion, in_dims=(0, None))(h, target)


def surface(
    loss_fn: LossFn,
    params: Params,
    directions: tuple[Params, ...],
    *,
    extent: float = 1.0,
    n: int = 41,
    engine: str | None = None,
) -> Surface:
    """Loss surface on an exact symmetric grid (Li et al.): https://arxiv.org/abs/1712.09913

    Args:
        loss_fn (`Callable`): ``loss_fn(params) -> scalar``; a :class:`ModelLoss` takes the ``affine`` engine.
        params (`dict[str, Tensor]`): the centre θ (left bitwise unchanged).
        directions (`tuple`): ``(d1, d2)`` for a plane or ``(d1,)`` for a 1-D slice, shaped like ``params``.
        extent (`float`, defaults to `1.0`): a, b ∈ linspace(−extent, extent, n).
        n (`int`, defaults to `41`): odd, 3 ≤ n ≤ 201, so θ itself is the centre point. Budget: grid points ×
            parameters ≤ 5·10⁷ (the digits MLP up to n = 101, the shapes CNN up to n = 21).
        engine (`str`, optional): force ``"affine"``, ``"vmap"`` or ``"loop"``; default: the fastest that applies.

    Shapes:
        loss: (n, n), ``loss[i, j] = L(θ + a_i d1 + b_j d2)``; (n,) for a 1-D slice; on θ's device.

    >>> f = lambda p: 0.5 * (p["x"] ** 2).sum()
    >>> s = surface(f, {"x": torch.zeros(2, dtype=torch.float64)}, ({"x": torch.tensor([1.0, 0.0], dtype=torch.float64)},), n=3)
    >>> s.loss.tolist()
    [0.5, 0.0, 0.5]
    """
    d1, d2 = _check(loss_fn, params, directions, extent, n, engine)
    return _surface(loss_fn, params, d1, d2, extent, n, engine)


def _check(loss_fn: LossFn, params: Params, directions, extent: float, n: int, engine: str | None):
    """Validate a surface's arguments and its budget; returns ``(d1, d2 or None)``."""
    check_positive("extent", extent)
    check_int("n", n, 3, MAX_N)
    if n % 2 == 0:
        raise OptiscopeError(f"Expected `n` to be odd (θ is the centre point), but got {n}")
    if engine is not None:
        check_choice("engine", engine, ENGINES)
    check_point(params)
    if isinstance(loss_fn, ModelLoss):
        loss_fn.check(params)
    if not isinstance(directions, (tuple, list)) or len(directions) not in (1, 2):
        raise OptiscopeError(f"Expected `directions` as (d1,) or (d1, d2), but got {type(directions).__name__}")
    for direction, what in zip(directions, ("first direction", "second direction"), strict=False):
        check_params(direction, params, what)
    points = n * n if len(directions) == 2 else n
    size = num_params(params)
    largest = _largest_n(size, len(directions))
    hint = f"For this model ({size:,} parameters) use a resolution n ≤ {largest}." if largest else ""
    check_budget("grid points × parameters", points * size, MAX_GRID_WORK, hint=hint)
    return directions[0], directions[1] if len(directions) == 2 else None


def _largest_n(size: int, dims: int) -> int:
    """The largest odd n ≥ 3 within the grid budget for ``size`` parameters (0 if none)."""
    n = int((MAX_GRID_WORK / size) ** (1 / dims))
    n = min(n - (n % 2 == 0), MAX_N)
    return n if n >= 3 else 0


def _engines(loss_fn: LossFn, like: torch.Tensor, engine: str | None) -> list[str]:
    engines = ["affine"] if isinstance(loss_fn, ModelLoss) and _affine_split(loss_fn.module()) else []
    engines += ["vmap", "loop"]
    if engine is not None:
        if engine not in engines:
            raise OptiscopeError(f"Expected an `engine` that applies to this loss ({engines}), but got {engine!r}")
        return [engine]
    if like.device.type == "cpu":
        engines.remove("vmap")  # on a CPU, vmapped (grouped) convolutions ran 2.8× slower than a plain loop
    return engines


def _surface(loss_fn: LossFn, params: Params, d1: Params, d2: Params | None, extent: float, n: int, engine) -> Surface:
    like = next(iter(params.values()))
    coords = torch.linspace(-extent, extent, n, dtype=torch.float64).to(like.device, like.dtype)
    coords[n // 2] = 0.0  # exactly θ at the centre
    if d2 is None:
        a, b = coords, torch.zeros_like(coords)
    else:
        a, b = coords.repeat_interleave(n), coords.repeat(n)  # first index a
    engines = _engines(loss_fn, like, engine)
    with torch.no_grad():
        for name in engines:
            try:
                if name == "affine":
                    loss = _affine(loss_fn, params, d1, d2, a, b)
                elif name == "vmap":
                    loss = _vmap(loss_fn, params, d1, d2, a, b, chunk=64)
                else:
                    loss = _loop(loss_fn, params, d1, d2, a, b)
                break
            except (RuntimeError, NotImplementedError):
                if name == engines[-1]:
                    raise
    bad = ~torch.isfinite(loss)
    if bad.any():
        i = int(bad.nonzero()[0])
        raise OptiscopeError(
            f"The loss is NaN or infinite at {int(bad.sum())} of {len(loss)} grid points (first at a={float(a[i]):.3g}, "
            f"b={float(b[i]):.3g}); reduce `extent` or check the model"
        )
    return Surface(
        coords, None if d2 is None else coords, loss.reshape(n, n) if d2 is not None else loss, float(extent), name
    )


def refine(
    loss_fn: LossFn,
    params: Params,
    directions: tuple[Params, ...],
    *,
    extent: float = 1.0,
    n: int = 41,
    coarse: int = 11,
) -> Iterator[Surface]:
    """Coarse to fine (Li et al.): https://arxiv.org/abs/1712.09913 — a ``coarse`` surface first, then resolution ``n``.

    Validated when called (both resolutions and the budget); each surface is computed at its ``next``.
    One surface when ``n <= coarse``. Arguments as in :func:`surface`.

    >>> f = lambda p: (p["x"] ** 2).sum()
    >>> [len(s.loss) for s in refine(f, {"x": torch.zeros(1)}, ({"x": torch.ones(1)},), n=7, coarse=3)]
    [3, 7]
    """
    d1, d2 = _check(loss_fn, params, directions, extent, n, None)
    return (_surface(loss_fn, params, d1, d2, extent, size, None) for size in refine_sizes(n, coarse=coarse))


def refine_sizes(n: int, *, coarse: int = 11) -> tuple[int, ...]:
    """The resolutions :func:`refine` computes, coarse first (for a caller that caches each surface by resolution).

    >>> refine_sizes(41), refine_sizes(7)
    ((11, 41), (7,))
    """
    n = check_int("n", n, 3, MAX_N)
    if check_int("coarse", coarse, 3, MAX_N) % 2 == 0:
        raise OptiscopeError(f"Expected `coarse` to be odd (θ is the centre point), but got {coarse}")
    return (coarse, n) if coarse < n else (n,)
