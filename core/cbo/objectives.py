"""Test landscapes for CBO, each with its known global minimiser.

Every objective maps ``(..., d)`` tensors to ``(...)`` energies and is written in plain torch ops,
so gradient descent can differentiate it and it runs on any device.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from core.cbo.config import MAX_COORDINATES
from core.errors import OptiscopeError, check_budget, check_int, check_range, check_seed

# Large swarms are evaluated in blocks of particles whose temporaries stay in cache: a third faster on one core
# at 10^5 particles × d = 20 than one pass over the whole swarm (which allocates fresh pages every step). Two
# float64 buffers of 2048 × 20 fit where two of 4096 rows spilled (Rastrigin 15% slower at 10^4 particles).
BLOCK_ROWS = 2048


def rastrigin(x: torch.Tensor, a: float = 10.0) -> torch.Tensor:
    """Rastrigin: ``sum_i x_i^2 + a (1 - cos 2 pi x_i)``; minimum 0 at 0, a local minimum near every integer point.

    >>> rastrigin(torch.zeros(3, 20))
    tensor([0., 0., 0.])
    """
    # Computed as sum x^2 + 2a sin^2(pi x), the same function: one op fewer than the textbook form (no constant to
    # add), which a small swarm pays ~5 µs for each step, and no cancellation in 1 - cos near the integer points.
    if x.requires_grad or x.numel() < 2 * BLOCK_ROWS * x.shape[-1]:
        s = torch.mul(x, math.pi).sin_()
        return torch.mul(x, x).addcmul_(s, s, value=2 * a).sum(dim=-1)
    rows = x.reshape(-1, x.shape[-1])
    energies, terms, sines = x.new_empty(rows.shape[0]), *x.new_empty((2, BLOCK_ROWS, x.shape[-1]))
    for start in range(0, rows.shape[0], BLOCK_ROWS):  # the same ops per block of particles: same numbers
        block = rows[start : start + BLOCK_ROWS]
        s = torch.mul(block, math.pi, out=sines[: len(block)]).sin_()
        part = torch.mul(block, block, out=terms[: len(block)]).addcmul_(s, s, value=2 * a)
        torch.sum(part, dim=-1, out=energies[start : start + BLOCK_ROWS])
    return energies.view(x.shape[:-1])


def ackley(x: torch.Tensor) -> torch.Tensor:
    """Ackley: a flat outer plateau with a narrow funnel; minimum 0 at 0.

    >>> ackley(torch.zeros(2)).abs() < 1e-5
    tensor(True)
    """
    d = x.shape[-1]
    r = torch.sqrt((x**2).sum(dim=-1) / d + 1e-12)  # eps keeps the gradient finite at 0
    return -20 * torch.exp(-0.2 * r) - torch.exp(torch.cos(2 * math.pi * x).sum(dim=-1) / d) + 20 + math.e


def rosenbrock(x: torch.Tensor) -> torch.Tensor:
    """Rosenbrock: a curved banana valley; minimum 0 at (1, ..., 1). Needs d >= 2.

    >>> rosenbrock(torch.ones(4))
    tensor(0.)
    """
    return (100 * (x[..., 1:] - x[..., :-1] ** 2) ** 2 + (1 - x[..., :-1]) ** 2).sum(dim=-1)


def quadratic(x: torch.Tensor) -> torch.Tensor:
    """``1/2 ||x||^2``; minimum 0 at 0 (the proximal step of CH has a closed form here).

    >>> quadratic(torch.tensor([3.0, 4.0]))
    tensor(12.5000)
    """
    return 0.5 * (x**2).sum(dim=-1)


def grand_canyon3_noisy(x: torch.Tensor) -> torch.Tensor:
    """GrandCanyon3noisy (2-D), from Riedl et al., "Gradient is All You Need?"; minimum 0 at (0, 0).

    A long curved canyon with cosine ripples (the "noise") and a ledge: gradient descent from
    (8, 8) runs down the canyon and stalls in a ripple, CBO finds the origin.

    >>> grand_canyon3_noisy(torch.zeros(2)).abs() < 1e-4
    tensor(True)
    """
    if x.shape[-1] != 2:
        raise OptiscopeError(f"Expected 2-D points for GrandCanyon3noisy, but got d={x.shape[-1]}")
    v1, v2 = x[..., 0], x[..., 1]
    valley = v2 - ((2 / 16) * (v1 - 1) * (v1 - 4) ** 2 + 2)
    block = -v1 - 1.6 * v2
    canyon = 100 * (1 - torch.exp(-1.4 * valley**2 * torch.exp(-0.002 * v1**4)))
    bowl = 1.6 * v1**2 + 0.8 * v2**2
    ripples = 8 * (1 - torch.cos(0.75 * math.pi * x)).sum(dim=-1)
    ledge = 16 * torch.exp(1 - 2 * valley**4) * torch.clamp((1 - torch.exp(-9 * block**2)) * torch.sign(block), min=0)
    return canyon + bowl + ripples + ledge


BOX_LIMIT = 1e6  # landscapes live within float32's comfortable range


@dataclass(frozen=True)
class Objective:
    """A named landscape: ``fn`` (..., d) -> (...), its minimiser, and a box for plots and initial particles."""

    name: str
    fn: Callable[[torch.Tensor], torch.Tensor]
    minimiser_value: float  # every coordinate of x* equals this
    box: tuple[float, float]  # plotting / sampling range per coordinate
    dim: int | None = None  # fixed dimension, or None for any d (>= min_dim)
    min_dim: int = 1
    start: tuple[float, float] | None = None  # (mean, std) of a Gaussian start per coordinate; None = uniform on box

    def __post_init__(self) -> None:
        lo, hi = (check_range("box", v, -BOX_LIMIT, BOX_LIMIT) for v in self.box)
        if lo >= hi:
            raise OptiscopeError(f"Expected `box` = (low, high) with low < high, but got {self.box}")
        start = None
        if self.start is not None:
            start = (
                check_range("start", self.start[0], -BOX_LIMIT, BOX_LIMIT),
                check_range("start", self.start[1], 0, BOX_LIMIT),
            )
        checked = {
            "box": (lo, hi),
            "minimiser_value": check_range("minimiser_value", self.minimiser_value, -BOX_LIMIT, BOX_LIMIT),
            "dim": None if self.dim is None else check_int("dim", self.dim),
            "min_dim": check_int("min_dim", self.min_dim),
            "start": start,
        }
        for name, value in checked.items():  # normalised: numbers as numbers, whatever they came as
            object.__setattr__(self, name, value)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(x)

    def minimiser(self, d: int, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """x* as a (d,) tensor.

        >>> OBJECTIVES["Rosenbrock"].minimiser(2)
        tensor([1., 1.])
        """
        self.check_dim(d)
        return torch.full((d,), self.minimiser_value, device=device, dtype=dtype)

    def sample(
        self, n_particles: int, d: int, *, runs: int | None = None, seed: int = 0, dtype: torch.dtype = torch.float32
    ) -> torch.Tensor:
        """Initial particles on the CPU: (N, d), or (runs, N, d); uniform on ``box`` unless ``start`` says otherwise.

        Drawn on the CPU so that a seed gives the same start on every device (move it with ``.to(device)``).

        >>> OBJECTIVES["GrandCanyon3noisy"].sample(200, 2, runs=3).shape
        torch.Size([3, 200, 2])
        """
        d, n_particles = self.check_dim(d), check_int("n_particles", n_particles, 2)
        shape = (n_particles, d) if runs is None else (check_int("runs", runs), n_particles, d)
        check_budget("particle coordinates M·N·d", math.prod(shape), MAX_COORDINATES)
        g = torch.Generator().manual_seed(check_seed(seed))
        if self.start is not None:
            mean, std = self.start
            return mean + std * torch.randn(shape, generator=g, dtype=dtype)
        lo, hi = self.box
        return lo + (hi - lo) * torch.rand(shape, generator=g, dtype=dtype)

    def grid(self, n: int = 140) -> tuple[torch.Tensor, torch.Tensor]:
        """The landscape over ``box`` on an n × n grid of the plane (float64, CPU), for contour plots.

        Returns ``(axis, z)`` with ``z[i, j] = f(axis[j], axis[i])``: rows run along increasing y.

        >>> axis, z = OBJECTIVES["Quadratic"].grid(3)
        >>> axis.tolist(), z[0].tolist()
        ([-3.0, 0.0, 3.0], [9.0, 4.5, 9.0])
        """
        check_int("n", n, 2, 1000)
        self.check_dim(2)
        axis = torch.linspace(*self.box, n, dtype=torch.float64)
        y, x = torch.meshgrid(axis, axis, indexing="ij")  # (n, n) each
        return axis, self.fn(torch.stack([x, y], dim=-1))

    def check_dim(self, d: int) -> int:
        """``d`` as an int, if this landscape is defined in d dimensions."""
        d = check_int("d", d)
        if self.dim is not None and d != self.dim:
            raise OptiscopeError(f"Expected d={self.dim} for {self.name}, but got d={d}")
        if d < self.min_dim:
            raise OptiscopeError(f"Expected d >= {self.min_dim} for {self.name}, but got d={d}")
        return d


OBJECTIVES: dict[str, Objective] = {
    o.name: o
    for o in (
        Objective("Rastrigin", rastrigin, 0.0, (-3.0, 3.0)),
        Objective("Ackley", ackley, 0.0, (-4.0, 4.0)),
        Objective("Rosenbrock", rosenbrock, 1.0, (-2.0, 2.0), min_dim=2),
        Objective("Quadratic", quadratic, 0.0, (-3.0, 3.0)),
        Objective("GrandCanyon3noisy", grand_canyon3_noisy, 0.0, (-3.0, 10.0), dim=2, start=(8.0, 0.5)),
    )
}
