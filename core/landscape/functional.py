"""The functional view of a network: a dict of named parameter tensors and a closure ``loss_fn(params)``.

Everything in the lab works on this pair, so a user's own loss (a notebook closure) and a zoo model go
through the same code. :class:`ModelLoss` is the closure for an ``nn.Module``; it also exposes the model
and batch so :func:`core.landscape.surface` can take its exact-algebra fast path.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
from torch import nn
from torch.func import functional_call

Params = dict[str, torch.Tensor]
LossFn = Callable[[Params], torch.Tensor]
BN_POLICIES = ("eval", "batch")


def params_of(model: nn.Module) -> Params:
    """Detached copies of the model's trainable parameters, by name.

    >>> sorted(params_of(torch.nn.Linear(3, 2)))
    ['bias', 'weight']
    """
    return {k: v.detach().clone() for k, v in model.named_parameters() if v.requires_grad}


class ModelLoss:
    """The closure ``params -> criterion(model(inputs; params), target)`` for a fixed batch.

    Args:
        model (`nn.Module`): any module; it is copied, never modified.
        batch (`tuple`): ``(inputs, target)``.
        criterion (`Callable`): ``criterion(output, target) -> scalar`` (a mean over the batch).
        bn (`str`, defaults to `"eval"`): ``"eval"`` uses BatchNorm running statistics; ``"batch"`` uses the
            statistics of this batch and never updates the running ones.
    """

    def __init__(self, model: nn.Module, batch, criterion: Callable, bn: str = "eval"):
        if bn not in BN_POLICIES:
            raise ValueError(f"Expected `bn` in {BN_POLICIES}, but got {bn!r}.")
        inputs, target = batch
        self.model = copy.deepcopy(model).eval()
        if bn == "batch":
            # Without running buffers, F.batch_norm uses batch statistics even in eval mode and updates nothing.
            for m in self.model.modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm):
                    m.track_running_stats = False
                    m.running_mean = m.running_var = m.num_batches_tracked = None
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.inputs, self.target, self.criterion, self.bn = inputs, target, criterion, bn
        self.buffers = {k: v for k, v in self.model.named_buffers()}

    def __call__(self, params: Params) -> torch.Tensor:
        out = functional_call(self.model, {**self.buffers, **params}, (self.inputs,))
        return self.criterion(out, self.target)


def loss_fn_for(model: nn.Module, batch, criterion: Callable, bn: str = "eval") -> ModelLoss:
    """The loss closure of ``model`` on ``batch`` (see :class:`ModelLoss`).

    >>> model = torch.nn.Linear(3, 2)
    >>> loss_fn = loss_fn_for(model, (torch.ones(4, 3), torch.zeros(4, dtype=torch.long)), torch.nn.functional.cross_entropy)
    >>> bool(torch.isclose(loss_fn(params_of(model)), torch.nn.functional.cross_entropy(model(torch.ones(4, 3)), torch.zeros(4, dtype=torch.long))))
    True
    """
    return ModelLoss(model, batch, criterion, bn)


def check_params(params: Params, like: Params, what: str = "direction") -> None:
    """Raise a ValueError unless ``params`` has exactly the names and shapes of ``like``."""
    if set(params) != set(like):
        missing, extra = sorted(set(like) - set(params)), sorted(set(params) - set(like))
        raise ValueError(f"The {what} does not match the parameters: missing {missing[:5]}, unexpected {extra[:5]}.")
    for k, v in like.items():
        if params[k].shape != v.shape:
            raise ValueError(f"The {what}'s `{k}` has shape {tuple(params[k].shape)}, expected {tuple(v.shape)}.")


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
