"""Matrix-free linear solvers for the implicit function theorem's system (JAXopt's ``linear_solve``, in torch).

Each solver takes ``matvec(u) = A u`` and ``rmatvec(u) = Aᵀ u`` on tensors of any shape (the shape of
the inner solution) and returns a :class:`LinearSolve` record with the true relative residual
``‖A x − b‖ / ‖b‖``, so the caller can tell a converged solve from a singular system.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from core.errors import OptiscopeError, check_budget

MatVec = Callable[[torch.Tensor], torch.Tensor]
MAX_DENSE = 4096  # unknowns of the "dense" solve: it materializes an n × n matrix column by column


@dataclass(frozen=True)
class LinearSolve:
    """A solution ``x`` of ``A x = b``, the iterations used and its relative residual ``‖A x − b‖ / ‖b‖``."""

    x: torch.Tensor
    iterations: int
    residual: float
    residuals: tuple[float, ...] = ()  # per iteration, for the page's residual trace


def _dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a * b).sum()


def _finish(matvec: MatVec, b: torch.Tensor, x: torch.Tensor, iterations: int, trace: list[float]) -> LinearSolve:
    scale = float(b.norm()) or 1.0
    return LinearSolve(x, iterations, float((matvec(x) - b).norm()) / scale, tuple(trace))


def cg(matvec: MatVec, b: torch.Tensor, *, maxiter: int = 100, tol: float = 1e-10) -> LinearSolve:
    r"""Conjugate gradient (CG) for a symmetric positive definite ``A`` (e.g. a strongly convex inner Hessian).

    Stops when ``‖r‖ ≤ tol ‖b‖`` or after ``maxiter`` iterations.

    >>> a = torch.tensor([[4.0, 1.0], [1.0, 3.0]], dtype=torch.float64)
    >>> out = cg(lambda u: a @ u, torch.tensor([1.0, 2.0], dtype=torch.float64))
    >>> [round(v, 6) for v in out.x.tolist()], out.iterations
    ([0.090909, 0.636364], 2)
    """
    x = torch.zeros_like(b)
    r = b.clone()
    p = r.clone()
    rr = _dot(r, r)
    stop = (tol * b.norm()) ** 2
    trace, k = [], 0
    while k < maxiter and rr > stop:
        ap = matvec(p)
        alpha = rr / _dot(p, ap)
        x = x + alpha * p
        r = r - alpha * ap
        rr_new = _dot(r, r)
        p = r + (rr_new / rr) * p
        rr, k = rr_new, k + 1
        trace.append(float(rr.sqrt()))
    return _finish(matvec, b, x, k, trace)


def normal_cg(
    matvec: MatVec, b: torch.Tensor, *, rmatvec: MatVec, maxiter: int = 100, tol: float = 1e-10
) -> LinearSolve:
    r"""CG on the normal equations ``AᵀA x = Aᵀb``: any nonsingular ``A`` (JAXopt's and torchopt's default).

    >>> a = torch.tensor([[0.0, 1.0], [-2.0, 0.0]], dtype=torch.float64)  # not symmetric
    >>> out = normal_cg(lambda u: a @ u, torch.tensor([1.0, 2.0], dtype=torch.float64), rmatvec=lambda u: a.T @ u)
    >>> [round(v, 6) for v in out.x.tolist()]
    [-1.0, 1.0]
    """
    inner = cg(lambda u: rmatvec(matvec(u)), rmatvec(b), maxiter=maxiter, tol=tol)
    return _finish(matvec, b, inner.x, inner.iterations, list(inner.residuals))


def gmres(matvec: MatVec, b: torch.Tensor, *, maxiter: int = 100, tol: float = 1e-10, restart: int = 30) -> LinearSolve:
    r"""Restarted GMRES(``restart``): Arnoldi with modified Gram-Schmidt, least squares on the Hessenberg matrix.

    ``maxiter`` counts matrix-vector products (inner iterations over all restarts).

    >>> a = torch.tensor([[0.0, 1.0], [-2.0, 0.0]], dtype=torch.float64)
    >>> [round(v, 6) for v in gmres(lambda u: a @ u, torch.tensor([1.0, 2.0], dtype=torch.float64)).x.tolist()]
    [-1.0, 1.0]
    """
    shape, b_flat = b.shape, b.reshape(-1)

    def flat_matvec(u: torch.Tensor) -> torch.Tensor:
        return matvec(u.reshape(shape)).reshape(-1)

    x, k, trace = torch.zeros_like(b_flat), 0, []
    stop = tol * float(b_flat.norm())
    while k < maxiter:
        r = b_flat - flat_matvec(x)
        beta = float(r.norm())
        if beta <= stop:
            break
        m = min(restart, maxiter - k, b_flat.numel())
        basis, h = [r / beta], torch.zeros(m + 1, m, dtype=b.dtype, device=b.device)
        for j in range(m):
            w = flat_matvec(basis[j])
            for i, v in enumerate(basis):
                h[i, j] = _dot(w, v)
                w = w - h[i, j] * v
            h[j + 1, j] = w.norm()
            k += 1
            e1 = torch.zeros(j + 2, dtype=b.dtype, device=b.device)
            e1[0] = beta
            y = torch.linalg.lstsq(h[: j + 2, : j + 1], e1.unsqueeze(-1)).solution.squeeze(-1)
            trace.append(float((h[: j + 2, : j + 1] @ y - e1).norm()))
            if trace[-1] <= stop or float(h[j + 1, j]) <= 1e-14 * beta:
                break
            basis.append(w / h[j + 1, j])
        x = x + torch.stack(basis[: len(y)], dim=-1) @ y
        if trace[-1] <= stop:
            break
    return _finish(matvec, b, x.reshape(shape), k, trace)


def dense(matvec: MatVec, b: torch.Tensor, **_unused) -> LinearSolve:
    """Materialize ``A`` (n matrix-vector products) and solve it directly: exact, for small n.

    >>> a = torch.tensor([[0.0, 1.0], [-2.0, 0.0]], dtype=torch.float64)
    >>> [round(v, 6) for v in dense(lambda u: a @ u, torch.tensor([1.0, 2.0], dtype=torch.float64)).x.tolist()]
    [-1.0, 1.0]
    """
    n = b.numel()
    check_budget("unknowns for the dense solve", n, MAX_DENSE, hint="Use `solve='cg'`, 'normal_cg' or 'gmres'.")
    eye = torch.eye(n, dtype=b.dtype, device=b.device)
    columns = [matvec(e.reshape(b.shape)).reshape(-1) for e in eye]
    a = torch.stack(columns, dim=-1)  # (n, n)
    try:
        x = torch.linalg.solve(a, b.reshape(-1))
    except torch.linalg.LinAlgError:
        raise OptiscopeError(
            "The optimality Jacobian ∂F/∂w is exactly singular at the inner solution, so the implicit "
            "function theorem gives no hypergradient: add `ridge` > 0 or make the inner problem strongly convex."
        ) from None
    return _finish(matvec, b, x.reshape(b.shape), n, [])


SOLVERS: dict[str, str] = {
    "cg": "CG (symmetric positive definite ∂F/∂w)",
    "normal_cg": "CG on the normal equations (any nonsingular ∂F/∂w)",
    "gmres": "GMRES (any nonsingular ∂F/∂w)",
    "dense": "dense LU (materializes ∂F/∂w; small problems)",
}


def solve(method: str, matvec: MatVec, rmatvec: MatVec, b: torch.Tensor, *, maxiter: int, tol: float) -> LinearSolve:
    """Solve ``A x = b`` with the method named by a key of :data:`SOLVERS`."""
    if method == "cg":
        return cg(matvec, b, maxiter=maxiter, tol=tol)
    if method == "normal_cg":
        return normal_cg(matvec, b, rmatvec=rmatvec, maxiter=maxiter, tol=tol)
    if method == "gmres":
        return gmres(matvec, b, maxiter=maxiter, tol=tol)
    if method == "dense":
        return dense(matvec, b)
    raise OptiscopeError(f"Expected `solve` to be one of {', '.join(map(repr, SOLVERS))}, but got {method!r}")
