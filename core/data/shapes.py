"""Procedural shapes: cluttered 64×64 colour images with one labelled object and its ground-truth mask.

Every image holds one large *target* shape (its class is the label, its pixels the mask) on a textured,
noisy background, plus 0–3 smaller distractor shapes of *other* classes, so a classifier has to find
the big object and a saliency map can be scored against where it really is. Fully vectorised over
the batch and deterministic for a seed (a private ``torch.Generator``; the global RNG is never used).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from core.errors import OptiscopeError

CLASSES = ("circle", "square", "triangle", "cross", "ring", "star")
# Radii as fractions of the image side: targets are clearly larger than distractors.
_TARGET_RADIUS = (0.17, 0.30)
_DISTRACTOR_RADIUS = (0.06, 0.11)
_MAX_DISTRACTORS = 3


def _inside(kind: torch.Tensor, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Which points (u, v) in a shape's local frame (radius 1) lie inside it. kind: (n,), u, v: (n, H, W)."""
    rho = torch.sqrt(u * u + v * v)
    phi = torch.atan2(v, u)
    tri = torch.ones_like(u, dtype=torch.bool)
    for angle in (-math.pi / 2, math.pi / 6, 5 * math.pi / 6):  # outward normals of an equilateral triangle
        tri &= u * math.cos(angle) + v * math.sin(angle) <= 0.5
    masks = torch.stack(
        [
            rho <= 0.95,  # circle
            torch.maximum(u.abs(), v.abs()) <= 0.78,  # square
            tri,  # triangle (circumradius 1)
            ((u.abs() <= 0.3) & (v.abs() <= 1.0)) | ((v.abs() <= 0.3) & (u.abs() <= 1.0)),  # cross
            (rho <= 0.98) & (rho >= 0.58),  # ring
            rho <= 0.42 + 0.58 * ((torch.cos(5 * phi) + 1) / 2) ** 2,  # five-pointed star
        ]
    )  # (C, n, H, W)
    return masks.gather(0, kind.view(1, -1, 1, 1).expand(1, *u.shape)).squeeze(0)


def _place(kind, radius, size, grid, gen):
    """Masks (n, H, W) for shapes of ``kind`` with ``radius`` (pixels) at random positions and rotations."""
    n = kind.shape[0]
    margin = radius + 1.0
    cx = margin + torch.rand(n, generator=gen) * (size - 2 * margin)
    cy = margin + torch.rand(n, generator=gen) * (size - 2 * margin)
    theta = torch.rand(n, generator=gen) * 2 * math.pi
    ys, xs = grid
    dx = (xs[None] - cx[:, None, None]) / radius[:, None, None]  # (n, H, W)
    dy = (ys[None] - cy[:, None, None]) / radius[:, None, None]
    c, s = torch.cos(theta)[:, None, None], torch.sin(theta)[:, None, None]
    return _inside(kind, c * dx + s * dy, -s * dx + c * dy)


def _contrasting(base: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Random colours (n, 3) that differ from ``base`` by ≥ 0.3 in every channel (wrap-around shift)."""
    shift = 0.3 + 0.4 * torch.rand(base.shape, generator=gen)
    return (base + shift) % 1.0


def make_shapes(n: int, size: int = 64, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Cluttered shape images with labels and ground-truth masks of the labelled object.

    Args:
        n (`int`): number of images.
        size (`int`, defaults to `64`): image side in pixels (≥ 16).
        seed (`int`, defaults to `0`): the same seed gives the same images.

    Shapes:
        images: (n, 3, size, size) float32 in [0, 1]; labels: (n,) int64 in [0, len(CLASSES));
        masks: (n, size, size) bool, the target object's pixels.

    >>> images, labels, masks = make_shapes(4, seed=1)
    >>> tuple(images.shape), tuple(labels.shape), tuple(masks.shape), masks.dtype
    ((4, 3, 64, 64), (4,), (4, 64, 64), torch.bool)
    >>> bool((make_shapes(4, seed=1)[0] == images).all())
    True
    """
    if int(n) < 1:
        raise OptiscopeError(f"Expected `n` >= 1, but got {n}.")
    if int(size) < 16:
        raise OptiscopeError(f"Expected `size` >= 16, but got {size}.")
    n, size = int(n), int(size)
    gen = torch.Generator().manual_seed(int(seed))
    grid = torch.meshgrid(
        torch.arange(size, dtype=torch.float32) + 0.5, torch.arange(size, dtype=torch.float32) + 0.5, indexing="ij"
    )
    n_classes = len(CLASSES)

    # Background: a random base colour, low-frequency colour blobs and oriented stripes.
    bg = torch.rand(n, 3, generator=gen)
    blobs = F.interpolate(
        torch.rand(n, 3, 5, 5, generator=gen) - 0.5, size=(size, size), mode="bicubic", align_corners=False
    )
    freq = 0.15 + 0.5 * torch.rand(n, generator=gen)
    angle = torch.rand(n, generator=gen) * math.pi
    ys, xs = grid
    phase = freq[:, None, None] * (torch.cos(angle)[:, None, None] * xs + torch.sin(angle)[:, None, None] * ys)
    stripes = 0.12 * torch.rand(n, 1, 1, 1, generator=gen) * torch.sin(phase)[:, None]  # (n, 1, H, W)
    images = bg[:, :, None, None] + 0.25 * blobs + stripes

    labels = torch.randint(0, n_classes, (n,), generator=gen)
    n_distractors = torch.randint(0, _MAX_DISTRACTORS + 1, (n,), generator=gen)
    for slot in range(_MAX_DISTRACTORS):
        kind = (labels + torch.randint(1, n_classes, (n,), generator=gen)) % n_classes  # never the label
        lo, hi = _DISTRACTOR_RADIUS
        radius = size * (lo + (hi - lo) * torch.rand(n, generator=gen))
        mask = _place(kind, radius, size, grid, gen) & (slot < n_distractors)[:, None, None]
        colour = _contrasting(bg, gen)
        images = torch.where(mask[:, None], colour[:, :, None, None], images)

    lo, hi = _TARGET_RADIUS
    radius = size * (lo + (hi - lo) * torch.rand(n, generator=gen))
    masks = _place(labels, radius, size, grid, gen)
    colour = _contrasting(bg, gen)
    shade = 1.0 + 0.15 * (torch.rand(n, 1, size, size, generator=gen) - 0.5)  # a little texture on the object
    images = torch.where(masks[:, None], colour[:, :, None, None] * shade, images)

    images = images + 0.06 * torch.randn(images.shape, generator=gen)  # sensor noise everywhere
    return images.clamp(0.0, 1.0), labels, masks
