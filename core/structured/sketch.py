"""Randomized iterative sketching for a square linear system ``K z = b``: Kaczmarz rows or Gaussian sketches.

Both run on ``z = K' y`` (z starts at 0, so it stays in the range of K') and keep the residual
``r = K z - b = W y - b`` with ``W = K K'`` up to date, so that one sweep costs one length-N update and
the stopping test needs no product with K.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

SOLVERS = {
    "kaczmarz": "Randomized Kaczmarz (one row per sweep)",
    "gaussian": "Gaussian sketch (one random combination per sweep)",
    "exact": "Exact solve (no sketch; for comparison)",
}
CHUNK = 4096  # random draws per batch from the generator
CHECK_EVERY = 16  # sweeps between two stopping tests


@dataclass
class Sketch:
    """The sketch solver's progress on one system; :meth:`sweep` continues from where it stopped.

    The sweeps are sequential scalar updates on a system of a few dozen unknowns, so they run in numpy on
    the CPU (a GPU launch per sweep would be slower); the random draws come from a seeded torch generator.
    """

    matrix: torch.Tensor  # K, (N, N)
    rhs: torch.Tensor  # b, (N,)
    solver: str
    gen: torch.Generator
    sweeps: int = 0

    def __post_init__(self) -> None:
        k = self.matrix.detach().cpu().double().numpy()
        self._k, self._gram = k, k @ k.T
        self._b = self.rhs.detach().cpu().double().numpy()
        self._y, self._r = np.zeros(k.shape[0]), -self._b
        self._pool: list = []
        diagonal = np.diag(self._gram)
        self._inverse_diagonal = np.where(diagonal > 0, 1.0 / np.where(diagonal > 0, diagonal, 1.0), 0.0)

    @property
    def residual_norm(self) -> float:
        return float(np.linalg.norm(self._r))

    def solution(self) -> torch.Tensor:
        return torch.as_tensor(self._k.T @ self._y, dtype=self.matrix.dtype, device=self.matrix.device)

    def sweep(self, target: float, max_sweeps: int) -> None:
        """Sweep until ``||K z - b|| <= target`` or ``max_sweeps`` in all."""
        if self.solver == "exact":
            self._y = np.linalg.solve(self._gram, self._b)
            self._r = self._gram @ self._y - self._b
            self.sweeps = 1
            return
        step = self._kaczmarz if self.solver == "kaczmarz" else self._gaussian
        while self.sweeps < max_sweeps and self.residual_norm > target:
            count = min(CHECK_EVERY, max_sweeps - self.sweeps)
            step(count)
            self.sweeps += count

    def _draws_of(self, count: int) -> list:
        while len(self._pool) < count:
            n = self._gram.shape[0]
            if self.solver == "kaczmarz":
                self._pool += torch.randint(n, (CHUNK,), generator=self.gen).tolist()
            else:
                self._pool += list(torch.randn((CHUNK // 8, n), generator=self.gen, dtype=torch.float64).numpy())
        draws, self._pool = self._pool[:count], self._pool[count:]
        return draws

    def _kaczmarz(self, count: int) -> None:
        gram, r, y, inverse = self._gram, self._r, self._y, self._inverse_diagonal
        for i in self._draws_of(count):
            t = -r[i] * inverse[i]  # project onto row i of K z = b
            y[i] += t
            r += t * gram[i]

    def _gaussian(self, count: int) -> None:
        for s in self._draws_of(count):
            ws = self._gram @ s
            curvature = float(s @ ws)
            if curvature > 0:
                t = -float(s @ self._r) / curvature
                self._y += t * s
                self._r += t * ws
