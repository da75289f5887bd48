"""Att-SVM: the max-margin problems that attention's direction converges to, solved with cvxpy (CLARABEL)."""

from __future__ import annotations

import functools
import hashlib
import threading
import warnings
from collections import OrderedDict
from dataclasses import dataclass

import cvxpy as cp
import numpy as np
import torch

from core.attention_svm.problem import Problem, check_problem
from core.errors import OptiscopeError, check_budget, check_choice, check_int

NORMS = {"fro": "Frobenius ‖W‖_F (W parameterization)", "nuc": "nuclear ‖W‖_* ((K, Q) parameterization)"}
PARAM_NORM = {"w": "fro", "kq": "nuc"}  # the SVM each parameterization's direction converges to
_TOL = {"tol_gap_abs": 1e-10, "tol_gap_rel": 1e-10, "tol_feas": 1e-10}  # default 1e-8 leaves ~1e-4 in W
# warm_start=False everywhere: cvxpy's default reuses the last CLARABEL solver, whose answers then differ from a
# fresh solve's in the last bits (~1e-10); fresh solvers make a selection's SVM the same bits every time, at no
# measurable cost (one solver is built per solve either way for these sizes).
_DPP_MAX = 20_000  # a parameter A with m·d² entries: its DPP tensor grows too large beyond this
SVM_BUDGET = 200_000  # constraint entries m·d² (m = n(T − 1)): the nuclear SDP takes ~10 s at this size on a CPU


def _host(name: str, a) -> np.ndarray:
    """`a` (a tensor on any device, an array or nested lists) as a host numpy array, or OptiscopeError."""
    try:
        return a.detach().cpu().numpy() if isinstance(a, torch.Tensor) else np.asarray(a)
    except (TypeError, ValueError, RuntimeError) as e:
        raise OptiscopeError(f"Expected `{name}` to be an array, but got {type(a).__name__}") from e


def _matrix(name: str, W, shape: tuple[int, ...] | None = None) -> np.ndarray:
    """`W` as a finite float64 host matrix (of `shape` when given)."""
    a = _host(name, W)
    if a.dtype.kind not in "biuf" or a.ndim != 2 or a.size == 0 or (shape is not None and a.shape != shape):
        raise OptiscopeError(
            f"Expected `{name}` to be a real matrix of shape {shape or '(d, d)'}, but got {a.dtype} {a.shape}"
        )
    if not np.isfinite(a).all():
        raise OptiscopeError(f"Expected `{name}` to be finite, but it holds NaN or inf")
    return a.astype(np.float64)


def _selected(problem: Problem, selected) -> np.ndarray:
    """The selection α as (n,) host ints in [0, T), after checking the problem it indexes."""
    check_problem(problem)
    raw = _host("selected", selected)
    if raw.dtype.kind not in "iuf" or raw.shape not in ((problem.n,), (1, problem.n), (problem.n, 1)):
        raise OptiscopeError(f"Expected one selected token per sequence, shape ({problem.n},), but got {raw.shape}")
    raw = raw.reshape(-1)
    valid = np.isfinite(raw)
    valid[valid] = (raw[valid] >= 0) & (raw[valid] < problem.T) & (raw[valid] % 1 == 0)
    if not valid.all():
        raise OptiscopeError(f"Expected selected tokens in [0, {problem.T - 1}], but got {raw.tolist()}")
    return raw.astype(np.int64)


def constraint_matrix(problem: Problem, selected) -> np.ndarray:
    """Rows a_it = vec((x_iα − x_it) z_iᵀ) (row-major), so a_it · vec(W) = (x_iα − x_it)ᵀ W z_i.

    Shapes:
        returns (n (T − 1), d²), sequence-major, skipping t = α_i.
    """
    sel = _selected(problem, selected)
    X, z = problem.X.cpu().numpy(), problem.z.cpu().numpy()
    n, T, d = X.shape
    diff = X[np.arange(n), sel][:, None, :] - X  # (n, T, d)
    rows = np.einsum("itd,ie->itde", diff, z).reshape(n, T, d * d)
    keep = np.ones((n, T), dtype=bool)
    keep[np.arange(n), sel] = False
    return rows[keep]


def margins(problem: Problem, W, selected) -> np.ndarray:
    """The SVM constraints' left sides (x_iα − x_it)ᵀ W z_i for t ≠ α_i, shape (n (T − 1),); feasible iff all ≥ 1."""
    W = _matrix("W", W, (problem.d, problem.d))
    return constraint_matrix(problem, selected) @ W.reshape(-1)


@dataclass(frozen=True)
class _Program:
    """A cvxpy problem canonicalized once per shape (DPP): only the data A changes between solves."""

    problem: cp.Problem
    A: cp.Parameter
    W: cp.Variable
    lock: threading.Lock  # A is mutable: one solve at a time per shape, other shapes (sessions) run alongside


