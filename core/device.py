"""Compute-device choice, torch threads and seeded generators, shared by every lab."""

from __future__ import annotations

import os

import torch

from core.errors import OptiscopeError


def pick_device(prefer: str | None = None) -> torch.device:
    """The device to compute on: ``prefer`` or ``$OPTISCOPE_DEVICE`` if set, else cuda, then mps, then cpu.

    >>> pick_device("cpu")
    device(type='cpu')
    """
    choice = prefer or os.environ.get("OPTISCOPE_DEVICE")
    if choice:
        device = torch.device(choice)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise OptiscopeError(f"Expected an available device, but `{choice}` has no CUDA runtime here.")
        if device.type == "mps" and not torch.backends.mps.is_available():
            raise OptiscopeError(f"Expected an available device, but `{choice}` is not available here.")
        return device
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def device_label(device: torch.device) -> str:
    """A human-readable name, e.g. ``cuda (NVIDIA H200)`` or ``cpu (1 thread)``."""
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    if device.type == "mps":
        return "mps (Apple GPU)"
    threads = torch.get_num_threads()
    return f"cpu ({threads} thread{'s' if threads > 1 else ''})"


def generator(seed: int, device: torch.device | str = "cpu") -> torch.Generator:
    """A fresh ``torch.Generator`` on ``device`` seeded with ``seed``."""
    return torch.Generator(device=device).manual_seed(int(seed))


def set_threads(n: int | None = None) -> int:
    """Set torch's intra-op threads: ``n``, else ``$OPTISCOPE_THREADS``, else 1; returns the number set.

    One is the default because the labs run many small ops: on a 2-core machine with the other core
    busy (a browser, another session), two threads made a digits-UNet call 70× slower (1.9 s vs 27 ms),
    each op waiting for a descheduled worker.
    """
    n = int(n or os.environ.get("OPTISCOPE_THREADS", 1))
    if n < 1:
        raise OptiscopeError(f"Expected at least 1 thread, but got {n}.")
    torch.set_num_threads(n)
    return n


def sync(device: torch.device) -> None:
    """Wait for queued kernels (for honest timings on GPUs)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
