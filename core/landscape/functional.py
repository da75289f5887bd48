"""The functional view of a network: a dict of named parameter tensors and a closure ``loss_fn(params)``.

Everything in the lab works on this pair, so a user's own loss (a notebook closure) and a zoo model go
through the same code. :class:`ModelLoss` is the closure for an ``nn.Module``; it also exposes the batch
and a per-thread copy of the model so :func:`core.landscape.surface` can take its exact-algebra fast path.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from core.errors import OptiscopeError, check_choice

Params = dict[str, torch.Tensor]
LossFn = Callable[[Params], torch.Tensor]
BN_POLICIES = ("eval", "batch")


def params_of(model: nn.Module) -> Params:
    """Detached copies of all the model's parameters, by name (on the model's device).

    All, not only those with ``requires_grad``: a shared model is frozen (``requires_grad_(False)``) to be read-only.

    >>> sorted(params_of(torch.nn.Linear(3, 2).requires_grad_(False)))
    ['bias', 'weight']
    """
    return {k: v.detach().clone() for k, v in model.named_parameters()}


class ModelLoss:
    """The closure ``params -> criterion(model(inputs; params), target)`` for a fixed batch, safe to share.

    ``functional_call`` reparametrizes the module it is given in place (``swap_tensors_dict``), so two
    threads calling one module at different points see each other's parameters: 14 of 120 losses were
    wrong with 4 threads on one shared closure. Each thread therefore calls its own copy of the model
    (made on its first call); the model passed in is only read, once, when it is copied.

    Args:
        model (`nn.Module`): any module; it is copied, never modified.
        inputs (`Tensor`), target (`Tensor`): the fixed batch, on the model's device.
        criterion (`Callable`, defaults to `F.cross_entropy`): ``criterion(output, target) -> scalar``.
        bn (`str`, defaults to `"eval"`): ``"eval"`` uses BatchNorm running statistics; ``"batch"`` uses the
            statistics of this batch and never updates the running ones.
    """

    def __init__(
        self,
        model: nn.Module,
        inputs: torch.Tensor,
        target: torch.Tensor,
        *,
        criterion: Callable = F.cross_entropy,
        bn: str = "eval",
    ) -> None:
        check_choice("bn", bn, BN_POLICIES)
        device = next((p.device for p in model.parameters()), inputs.device)
        if inputs.device != device or target.device != device:
            raise OptiscopeError(
                f"Expected `inputs` and `target` on the model's device {device}, but got {inputs.device} and {target.device}"
            )
        template = copy.deepcopy(model).eval().requires_grad_(False)
        if bn == "batch":
            # Without running buffers, F.batch_norm uses batch statistics even in eval mode and updates nothing.
            for m in template.modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm):
                    m.track_running_stats = False
                    m.running_mean = m.running_var = m.num_batches_tracked = None
        self._template, self._local = template, threading.local()
        self.shapes = {k: v.shape for k, v in template.named_parameters()}
        self.inputs, self.target, self.criterion, self.bn = inputs, target, criterion, bn

    def module(self) -> nn.Module:
        """This thread's own copy of the model: ``functional_call`` may swap its tensors, no other thread sees it."""
        model = getattr(self._local, "model", None)
        if model is None:
            model = self._local.model = copy.deepcopy(self._template)
        return model

    def check(self, params: Params) -> None:
        """Raise an OptiscopeError unless ``params`` are parameters of this model, shaped as in it."""
        for k, v in params.items():
            if k not in self.shapes or v.shape != self.shapes[k]:
                expected = tuple(self.shapes[k]) if k in self.shapes else "no such parameter"
                raise OptiscopeError(
                    f"Expected `params[{k!r}]` to fit the model ({expected}), but got {tuple(v.shape)}"
                )

    def __call__(self, params: Params) -> torch.Tensor:
        return self.criterion(functional_call(self.module(), params, (self.inputs,)), self.target)


def loss_fn_for(
    model: nn.Module,
    inputs: torch.Tensor,
    target: torch.Tensor,
    *,
    criterion: Callable = F.cross_entropy,
    bn: str = "eval",
) -> ModelLoss:
    """The loss closure of ``model`` on the batch ``(inputs, target)`` (see :class:`ModelLoss`), thread-safe.

    >>> model = torch.nn.Linear(3, 2)
    >>> x, y = torch.ones(4, 3), torch.zeros(4, dtype=torch.long)
    >>> bool(torch.isclose(loss_fn_for(model, x, y)(params_of(model)), F.cross_entropy(model(x), y)))
    True
    """
    return ModelLoss(model, inputs, target, criterion=criterion, bn=bn)


def check_point(params: Params, what: str = "params") -> None:
    """Raise an OptiscopeError unless ``params`` is a non-empty dict of finite floating-point tensors of one
    dtype on one device (a point θ in parameter space)."""
    if not isinstance(params, dict) or not params:
        raise OptiscopeError(f"Expected `{what}` as a non-empty dict of tensors, but got {type(params).__name__}")
    for k, v in params.items():
        if not isinstance(v, torch.Tensor) or not v.is_floating_point():
            raise OptiscopeError(
                f"Expected floating-point tensors in `{what}`, but `{k}` is {getattr(v, 'dtype', v)!r}"
            )
    kinds = {(v.dtype, v.device) for v in params.values()}
    if len(kinds) > 1:
        raise OptiscopeError(
            f"Expected the tensors of `{what}` in one dtype on one device, but got {sorted(map(str, kinds))}"
        )
    if not all(bool(torch.isfinite(v).all()) for v in params.values()):
        raise OptiscopeError(f"Expected finite values in `{what}`, but got NaN or inf")


def check_params(params: Params, like: Params, what: str = "direction") -> None:
    """Raise an OptiscopeError unless ``params`` has exactly the names, shapes, dtype and device of ``like``."""
    if not isinstance(params, dict):
        raise OptiscopeError(f"Expected the {what} as a dict of tensors, but got {type(params).__name__}")
    if set(params) != set(like):
        missing, extra = sorted(set(like) - set(params)), sorted(set(params) - set(like))
        raise OptiscopeError(f"The {what} does not match the parameters: missing {missing[:5]}, unexpected {extra[:5]}")
    check_point(params, what)
    for k, v in like.items():
        if params[k].shape != v.shape:
            raise OptiscopeError(f"The {what}'s `{k}` has shape {tuple(params[k].shape)}, expected {tuple(v.shape)}")
        if (params[k].dtype, params[k].device) != (v.dtype, v.device):
            raise OptiscopeError(
                f"The {what}'s `{k}` is {params[k].dtype} on {params[k].device}, expected {v.dtype} on {v.device}"
            )


def flatten(params: Params) -> torch.Tensor:
    """All tensors of ``params`` concatenated into one vector (dict order). Shapes: (P,)."""
    return torch.cat([v.reshape(-1) for v in params.values()])


def unflatten(vector: torch.Tensor, like: Params) -> Params:
    """The inverse of :func:`flatten`: a vector (P,) cut into tensors shaped like ``like``."""
    out, start = {}, 0
    for k, v in like.items():
        out[k] = vector[start : start + v.numel()].reshape(v.shape)
        start += v.numel()
    return out


def num_params(params: Params) -> int:
    return sum(v.numel() for v in params.values())


def combine(params: Params, d1: Params, a: float, d2: Params | None = None, b: float = 0.0) -> Params:
    """θ + a·d1 + b·d2, as a new dict."""
    return {k: v + a * d1[k] + (b * d2[k] if d2 is not None else 0) for k, v in params.items()}
