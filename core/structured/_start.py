"""The checks every structured run shares: its problem record and its start point."""

from __future__ import annotations

import math

import torch

from core.errors import OptiscopeError, check_range


def start_point(reference: torch.Tensor, x0, device) -> torch.Tensor:
    """``x0`` (default ``reference``, the problem's start) as float64 on the problem's device, checked.

    The problem's tensors live where it was built (``make_problem(..., device=...)``), so a different ``device``
    is refused rather than failing inside the first step.
    """
    if device is not None and torch.device(device).type != reference.device.type:
        raise OptiscopeError(
            f"Expected `device` to be the problem's ({reference.device}), but got {device}: "
            "build the problem with make_problem(..., device=...)"
        )
    x = (reference if x0 is None else torch.as_tensor(x0)).to(reference.device, torch.float64)
    if x.shape != reference.shape or not torch.isfinite(x).all():
        raise OptiscopeError(f"Expected a finite `x0` of shape {tuple(reference.shape)}, but got {tuple(x.shape)}")
    return x


def check_problem(problem, kind: type) -> None:
    """A ``kind`` record whose start is a finite float64 vector (n,), as ``make_problem`` builds it."""
    if not isinstance(problem, kind):
        raise OptiscopeError(f"Expected `problem` to be a {kind.__name__}, but got {type(problem).__name__}")
    x0 = check_tensor("problem.x0", problem.x0)
    if x0.ndim != 1 or x0.numel() == 0:
        raise OptiscopeError(f"Expected `problem.x0` of shape (n,), but got {tuple(x0.shape)}")


def check_tensor(name: str, value, shape: tuple[int, ...] | None = None) -> torch.Tensor:
    """``value`` if it is a finite float64 tensor (of ``shape`` where given)."""
    shaped = isinstance(value, torch.Tensor) and value.dtype == torch.float64
    if not (shaped and (shape is None or tuple(value.shape) == shape) and bool(torch.isfinite(value).all())):
        got = f"{value.dtype} {tuple(value.shape)}" if isinstance(value, torch.Tensor) else type(value).__name__
        raise OptiscopeError(f"Expected `{name}` to be a finite float64 tensor {shape or ''}, but got {got}")
    return value


def check_finite(name: str, value: float) -> float:
    number = check_range(name, value, -math.inf, math.inf)
    if not math.isfinite(number):
        raise OptiscopeError(f"Expected a finite `{name}`, but got {value}")
    return number
