"""Hessian-vector products.

Measured on the digits MLP (4,810 parameters, 1,348 samples, 2 CPU threads; ``bench/landscape.py``):
double backward through one cached gradient graph is several times cheaper per product than torch.func's
forward-over-reverse ``jvp(grad(f))``, which rebuilds the forward and backward passes each call. Lanczos,
Hutchinson and SLQ all apply the same Hessian many times, so :class:`HessianOperator` builds the
gradient graph once and every product is one extra backward pass. Blocks of vectors go through
``is_grads_batched`` (vmap over the backward) on accelerators; on CPU a loop measured faster (4.8 ms
vs 7.9 ms for 4 products), so blocks are looped there.
"""

from __future__ import annotations

import torch
from torch.func import grad, jvp

from core.errors import OptiscopeError
from core.landscape.functional import LossFn, ModelLoss, Params, check_params, check_point, flatten, unflatten


class HessianOperator:
    """H = ∇²L(θ) as a linear operator on flat vectors, built on one cached gradient graph.

    Args:
        loss_fn (`Callable`): ``loss_fn(params) -> scalar``.
        params (`dict[str, Tensor]`): the point θ; never modified.

    Shapes:
        matvec: v (P,) -> (P,), or a block V (B, P) -> (B, P).

    >>> A = torch.diag(torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64))
    >>> op = HessianOperator(lambda p: 0.5 * p["x"] @ A @ p["x"], {"x": torch.ones(3, dtype=torch.float64)})
    >>> op.matvec(torch.tensor([1.0, 1.0, 1.0], dtype=torch.float64)).tolist(), op.num_hvps
    ([1.0, 2.0, 3.0], 1)
    """

    def __init__(self, loss_fn: LossFn, params: Params):
        check_point(params)
        if isinstance(loss_fn, ModelLoss):
            loss_fn.check(params)
        self.like = {k: v.detach() for k, v in params.items()}
        self.size = sum(v.numel() for v in params.values())
        self.dtype, self.device = flatten(self.like).dtype, flatten(self.like).device
        self._leaves = [v.detach().clone().requires_grad_(True) for v in params.values()]
        with torch.enable_grad():
            self.loss = loss_fn(dict(zip(params, self._leaves, strict=True)))
            if not torch.isfinite(self.loss):
                raise OptiscopeError(f"Expected a finite loss at θ, but got {float(self.loss.detach())}")
            grads = torch.autograd.grad(self.loss, self._leaves, create_graph=True, allow_unused=True)
        self.gradient = torch.cat(
            [
                (g if g is not None else torch.zeros_like(x)).reshape(-1)
                for g, x in zip(grads, self._leaves, strict=True)
            ]
        )
        self.num_hvps = 0

    def matvec(self, v: torch.Tensor) -> torch.Tensor:
        """H·v on the operator's device and dtype (``v`` is moved there first)."""
        v = v.to(device=self.device, dtype=self.dtype)
        batched = v.dim() == 2
        self.num_hvps += v.shape[0] if batched else 1
        if not self.gradient.requires_grad:  # the loss is linear in θ
            return torch.zeros_like(v)
        if batched and v.device.type == "cpu":  # measured: vmap over the backward is slower than a loop on CPU
            self.num_hvps -= v.shape[0]
            return torch.stack([self.matvec(row) for row in v])
        try:
            out = torch.autograd.grad(
                self.gradient,
                self._leaves,
                grad_outputs=v,
                retain_graph=True,
                allow_unused=True,
                is_grads_batched=batched,
            )
        except RuntimeError:
            if not batched:
                raise
            self.num_hvps -= v.shape[0]  # some ops have no batching rule: one product per row instead
            return torch.stack([self.matvec(row) for row in v])
        shape = (v.shape[0], -1) if batched else (-1,)
        return torch.cat(
            [
                (h if h is not None else x.new_zeros(v.shape[:1] + x.shape if batched else x.shape)).reshape(shape)
                for h, x in zip(out, self._leaves, strict=True)
            ],
            dim=-1,
        ).detach()


def hvp(loss_fn: LossFn, params: Params, v: Params | list[Params]) -> Params | list[Params]:
    """Hessian-vector product (HVP) by double backward: https://arxiv.org/abs/1912.07145

    Args:
        loss_fn (`Callable`): ``loss_fn(params) -> scalar``.
        params (`dict[str, Tensor]`): the point θ.
        v (`dict` or `list[dict]`): one direction shaped like ``params``, or several (one batched product).

    Returns:
        H·v shaped like ``v``.

    >>> out = hvp(lambda p: (p["x"] ** 3).sum(), {"x": torch.tensor([1.0, 2.0])}, {"x": torch.tensor([1.0, 1.0])})
    >>> out["x"].tolist()
    [6.0, 12.0]
    """
    vs = v if isinstance(v, list) else [v]
    for one in vs:
        check_params(one, params)
    op = HessianOperator(loss_fn, params)
    block = torch.stack([flatten({k: one[k] for k in params}) for one in vs])
    out = op.matvec(block) if len(vs) > 1 else op.matvec(block[0])[None]
    result = [unflatten(row, params) for row in out]
    return result if isinstance(v, list) else result[0]


def hvp_forward_over_reverse(loss_fn: LossFn, params: Params, v: Params) -> Params:
    """H·v as ``jvp(grad(loss_fn))`` (torch.func); kept to measure against :func:`hvp` in the benchmark."""
    return jvp(grad(loss_fn), (params,), ({k: v[k] for k in params},))[1]