def _formulate(A, d: int, norm: str) -> tuple[cp.Problem, cp.Variable]:
    W = cp.Variable((d, d))
    objective = cp.norm(W, "fro") if norm == "fro" else cp.normNuc(W)
    return cp.Problem(cp.Minimize(objective), [A @ cp.vec(W, order="C") >= 1]), W


@functools.lru_cache(maxsize=32)
def _program(m: int, d: int, norm: str) -> _Program:
    A = cp.Parameter((m, d * d))
    problem, W = _formulate(A, d, norm)
    return _Program(problem, A, W, threading.Lock())


def _solve(A: np.ndarray, d: int, norm: str) -> tuple[str, np.ndarray | None]:
    """CLARABEL's status and W for min ‖W‖ s.t. A vec(W) ≥ 1."""
    with warnings.catch_warnings():  # "may be inaccurate": checked by the caller through the margins
        warnings.simplefilter("ignore", UserWarning)
        try:
            if A.size > _DPP_MAX:  # a big instance: a one-off problem with A as a constant
                problem, W = _formulate(A, d, norm)
                problem.solve(solver="CLARABEL", warm_start=False, **_TOL)
                return problem.status, W.value
            program = _program(A.shape[0], d, norm)
            with program.lock:
                program.A.value = A
                program.problem.solve(solver="CLARABEL", warm_start=False, **_TOL)
                return program.problem.status, program.W.value
        except (cp.error.SolverError, MemoryError) as e:
            raise OptiscopeError(f"The SVM solver (CLARABEL) failed on this instance: {e}") from e


def solve_svm(problem: Problem, selected, *, norm: str = "fro") -> torch.Tensor | None:
    """Att-SVM (W^mm): https://arxiv.org/abs/2308.16898 — min ‖W‖ s.t. (x_iα − x_it)ᵀ W z_i ≥ 1 for all t ≠ α_i.

    The Frobenius program is an SOCP (W parameterization), the nuclear one an SDP ((K, Q) parameterization);
    both go to CLARABEL, pinned because cvxpy would otherwise pick a solver itself. Thread-safe; the budget is
    SVM_BUDGET constraint entries n(T − 1)·d².

    Args:
        problem (`Problem`). selected (`(n,)` ints): the token α_i to separate in each sequence.
        norm (`str`, defaults to `"fro"`): `"fro"` or `"nuc"`.

    Returns:
        the d×d float64 solution on the problem's device, or None when no W separates the selected tokens.

    Raises:
        OptiscopeError: bad arguments, work past the budget, or a solver failure.

    >>> from core.attention_svm.problem import single_input_example
    >>> W = solve_svm(single_input_example(), [0])
    >>> [round(x, 4) for x in (W[:, 0] * 1.01).tolist()]
    [-0.1, 1.0]
    """
    check_choice("norm", norm, NORMS)
    sel = _selected(problem, selected)
    check_budget("SVM constraint entries n(T − 1)·d²", problem.n * (problem.T - 1) * problem.d**2, SVM_BUDGET)
    A = constraint_matrix(problem, sel)
    status, value = _solve(A, problem.d, norm)
    if status in (cp.INFEASIBLE, cp.INFEASIBLE_INACCURATE):
        return None
    if status not in (cp.OPTIMAL, cp.OPTIMAL_INACCURATE) or value is None:
        raise OptiscopeError(f"The SVM solver (CLARABEL) failed on this instance: status {status!r}")
    low = float((A @ value.reshape(-1)).min())
    if low <= 0:
        raise OptiscopeError(f"The SVM solver (CLARABEL) returned a non-separating W (min margin {low:.3g})")
    # interior-point answers sit a hair inside the tolerance; rescale so every margin is >= 1 exactly
    return torch.as_tensor(value / min(low, 1.0), dtype=torch.float64, device=problem.X.device)


def selection_kind(problem: Problem, selected, *, solution=None) -> str:
    """`"global"`, `"local"`, `"not optimal"` or `"infeasible"` for a selection α (Att-SVM's local optimality).

    α is locally optimal when its Frobenius SVM is feasible and every support token τ (margin ≈ 1) scores
    below the selected one, γ_iτ < γ_iα; it is global when α_i = argmax_t γ_it for all i (and feasible).
    `solution` is α's Frobenius SVM when already solved.

    >>> from core.attention_svm.problem import single_input_example
    >>> [selection_kind(single_input_example(third_score=0.0), [t]) for t in range(3)]
    ['global', 'local', 'not optimal']
    """
    sel = _selected(problem, selected)
    W = solve_svm(problem, sel) if solution is None else _matrix("solution", solution, (problem.d, problem.d))
    if W is None:
        return "infeasible"
    if np.array_equal(sel, problem.optimal.cpu().numpy()):
        return "global"
    gamma = problem.scores.cpu().numpy()
    n, T = gamma.shape
    others = np.ones((n, T), dtype=bool)
    others[np.arange(n), sel] = False
    tokens = np.nonzero(others)  # (i, t) pairs in constraint order
    support = np.abs(margins(problem, W, sel) - 1.0) < 1e-4
    better = gamma[tokens] >= gamma[np.arange(n), sel][tokens[0]]
    return "not optimal" if (support & better).any() else "local"


