r"""Efficient and Modular Implicit Differentiation (custom_root): https://arxiv.org/abs/2105.15183

The user writes an optimality mapping ``F(w, θ, *args)`` whose root is the inner solution ``w*(θ)``.
By the implicit function theorem ``∂₁F · ∂w*/∂θ = −∂₂F``, so a cotangent ``v`` of ``w*`` pulls back to
``θ`` as ``∂₂Fᵀ u`` where ``∂₁Fᵀ u = −v``: one linear solve of vector-Jacobian products, whatever
solver found ``w*`` (it is never differentiated). Unrolling, for comparison, backpropagates through
every iteration of the solver and stores all of them.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

import torch

from core.bilevel.checks import check_tensor
from core.bilevel.linear_solve import SOLVERS, LinearSolve, solve
from core.errors import OptiscopeError, check_choice, check_int, check_positive

Optimality = Callable[..., torch.Tensor]
MAX_UNROLLED = 100_000  # iterations recorded by autograd (each keeps its iterate)


@dataclass(frozen=True)
class RootSpec:
    """How the implicit system is solved: the method, its iterations and tolerance, a ridge, the checks."""

    SOLVERS: ClassVar[dict[str, str]] = SOLVERS  # the keys of `solve`, with labels
    solve: str = "normal_cg"  # a key of SOLVERS; "cg" needs a symmetric positive definite ∂F/∂w
    maxiter: int = 200
    tol: float = 1e-10
    ridge: float = 0.0  # solves (∂₁Fᵀ + ridge·I) u = −v: regularizes a singular Jacobian
    residual_tol: float = 1e-4  # a linear solve left above this relative residual is refused
    root_tol: float | None = None  # refuse inner solutions with ‖F(w, θ)‖ / (1 + ‖w‖) above this; None = finite only

    def __post_init__(self) -> None:
        check_choice("solve", self.solve, tuple(SOLVERS))
        check_int("maxiter", self.maxiter)
        check_positive("tol", self.tol)
        check_positive("ridge", self.ridge, strict=False)
        check_positive("residual_tol", self.residual_tol)
        if self.root_tol is not None:
            check_positive("root_tol", self.root_tol)


def root_vjp(
    optimality_fn: Optimality, w: torch.Tensor, theta: torch.Tensor, v: torch.Tensor, *args, spec: RootSpec = RootSpec()
) -> tuple[torch.Tensor, LinearSolve]:
    r"""The hypergradient ``vᵀ ∂w*/∂θ`` at a root ``w`` of ``F(·, θ)``, and the linear solve's record.

    Raises :class:`OptiscopeError` when the system ``∂₁Fᵀ u = −v`` cannot be solved (a singular or
    ill-conditioned optimality Jacobian), instead of returning a silently wrong gradient.

    Shapes:
        w: (*W), theta: (*Θ), v: (*W) -> gradient: (*Θ)

    >>> f = lambda w, theta: w - theta**2  # w*(θ) = θ², so dw*/dθ = 2θ
    >>> grad, _ = root_vjp(f, torch.tensor([4.0]), torch.tensor([2.0]), torch.tensor([1.0]))
    >>> grad
    tensor([4.])
    """
    with torch.enable_grad():
        w, theta = w.detach().requires_grad_(True), theta.detach().requires_grad_(True)
        residual = optimality_fn(w, theta, *args)  # one graph, reused by every product below
        if not residual.requires_grad:
            raise OptiscopeError("The optimality function F(w, θ) depends on neither w nor θ: ∂F/∂w = 0 is singular.")
        # ∂₁Fᵀ z is linear in z; differentiating it in z gives the transpose products ∂₁F u (one backward each)
        z = torch.zeros_like(residual, requires_grad=True)
        (pullback,) = _pull(residual, w, z, create_graph=True)

        def matvec(u: torch.Tensor) -> torch.Tensor:  # (∂₁Fᵀ + ridge I) u
            return _pull(residual, w, u)[0] + spec.ridge * u

        def rmatvec(u: torch.Tensor) -> torch.Tensor:  # (∂₁F + ridge I) u
            product = _pull(pullback, z, u)[0] if pullback.requires_grad else torch.zeros_like(u)
            return product + spec.ridge * u

        result = solve(spec.solve, matvec, rmatvec, -v.detach(), maxiter=spec.maxiter, tol=spec.tol)
        _check_solve(result, spec)
        return _pull(residual, theta, result.x)[0].detach(), result


def _pull(output: torch.Tensor, inputs: torch.Tensor, cotangent: torch.Tensor, *, create_graph: bool = False):
    """``(∂output/∂inputs)ᵀ cotangent``, zero where ``output`` does not depend on ``inputs``."""
    return torch.autograd.grad(
        output,
        inputs,
        cotangent,
        retain_graph=True,
        create_graph=create_graph,
        allow_unused=True,
        materialize_grads=True,
    )


def _check_solve(result: LinearSolve, spec: RootSpec) -> None:
    if math.isfinite(result.residual) and result.residual <= spec.residual_tol:
        return
    raise OptiscopeError(
        f"The implicit linear system ∂F/∂wᵀ u = −v was not solved: relative residual {result.residual:.3g} after "
        f"{result.iterations} iterations of `solve={spec.solve!r}` (allowed: {spec.residual_tol:g}). The optimality "
        "Jacobian ∂F/∂w is singular or ill-conditioned at the inner solution: add `ridge` > 0, make the inner "
        "problem strongly convex (e.g. an L2 term), use `solve='normal_cg'` or 'gmres' for a non-symmetric "
        "Jacobian, or raise `maxiter`."
    )


def check_root(optimality_fn: Optimality, w: torch.Tensor, theta: torch.Tensor, *args, root_tol: float | None) -> float:
    """``‖F(w, θ)‖ / (1 + ‖w‖)``, refused when non-finite (a diverged inner solver) or above ``root_tol``."""
    with torch.no_grad():
        residual = float(optimality_fn(w, theta, *args).norm() / (1.0 + w.norm()))
    if not math.isfinite(residual) or not bool(torch.isfinite(w).all()):
        raise OptiscopeError(
            "The inner solver diverged: its solution w (or F(w, θ)) is not finite. Lower the inner step size "
            "`lr` or make the inner problem better conditioned (a larger regularization)."
        )
    if root_tol is not None and residual > root_tol:
        raise OptiscopeError(
            f"The inner solver did not converge: ‖F(w, θ)‖ / (1 + ‖w‖) = {residual:.3g} > `root_tol` = {root_tol:g}. "
            "Raise its iterations (`steps`), raise its step size if it is stable, or raise `root_tol` to accept "
            "an inexact solution (the hypergradient error is then O(‖w − w*‖))."
        )
    return residual


class _ImplicitRoot(torch.autograd.Function):
    """``w*(θ)`` computed by a black-box solver forward, differentiated by the implicit function theorem backward."""

    @staticmethod
    def forward(ctx, theta, init, solver, optimality_fn, spec, args):
        with torch.no_grad():
            w = solver(init, theta.detach(), *args).detach()
        check_root(optimality_fn, w, theta.detach(), *args, root_tol=spec.root_tol)
        ctx.save_for_backward(w, theta)
        ctx.optimality_fn, ctx.spec, ctx.args = optimality_fn, spec, args
        return w

    @staticmethod
    def backward(ctx, v):
        w, theta = ctx.saved_tensors
        grad, _ = root_vjp(ctx.optimality_fn, w, theta, v, *ctx.args, spec=ctx.spec)
        return grad, None, None, None, None, None


def custom_root(optimality_fn: Optimality, *, spec: RootSpec = RootSpec()) -> Callable[[Callable], Callable]:
    r"""Efficient and Modular Implicit Differentiation (custom_root): https://arxiv.org/abs/2105.15183

    Decorates ``solver(init, theta, *args) -> w`` so that its output is differentiable in ``theta``
    (a ``torch.autograd.Function``) through the root condition ``optimality_fn(w, theta, *args) = 0``.
    ``args`` are data, not differentiated. The solver runs without autograd: no iterate is stored.

    Args:
        optimality_fn (`Callable`): ``F(w, theta, *args)``, a function differentiable by autograd, shaped like ``w``,
            e.g. the inner gradient ``∇_w f(w, θ)``.
        spec (`RootSpec`, defaults to `RootSpec()`): linear solver (``SOLVERS`` key), iterations, tolerances,
            ridge, and the convergence check of the inner solution.

    Shapes:
        init: (*W), theta: (*Θ) -> w: (*W)

    >>> def solver(init, theta):  # Newton on w² = θ, a black box to autograd
    ...     w = init
    ...     for _ in range(30):
    ...         w = 0.5 * (w + theta / w)
    ...     return w
    >>> sqrt = custom_root(lambda w, theta: w**2 - theta)(solver)
    >>> theta = torch.tensor([4.0], dtype=torch.float64, requires_grad=True)
    >>> sqrt(torch.ones(1, dtype=torch.float64), theta).backward()
    >>> theta.grad  # d√θ/dθ = 1 / (2√θ)
    tensor([0.2500], dtype=torch.float64)
    """
    if not isinstance(spec, RootSpec):
        raise OptiscopeError(f"Expected `spec` to be a RootSpec, but got {type(spec).__name__}")

    def decorate(solver: Callable) -> Callable:
        @functools.wraps(solver)
        def solve_and_differentiate(init: torch.Tensor, theta: torch.Tensor, *args) -> torch.Tensor:
            return _ImplicitRoot.apply(theta, init, solver, optimality_fn, spec, args)

        return solve_and_differentiate

    return decorate


def unrolled(
    step: Callable[..., torch.Tensor], init: torch.Tensor, theta: torch.Tensor, *args, steps: int
) -> torch.Tensor:
    """Unrolled differentiation: ``steps`` iterations ``w ← step(w, θ, *args)`` recorded by autograd.

    Backpropagating through the result differentiates the truncated solver itself; memory grows
    linearly with ``steps`` (every iterate is stored), unlike :func:`custom_root`.

    >>> theta = torch.tensor(2.0, requires_grad=True)
    >>> w = unrolled(lambda w, t: 0.5 * w + t, torch.tensor(0.0), theta, steps=50)  # fixed point w* = 2θ
    >>> w.backward(); round(float(theta.grad), 6)
    2.0
    """
    check_int("steps", steps, low=0, high=MAX_UNROLLED)
    w = check_tensor("init", init)
    for _ in range(steps):
        w = step(w, theta, *args)
    if not bool(torch.isfinite(w).all()):
        raise OptiscopeError(f"The unrolled iterations diverged (non-finite after {steps} steps): lower the step size.")
    return w
