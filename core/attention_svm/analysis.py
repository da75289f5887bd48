"""A recorded GD trajectory compared with the Att-SVM solutions: curves, token-plane geometry, spectra."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from core.attention_svm.problem import Problem, check_problem
from core.attention_svm.svm import SVMCache, constraint_matrix, rank, solve_both
from core.attention_svm.train import TrainState
from core.errors import OptiscopeError, check_budget, check_int, check_positive

RECORD_BUDGET = 25_000_000  # float64 values a Run holds, (steps + 1)·(d² + n·T): 200 MB


@dataclass(frozen=True)
class Run:
    """A whole trajectory of `run`, with the SVM solutions for the tokens GD selected at the end.

    Host (numpy) arrays, for plotting. Shapes (K = steps + 1):
        W: (K, d, d); probs: (K, n, T); loss, grad_norm, norm: (K,); selected, optimal: (n,);
        corr_fro, corr_nuc, margin: (K,) (None when the SVM is infeasible); svm_fro, svm_nuc: (d, d) or None;
        kind: "global" | "local" | "not optimal" | "infeasible"; global_feasible: whether any W separates the
        globally optimal tokens.
    """

    param: str
    W: np.ndarray
    probs: np.ndarray
    loss: np.ndarray
    grad_norm: np.ndarray
    norm: np.ndarray
    selected: np.ndarray
    optimal: np.ndarray
    svm_fro: np.ndarray | None
    svm_nuc: np.ndarray | None
    corr_fro: np.ndarray | None
    corr_nuc: np.ndarray | None
    margin: np.ndarray | None
    kind: str
    global_feasible: bool

    @property
    def corr_own(self) -> np.ndarray | None:
        """Correlation with the SVM of this parameterization (Frobenius for "w", nuclear for "kq")."""
        return self.corr_fro if self.param == "w" else self.corr_nuc

    @property
    def corr_other(self) -> np.ndarray | None:
        """Correlation with the other parameterization's SVM (the mismatched bias)."""
        return self.corr_nuc if self.param == "w" else self.corr_fro

    @property
    def svm_own(self) -> np.ndarray | None:
        return self.svm_fro if self.param == "w" else self.svm_nuc

    @property
    def saturation(self) -> float:
        """min_i max_t s_it at the end: 1 when every sequence's softmax is one-hot."""
        return float(self.probs[-1].max(-1).min())

    @property
    def svm_margin(self) -> float | None:
        """1/‖W^mm‖_F, the normalized margin GD's tends to (None when infeasible)."""
        return None if self.svm_fro is None else float(1 / np.linalg.norm(self.svm_fro))

    @property
    def n_global(self) -> int:
        """How many sequences GD ends on their globally optimal token."""
        return int((self.selected == self.optimal).sum())

    @property
    def ranks(self) -> dict[str, int | None]:
        """Numerical ranks of both SVM solutions (rtol 1e-4)."""
        return {norm: None if S is None else rank(S) for norm, S in (("fro", self.svm_fro), ("nuc", self.svm_nuc))}

    def frame_steps(self, count: int = 60) -> list[int]:
        """About `count` steps for a replay, spaced geometrically (GD moves fastest early), first and last included."""
        last = len(self.norm) - 1
        inner = np.geomspace(1, last, count).astype(int).tolist() if last > 1 else []
        return sorted({0, last, *inner})


def _check_array(name: str, a, shape: tuple[int, ...], kinds: str) -> np.ndarray:
    """`a` if it is a finite numpy array of `shape` whose dtype kind is one of `kinds`."""
    ok = isinstance(a, np.ndarray) and a.shape == shape and a.dtype.kind in kinds and bool(np.isfinite(a).all())
    if not ok:
        got = f"{a.dtype} {a.shape}" if isinstance(a, np.ndarray) else type(a).__name__
        raise OptiscopeError(f"Expected `{name}` to be a finite array of shape {shape}, but got {got}")
    return a


def _check_run_of(run: Run, problem: Problem) -> None:
    """`run` is a `Run` of `problem`, in the fields the token plane draws (a `Run` is a plain record)."""
    if not isinstance(run, Run) or not isinstance(run.W, np.ndarray) or run.W.ndim != 3:
        raise OptiscopeError(
            f"Expected `run` to be the `Run` of `analyze` on this problem, but got {type(run).__name__}"
        )
    d, n, T = problem.d, problem.n, problem.T
    _check_array("W", run.W, (len(run.W), d, d), "f")
    if run.svm_fro is not None:
        _check_array("svm_fro", run.svm_fro, (d, d), "f")
    for name in ("selected", "optimal"):
        tokens = _check_array(name, getattr(run, name), (n,), "iu")
        if ((tokens < 0) | (tokens >= T)).any():
            raise OptiscopeError(f"Expected `{name}` tokens in [0, {T - 1}], but got {tokens.tolist()}")


