"""Compute-device choice and seeding, shared by every lab."""

from __future__ import annotations

import os
import random

import numpy as np
import torch

DEFAULT_SEED = 0


def pick_device(prefer: str | None = None) -> torch.device:
    """The device to compute on: ``prefer`` or ``$OPTISCOPE_DEVICE`` if set, else cuda, then mps, then cpu.

    >>> pick_device("cpu")
    device(type='cpu')
    """
    choice = prefer or os.environ.get("OPTISCOPE_DEVICE")
    if choice:
        device = torch.device(choice)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"Expected an available device, but `{choice}` has no CUDA runtime here.")
        if device.type == "mps" and not torch.backends.mps.is_available():
            raise ValueError(f"Expected an available device, but `{choice}` is not available here.")
        return device
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def device_label(device: torch.device) -> str:
    """A human-readable name, e.g. ``cuda (NVIDIA H200)`` or ``cpu (2 threads)``."""
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    if device.type == "mps":
        return "mps (Apple GPU)"
    return f"cpu ({torch.get_num_threads()} threads)"


def seed_everything(seed: int) -> None:
    """Seed the global RNGs, for third-party code that uses them. Core code takes explicit generators."""
    random.seed(seed)
    np.random.seed(seed)  # noqa: NPY002 -- third-party code that reads the legacy global RNG
    torch.manual_seed(seed)


def generator(seed: int, device: torch.device | str = "cpu") -> torch.Generator:
    """A fresh ``torch.Generator`` on ``device`` seeded with ``seed``."""
    return torch.Generator(device=device).manual_seed(int(seed))


def sync(device: torch.device) -> None:
    """Wait for queued kernels (for honest timings on GPUs)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
