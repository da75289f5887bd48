"""The exact Hessian of a small model (up to a few thousand parameters): the test oracle and a UI choice."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from core.errors import check_budget, check_int
from core.landscape.functional import LossFn, Params, unflatten
from core.landscape.hvp import HessianOperator

MAX_EXACT_PARAMS = 6000


def hessian_matrix(loss_fn: LossFn, params: Params, *, chunk: int = 256) -> torch.Tensor:
    """The full Hessian ∇²L(θ), column blocks by batched double backward, symmetrized. Shapes: (P, P).

    >>> hessian_matrix(lambda p: (p["x"] ** 2).sum() * p["x"][0], {"x": torch.tensor([1.0, 2.0])}).tolist()
    [[6.0, 4.0], [4.0, 2.0]]
    """
    chunk = check_int("chunk", chunk, 1)
    op = HessianOperator(loss_fn, params)
    check_budget("parameters for an exact Hessian", op.size, MAX_EXACT_PARAMS, hint="Use `eigenpairs` (Lanczos).")
    eye = torch.eye(op.size, dtype=op.dtype, device=op.device)
    h = torch.cat([op.matvec(eye[i : i + chunk]) for i in range(0, op.size, chunk)])
    return 0.5 * (h + h.T)


@dataclass(frozen=True)
class ExactSpectrum:
    """Every eigenpair of a small model's Hessian, in float64 (:func:`exact_spectrum`)."""

    eigenvalues: torch.Tensor  # (P,) ascending
    eigenvectors: torch.Tensor  # (P, P) columns, float64
    like: Params

    def vector(self, i: int) -> Params:
        """Eigenvector ``i`` (ascending order; negative ``i`` counts from the top) shaped like the parameters."""
        return {k: v.to(self.like[k].dtype) for k, v in unflatten(self.eigenvectors[:, i], self.like).items()}


def exact_spectrum(loss_fn: LossFn, params: Params) -> ExactSpectrum:
    """The exact Hessian spectrum (``eigh`` of :func:`hessian_matrix` in float64), Lanczos' oracle: https://arxiv.org/abs/1912.07145

    >>> exact_spectrum(lambda p: (p["x"] ** 2).sum(), {"x": torch.zeros(2)}).eigenvalues.tolist()
    [2.0, 2.0]
    """
    values, vectors = torch.linalg.eigh(hessian_matrix(loss_fn, params).double())
    return ExactSpectrum(values, vectors, {k: v.detach() for k, v in params.items()})