def _is_state_of(state, d: int, n: int, T: int) -> bool:
    """Whether `state` is an unbatched float64 `TrainState` of a problem of this shape."""
    shapes = {"W": (d, d), "probs": (n, T), "loss": (), "grad_norm": ()}
    tensors = [getattr(state, name, None) for name in shapes]
    return isinstance(state, TrainState) and all(
        isinstance(t, torch.Tensor) and t.dtype == torch.float64 and tuple(t.shape) == shape
        for t, shape in zip(tensors, shapes.values(), strict=True)
    )


def _corr_curve(Ws: np.ndarray, S: np.ndarray | None) -> np.ndarray | None:
    if S is None:
        return None
    flat = Ws.reshape(len(Ws), -1)
    nrm = np.linalg.norm(flat, axis=1)
    return flat @ S.reshape(-1) / np.where(nrm > 0, nrm, 1.0) / np.linalg.norm(S)


def _record(problem: Problem, states: Iterable[TrainState]) -> list[TrainState]:
    """The states, each checked against the problem, refused past RECORD_BUDGET before it is held."""
    d, n, T = problem.d, problem.n, problem.T
    if not isinstance(states, Iterable):
        raise OptiscopeError(f"Expected `states` to be the iterator of `run`, but got {type(states).__name__}")
    kept = []
    for state in states:
        if not _is_state_of(state, d, n, T):
            raise OptiscopeError(f"Expected the states of `run` on this one problem (W ({d}, {d})), but got {state!r}")
        kept.append(state)
        check_budget("float64 values held (steps + 1)·(d² + n·T)", len(kept) * (d * d + n * T), RECORD_BUDGET)
    if not kept:
        raise OptiscopeError("Expected at least one state, but `states` was empty")
    return kept


def analyze(problem: Problem, states: Iterable[TrainState], *, cache: SVMCache | None = None) -> Run:
    """Transformers as SVMs (Att-SVM): https://arxiv.org/abs/2308.16898 — a trajectory against W^mm.

    The SVMs are solved for argmax of the final softmax (the tokens GD picked, as the convergence notebooks
    do). `cache` (an `SVMCache`, shareable between threads) skips re-solving a selection seen before.

    Args:
        problem (`Problem`): the problem `states` were trained on.
        states (iterable of `TrainState`): e.g. ``run(problem, ...)``, unbatched.
        cache (`SVMCache`, optional).

    >>> from core.attention_svm.problem import make_problem
    >>> from core.attention_svm.train import run
    >>> p = make_problem(n=3, T=4, d=3, seed=0)
    >>> r = analyze(p, run(p, steps=50))
    >>> r.W.shape, r.kind in ("global", "local", "not optimal", "infeasible")
    ((51, 3, 3), True)
    """
    kept = _record(check_problem(problem), states)
    Ws = torch.stack([s.W for s in kept]).cpu().numpy()
    probs = torch.stack([s.probs for s in kept]).cpu().numpy()
    loss, grad_norm = (torch.stack([getattr(s, name) for s in kept]).cpu().numpy() for name in ("loss", "grad_norm"))
    for name, values in (("W", Ws), ("probs", probs), ("loss", loss), ("grad_norm", grad_norm)):
        _check_array(name, values, values.shape, "f")  # before any solve: NaN states are refused, not analyzed
    selected, optimal = probs[-1].argmax(-1), problem.optimal.cpu().numpy()
    solve = cache.solve if cache is not None else solve_both
    svm = solve(problem, selected)
    global_svm = svm if np.array_equal(selected, optimal) else solve(problem, optimal)
    norm = np.linalg.norm(Ws.reshape(len(Ws), -1), axis=1)
    return Run(
        param="w" if kept[0].K is None else "kq",
        W=Ws,
        probs=probs,
        loss=loss,
        grad_norm=grad_norm,
        norm=norm,
        selected=selected,
        optimal=optimal,
        svm_fro=svm.fro,
        svm_nuc=svm.nuc,
        corr_fro=_corr_curve(Ws, svm.fro),
        corr_nuc=_corr_curve(Ws, svm.nuc),
        margin=None if svm.fro is None else _margin_curve(problem, Ws, selected),
        kind=svm.kind,
        global_feasible=global_svm.fro is not None,
    )


