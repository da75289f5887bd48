"""Input checks the bilevel lab's entry points share (on top of ``core.errors``)."""

from __future__ import annotations

from typing import Any

import torch

from core.errors import OptiscopeError


def check_tensor(name: str, value: Any, *, dims: tuple[int, ...] | None = None, floating: bool = True) -> torch.Tensor:
    """``value`` if it is a tensor with one of ``dims`` dimensions, and (``floating``) a finite float tensor.

    >>> check_tensor("x0", torch.tensor([1, 2]))
    Traceback (most recent call last):
    core.errors.OptiscopeError: Expected `x0` to be a finite float tensor, but got dtype torch.int64
    """
    if not isinstance(value, torch.Tensor):
        raise OptiscopeError(f"Expected `{name}` to be a tensor, but got {type(value).__name__}")
    if dims is not None and value.dim() not in dims:
        raise OptiscopeError(
            f"Expected `{name}` with {' or '.join(map(str, dims))} dimensions, but got {tuple(value.shape)}"
        )
    if floating and not value.is_floating_point():
        raise OptiscopeError(f"Expected `{name}` to be a finite float tensor, but got dtype {value.dtype}")
    if floating and not bool(torch.isfinite(value).all()):
        raise OptiscopeError(f"Expected `{name}` to be finite, but it holds NaN or inf")
    return value
