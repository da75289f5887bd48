"""Att-SVM: the max-margin problems that attention's direction converges to, solved with cvxpy (CLARABEL)."""

from __future__ import annotations

import threading
import warnings

import cvxpy as cp
import numpy as np
import torch

from .problem import Problem

NORMS = {"fro": "Frobenius ‖W‖_F (W parameterization)", "nuc": "nuclear ‖W‖_* ((K, Q) parameterization)"}
_CACHE: dict[tuple[int, int, str], tuple[cp.Problem, cp.Parameter, cp.Variable]] = {}
_TOL = {"tol_gap_abs": 1e-10, "tol_gap_rel": 1e-10, "tol_feas": 1e-10}  # default 1e-8 leaves ~1e-4 in W
_LOCK = threading.Lock()  # cached cvxpy problems hold mutable parameters: one solve at a time


def optimal_tokens(problem: Problem) -> torch.Tensor:
    """Globally optimal tokens, opt_i = argmax_t γ_it with γ_it = y_i vᵀx_it (`best_ids` in the authors' code).

    Shapes:
        returns (n,) token indices.

    >>> from core.attention_svm.problem import single_input_example
    >>> optimal_tokens(single_input_example()).tolist()
    [0]
    """
    return problem.scores.argmax(-1)


def _selected(problem: Problem, selected) -> np.ndarray:
    sel = np.asarray(torch.as_tensor(selected).cpu(), dtype=np.int64).reshape(-1)
    if sel.shape != (problem.n,):
        raise ValueError(f"Expected one selected token per sequence, shape ({problem.n},), but got {sel.shape}")
    if (sel < 0).any() or (sel >= problem.T).any():
        raise ValueError(f"Expected selected tokens in [0, {problem.T - 1}], but got {sel.tolist()}")
    return sel


def constraint_matrix(problem: Problem, selected) -> np.ndarray:
    """Rows a_it = vec((x_iα − x_it) z_iᵀ) (row-major), so a_it · vec(W) = (x_iα − x_it)ᵀ W z_i.

    Shapes:
        returns (n (T − 1), d²), sequence-major, skipping t = α_i.
    """
    sel = _selected(problem, selected)
    X, z = problem.X.numpy(), problem.z.numpy()
    n, T, d = X.shape
    diff = X[np.arange(n), sel][:, None, :] - X  # (n, T, d)
    rows = np.einsum("itd,ie->itde", diff, z).reshape(n, T, d * d)
    keep = np.ones((n, T), dtype=bool)
    keep[np.arange(n), sel] = False
    return rows[keep]


def margins(problem: Problem, W, selected) -> np.ndarray:
    """The SVM constraints' left sides (x_iα − x_it)ᵀ W z_i for t ≠ α_i, shape (n (T − 1),); feasible iff all ≥ 1."""
    W = np.asarray(torch.as_tensor(W, dtype=torch.float64).cpu())
    return constraint_matrix(problem, selected) @ W.reshape(-1)


_DPP_MAX = 20_000  # a parameter A with m·d² entries: its DPP tensor grows too large beyond this


def _program(m: int, d: int, norm: str, A: np.ndarray):
    if m * d * d > _DPP_MAX:  # big instance: a one-off problem with A as a constant
        W = cp.Variable((d, d))
        objective = cp.norm(W, "fro") if norm == "fro" else cp.normNuc(W)
        return cp.Problem(cp.Minimize(objective), [A @ cp.vec(W, order="C") >= 1]), None, W
    key = (m, d, norm)
    if key not in _CACHE:  # DPP: canonicalized once per shape, then only the data A changes
        A = cp.Parameter((m, d * d))
        W = cp.Variable((d, d))
        objective = cp.norm(W, "fro") if norm == "fro" else cp.normNuc(W)
        _CACHE[key] = (cp.Problem(cp.Minimize(objective), [A @ cp.vec(W, order="C") >= 1]), A, W)
    return _CACHE[key]


