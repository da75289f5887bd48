"""The start-point check every structured run shares."""

from __future__ import annotations

import torch

from core.errors import OptiscopeError


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