def _margin_curve(problem: Problem, Ws: np.ndarray, selected: np.ndarray) -> np.ndarray:
    """min_(i, t≠α_i) (x_iα − x_it)ᵀ W(k) z_i / ‖W(k)‖_F along the path."""
    A = constraint_matrix(problem, selected)
    flat = Ws.reshape(len(Ws), -1)
    nrm = np.linalg.norm(flat, axis=1)
    return (flat @ A.T).min(1) / np.where(nrm > 0, nrm, 1.0)


def log10_gap(corr: np.ndarray | None) -> np.ndarray | None:
    """log10(1 − corr), floored at 1e-16 (float64 cannot resolve corr closer to 1); None stays None.

    >>> log10_gap(np.array([0.9, 1.0])).round(6).tolist()
    [-1.0, -16.0]
    """
    if corr is None:
        return None
    corr = np.asarray(corr, dtype=np.float64)
    if not np.isfinite(corr).all():
        raise OptiscopeError("Expected a finite `corr`, but it holds NaN or inf")
    return np.log10(np.clip(1 - corr, 1e-16, None))


@dataclass(frozen=True)
class Plane:
    """What the d = 2 token plane of one sequence i draws.

    Shapes (F frames): tokens: (T, 2); scores: (T,) γ_it; rays: (F, 2) unit directions of W(k) z_i
    (zero where W(k) z_i = 0); svm_ray: (2,) unit direction of W^mm z_i; boundary, margin_line: (2, 2)
    segment end points of x ᵀp = x_αᵀp and x ᵀp = x_αᵀp − 1 with p = W^mm z_i (None when infeasible).
    """

    tokens: np.ndarray
    scores: np.ndarray
    optimal: int
    selected: int
    rays: np.ndarray
    svm_ray: np.ndarray | None
    boundary: np.ndarray | None
    margin_line: np.ndarray | None


def plane_geometry(
    problem: Problem, run: Run, *, sequence: int = 0, frames: Sequence[int] = (-1,), extent: float = 3.0
) -> Plane:
    """The token plane of sequence `sequence` (d = 2): tokens, W(k) z_i at `frames`, the SVM ray and margin lines.

    Args:
        problem (`Problem`): with d = 2. run (`Run`): from `analyze` on it.
        sequence (`int`, defaults to `0`): i. frames (steps, defaults to the last): where to take W(k) z_i.
        extent (`float`, defaults to `3.0`): half-length of the drawn line segments.

    >>> from core.attention_svm.problem import single_input_example
    >>> from core.attention_svm.train import run as train
    >>> p = single_input_example()
    >>> plane = plane_geometry(p, analyze(p, train(p, steps=200)))
    >>> plane.selected, plane.svm_ray.round(4).tolist()
    (0, [-0.0995, 0.995])
    """
    if check_problem(problem).d != 2:
        raise OptiscopeError(f"Expected a problem with d = 2 for the token plane, but got d = {problem.d}")
    _check_run_of(run, problem)
    i = check_int("sequence", sequence, 0, problem.n - 1)
    frames = [check_int("frames", k, -len(run.W), len(run.W) - 1) for k in frames]
    extent = check_positive("extent", extent)
    X, z = problem.X[i].cpu().numpy(), problem.z[i].cpu().numpy()
    a = int(run.selected[i])
    rays = run.W[frames] @ z  # (F, 2)
    length = np.linalg.norm(rays, axis=1, keepdims=True)
    plane = {"tokens": X, "scores": problem.scores[i].cpu().numpy(), "optimal": int(run.optimal[i]), "selected": a}
    plane["rays"] = rays / np.where(length > 0, length, 1.0)
    if run.svm_fro is None:
        return Plane(**plane, svm_ray=None, boundary=None, margin_line=None)
    p = run.svm_fro @ z
    u = p / np.linalg.norm(p)
    along = extent * np.array([[u[1], -u[0]], [-u[1], u[0]]])  # ± extent along the line's direction
    foot = u * (X[a] @ p) / np.linalg.norm(p)  # the point of {x: xᵀp = x_αᵀp} closest to 0
    return Plane(**plane, svm_ray=u, boundary=foot + along, margin_line=foot - u / np.linalg.norm(p) + along)