@dataclass(frozen=True)
class Solutions:
    """Both SVMs of one selection (host arrays, None when infeasible) and the selection's kind."""

    fro: np.ndarray | None
    nuc: np.ndarray | None
    kind: str

    def own(self, param: str) -> np.ndarray | None:
        """The SVM that the parameterization `param` ("w" or "kq") converges to."""
        return self.fro if PARAM_NORM[param] == "fro" else self.nuc


def solve_both(problem: Problem, selected) -> Solutions:
    """The Frobenius and nuclear SVMs of a selection, and its kind (see `selection_kind`)."""
    sel = _selected(problem, selected)
    fro = solve_svm(problem, sel, norm="fro")
    if fro is None:
        return Solutions(None, None, "infeasible")
    nuc = solve_svm(problem, sel, norm="nuc")
    kind = selection_kind(problem, sel, solution=fro)
    return Solutions(fro.cpu().numpy(), None if nuc is None else nuc.cpu().numpy(), kind)


class SVMCache:
    """Memoised `solve_both` for many problems and sessions at once: thread-safe and bounded.

    Keyed on the problem's data and the selection. Solves run outside the lock, so sessions do not wait for
    each other; the first answer stored for a key is the one every caller gets.

    >>> from core.attention_svm.problem import single_input_example
    >>> cache = SVMCache()
    >>> cache.solve(single_input_example(), [1]).kind, len(cache)
    ('local', 1)
    """

    def __init__(self, maxsize: int = 512) -> None:
        self.maxsize = check_int("maxsize", maxsize, 1)
        self._items: OrderedDict[tuple, Solutions] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._items)

    def solve(self, problem: Problem, selected) -> Solutions:
        """`solve_both(problem, selected)`, solved once per (problem, selection)."""
        sel = tuple(_selected(problem, selected).tolist())
        key = (_fingerprint(problem), sel)
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        solutions = solve_both(problem, key[1])
        with self._lock:
            solutions = self._items.setdefault(key, solutions)
            while len(self._items) > self.maxsize:
                self._items.popitem(last=False)
        return solutions


def _fingerprint(problem: Problem) -> bytes:
    digest = hashlib.blake2b(digest_size=16)
    for t in (problem.X, problem.z, problem.y, problem.values):
        digest.update(str(tuple(t.shape)).encode())
        digest.update(t.detach().cpu().numpy().tobytes())
    return digest.digest()


def correlation(A, B) -> float:
    """⟨A, B⟩ / (‖A‖_F ‖B‖_F), the paper's measure of direction; 0.0 when either is zero.

    >>> correlation(torch.eye(2), 3 * torch.eye(2))
    1.0
    """
    a, b = _matrix("A", A), _matrix("B", B)
    if a.shape != b.shape:
        raise OptiscopeError(f"Expected matrices of one shape, but got {a.shape} and {b.shape}")
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    if na == 0 or nb == 0:
        return 0.0
    return float(round(float((a * b).sum() / (na * nb)), 15))


def normalized_margin(problem: Problem, W, selected) -> float:
    """min_(i, t≠α_i) (x_iα − x_it)ᵀ W z_i / ‖W‖_F; GD's tends to the SVM's 1/‖W^mm‖_F."""
    W = _matrix("W", W, (problem.d, problem.d))
    nrm = float(np.linalg.norm(W))
    return float(margins(problem, W, selected).min() / nrm) if nrm > 0 else 0.0


def spectrum(W) -> np.ndarray:
    """Singular values σ_j / σ_max of W, largest first (zeros for W = 0).

    >>> spectrum(np.diag([2.0, 1.0])).tolist()
    [1.0, 0.5]
    """
    s = np.linalg.svd(_matrix("W", W), compute_uv=False)
    return s / s[0] if s[0] > 0 else s


def rank(W, *, rtol: float = 1e-4) -> int:
    """Numerical rank: singular values above rtol·σ_max (interior-point solutions are never exactly low-rank)."""
    s = spectrum(W)
    return int((s > rtol).sum()) if s[0] > 0 else 0
