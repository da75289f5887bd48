"""Curves that compare a GD trajectory with the Att-SVM solutions, vectorised over steps."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .problem import Problem
from .svm import constraint_matrix, selection_kind, solve_svm
from .train import train


@dataclass(frozen=True)
class Run:
    """A whole trajectory of `train`, with the SVM solutions for the tokens GD selected at the end.

    Shapes (K = steps + 1):
        W: (K, d, d); probs: (K, n, T); loss, grad_norm, norm: (K,); selected: (n,);
        corr_fro, corr_nuc, margin: (K,) (NaN-free; None when the SVM is infeasible);
        svm_fro, svm_nuc: (d, d) or None; kind: "global" | "local" | "not optimal" | "infeasible".
    """

    W: np.ndarray
    probs: np.ndarray
    loss: np.ndarray
    grad_norm: np.ndarray
    norm: np.ndarray
    selected: np.ndarray
    svm_fro: np.ndarray | None
    svm_nuc: np.ndarray | None
    corr_fro: np.ndarray | None
    corr_nuc: np.ndarray | None
    margin: np.ndarray | None
    kind: str


def _corr_curve(Ws: np.ndarray, S: np.ndarray | None) -> np.ndarray | None:
    if S is None:
        return None
    flat = Ws.reshape(len(Ws), -1)
    nrm = np.linalg.norm(flat, axis=1)
    return flat @ S.reshape(-1) / np.where(nrm > 0, nrm, 1.0) / np.linalg.norm(S)


def run(problem: Problem, param: str = "W", steps: int = 2000, lr: float = 0.1, normalized: bool = True,
        seed: int = 0, conventions: bool = True, svm_cache: dict | None = None) -> Run:
    """Transformers as SVMs (Att-SVM): https://arxiv.org/abs/2308.16898 — train, then compare with W^mm.

    The SVMs are solved for argmax of the final softmax (the tokens GD picked, as the convergence notebooks
    do); `svm_cache` (a dict keyed on the selected set) skips re-solving a set seen before.

    >>> from core.attention_svm.problem import make_problem
    >>> r = run(make_problem(3, 4, 3, seed=0), steps=50)
    >>> r.W.shape, r.kind in ("global", "local", "not optimal", "infeasible")
    ((51, 3, 3), True)
    """
    states = list(train(problem, param=param, steps=steps, lr=lr, normalized=normalized, seed=seed,
                        conventions=conventions))
    Ws = torch.stack([s.W for s in states]).numpy()
    probs = torch.stack([s.probs for s in states]).numpy()
    selected = probs[-1].argmax(-1)
    svms = solve_both(problem, selected, svm_cache)
    fro, nuc = svms["fro"], svms["nuc"]
    margin = None
    if fro is not None:
        A = constraint_matrix(problem, selected)
        nrm = np.linalg.norm(Ws.reshape(len(Ws), -1), axis=1)
        margin = (Ws.reshape(len(Ws), -1) @ A.T).min(1) / np.where(nrm > 0, nrm, 1.0)
    return Run(W=Ws, probs=probs, loss=np.array([float(s.loss) for s in states]),
               grad_norm=np.array([float(s.grad_norm) for s in states]),
               norm=np.linalg.norm(Ws.reshape(len(Ws), -1), axis=1), selected=selected, svm_fro=fro, svm_nuc=nuc,
               corr_fro=_corr_curve(Ws, fro), corr_nuc=_corr_curve(Ws, nuc), margin=margin, kind=svms["kind"])


def solve_both(problem: Problem, selected, cache: dict | None = None) -> dict:
    """Both SVMs and the selection's kind, memoised in `cache` under the selected set (a tuple of ints)."""
    key = tuple(int(t) for t in np.asarray(selected).reshape(-1))
    if cache is not None and key in cache:
        return cache[key]
    fro = solve_svm(problem, key, "fro")
    nuc = None if fro is None else solve_svm(problem, key, "nuc")
    out = {"fro": None if fro is None else fro.numpy(), "nuc": None if nuc is None else nuc.numpy(),
           "kind": selection_kind(problem, key, solution=fro) if fro is not None else "infeasible"}
    if cache is not None:
        cache[key] = out
    return out