def solve_svm(problem: Problem, selected, norm: str = "fro") -> torch.Tensor | None:
    """Att-SVM (W^mm): https://arxiv.org/abs/2308.16898 — min ‖W‖ s.t. (x_iα − x_it)ᵀ W z_i ≥ 1 for all t ≠ α_i.

    The Frobenius program is an SOCP (W parameterization), the nuclear one an SDP ((K, Q) parameterization);
    both go to CLARABEL, pinned because cvxpy would otherwise pick a solver itself.

    Args:
        problem (`Problem`). selected (`(n,)` ints): the token α_i to separate in each sequence.
        norm (`str`, defaults to `"fro"`): `"fro"` or `"nuc"`.

    Returns:
        the d×d float64 solution, or None when no W separates the selected tokens (infeasible).

    Raises:
        ValueError: bad arguments or a solver failure.

    >>> from core.attention_svm.problem import single_input_example
    >>> W = solve_svm(single_input_example(), [0])
    >>> [round(x, 4) for x in (W[:, 0] * 1.01).tolist()]
    [-0.1, 1.0]
    """
    if norm not in NORMS:
        raise ValueError(f"Expected `norm` in {sorted(NORMS)}, but got {norm!r}")
    A = constraint_matrix(problem, selected)
    d = problem.d
    with _LOCK:
        prob, param, W = _program(A.shape[0], d, norm, A)
        if param is not None:
            param.value = A
        try:
            with warnings.catch_warnings():  # "may be inaccurate": checked below through the margins instead
                warnings.simplefilter("ignore", UserWarning)
                prob.solve(solver="CLARABEL", **_TOL)
        except (cp.error.SolverError, MemoryError) as e:
            raise ValueError(f"The SVM solver (CLARABEL) failed on this instance: {e}") from e
        status, value = prob.status, W.value
    if status in (cp.INFEASIBLE, cp.INFEASIBLE_INACCURATE):
        return None
    if status not in (cp.OPTIMAL, cp.OPTIMAL_INACCURATE) or value is None:
        raise ValueError(f"The SVM solver (CLARABEL) failed on this instance: status {status!r}")
    low = float((A @ value.reshape(-1)).min())
    if low <= 0:
        raise ValueError(f"The SVM solver (CLARABEL) returned a non-separating W (min margin {low:.3g})")
    # interior-point answers sit a hair inside the tolerance; rescale so every margin is >= 1 exactly
    return torch.as_tensor(value / min(low, 1.0), dtype=torch.float64)


def selection_kind(problem: Problem, selected, solution=None) -> str:
    """`"global"`, `"local"`, `"not optimal"` or `"infeasible"` for a selection α (Att-SVM's local optimality).

    α is locally optimal when its Frobenius SVM is feasible and every support token τ (margin ≈ 1) scores
    below the selected one, γ_iτ < γ_iα; it is global when α_i = argmax_t γ_it for all i (and feasible).

    >>> from core.attention_svm.problem import single_input_example
    >>> [selection_kind(single_input_example(0.0), [t]) for t in range(3)]
    ['global', 'local', 'not optimal']
    """
    sel = _selected(problem, selected)
    W = solve_svm(problem, sel, "fro") if solution is None else torch.as_tensor(solution, dtype=torch.float64)
    if W is None:
        return "infeasible"
    if np.array_equal(sel, optimal_tokens(problem).numpy()):
        return "global"
    gamma = problem.scores.numpy()
    n, T = gamma.shape
    others = np.ones((n, T), dtype=bool)
    others[np.arange(n), sel] = False
    tokens = np.nonzero(others)  # (i, t) pairs in constraint order
    support = np.abs(margins(problem, W, sel) - 1.0) < 1e-4
    better = gamma[tokens] >= gamma[np.arange(n), sel][tokens[0]]
    return "not optimal" if (support & better).any() else "local"


def is_locally_optimal(problem: Problem, selected) -> bool:
    """True when α is a locally optimal selection (global ones included), see `selection_kind`."""
    return selection_kind(problem, selected) in ("global", "local")


def correlation(A, B) -> float:
    """⟨A, B⟩ / (‖A‖_F ‖B‖_F), the paper's measure of direction; 0.0 when either is zero.

    >>> correlation(torch.eye(2), 3 * torch.eye(2))
    1.0
    """
    a = torch.as_tensor(A, dtype=torch.float64).reshape(-1)
    b = torch.as_tensor(B, dtype=torch.float64).reshape(-1)
    if a.shape != b.shape:
        raise ValueError(f"Expected matrices of one shape, but got {tuple(torch.as_tensor(A).shape)} and "
                         f"{tuple(torch.as_tensor(B).shape)}")
    na, nb = a.norm(), b.norm()
    if na == 0 or nb == 0:
        return 0.0
    return float(round(float(a @ b / (na * nb)), 15))


def normalized_margin(problem: Problem, W, selected) -> float:
    """min_(i, t≠α_i) (x_iα − x_it)ᵀ W z_i / ‖W‖_F; GD's tends to the SVM's 1/‖W^mm‖_F."""
    W = torch.as_tensor(W, dtype=torch.float64)
    nrm = float(W.norm())
    return float(margins(problem, W, selected).min() / nrm) if nrm > 0 else 0.0


def rank(W, rtol: float = 1e-4) -> int:
    """Numerical rank: singular values above rtol·σ_max (interior-point solutions are never exactly low-rank)."""
    s = torch.linalg.svdvals(torch.as_tensor(W, dtype=torch.float64))
    return int((s > rtol * s.max()).sum()) if s.max() > 0 else 0
