"""Attention-SVM problems: sequences X_i, queries z_i, labels y_i and a fixed head v.

The model of the paper: s_i = softmax(X_i W z_i), f_i = vᵀ X_iᵀ s_i, loss = mean log(1 + exp(-y_i f_i)).
Only the head outputs h_it = vᵀ x_it enter f, so a problem stores them as ``values``; the hand-made
examples of the earlier paper give them directly because their value tokens differ from their keys.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from core.errors import OptiscopeError, check_budget, check_int, check_seed

DTYPE = torch.float64
TOKEN_BUDGET = 10**7  # n·T·d entries of X: 80 MB in float64


@dataclass(frozen=True)
class Problem:
    """One attention-SVM problem, all tensors float64 on one device.

    Shapes:
        X: (n, T, d) key tokens x_it; z: (n, d) queries; y: (n,) labels ±1;
        v: (d,) head (or None for the toy examples); values: (n, T) head outputs h_it = vᵀ x_it.
    """

    X: torch.Tensor
    z: torch.Tensor
    y: torch.Tensor
    v: torch.Tensor | None
    values: torch.Tensor

    @property
    def n(self) -> int:
        return self.X.shape[0]

    @property
    def T(self) -> int:
        return self.X.shape[1]

    @property
    def d(self) -> int:
        return self.X.shape[2]

    @property
    def scores(self) -> torch.Tensor:
        """Token scores γ_it = y_i h_it, shape (n, T)."""
        return self.y[:, None] * self.values

    @property
    def optimal(self) -> torch.Tensor:
        """Globally optimal tokens opt_i = argmax_t γ_it (`best_ids` in the authors' code), shape (n,)."""
        return self.scores.argmax(-1)

    def to(self, device: torch.device | str | None) -> Problem:
        """This problem with every tensor on ``device`` (None: where it is)."""
        if device is None:
            return self
        try:
            device = torch.device(device)
            tensors = (None if t is None else t.to(device) for t in (self.X, self.z, self.y, self.v, self.values))
            return Problem(*tensors)
        except (RuntimeError, TypeError, AssertionError) as e:  # unknown name, or no such accelerator here
            raise OptiscopeError(f"Expected an available `device`, but got {device!r}") from e


def check_problem(problem: Problem) -> Problem:
    """`problem` if it is a `Problem` of finite float64 tensors of consistent shapes on one device, with labels ±1.

    Every entry point that takes a problem calls this first: a `Problem` is a plain record, so one built by hand
    (or with `dataclasses.replace`) is checked where it is used.
    """
    if not isinstance(problem, Problem):
        raise OptiscopeError(f"Expected a `problem` (a `Problem`), but got {type(problem).__name__}")
    tensors = {"X": problem.X, "z": problem.z, "y": problem.y, "values": problem.values, "v": problem.v}
    tensors = {name: t for name, t in tensors.items() if t is not None or name != "v"}
    for name, t in tensors.items():
        if not isinstance(t, torch.Tensor) or t.dtype != DTYPE:
            got = t.dtype if isinstance(t, torch.Tensor) else type(t).__name__
            raise OptiscopeError(f"Expected `{name}` to be a float64 tensor, but got {got}")
    if problem.X.ndim != 3:
        raise OptiscopeError(f"Expected `X` of shape (n, T, d), but got {tuple(problem.X.shape)}")
    n, T, d = _check_sizes(*problem.X.shape)
    for name, shape in {"z": (n, d), "y": (n,), "values": (n, T), "v": (d,)}.items():
        if name in tensors:
            _check_shape(name, tensors[name], shape)
    if len({t.device for t in tensors.values()}) > 1:
        raise OptiscopeError(f"Expected one device, but got {sorted({str(t.device) for t in tensors.values()})}")
    for name, t in tensors.items():
        if not bool(torch.isfinite(t).all()):
            raise OptiscopeError(f"Expected `{name}` to be finite, but it holds NaN or inf")
    if not bool(((problem.y == 1) | (problem.y == -1)).all()):
        raise OptiscopeError(f"Expected labels `y` in {{-1, +1}}, but got {sorted(set(problem.y.tolist()))}")
    return problem


def _check_sizes(n: int, T: int, d: int) -> tuple[int, int, int]:
    n, d = check_int("n", n, 1), check_int("d", d, 1)
    T = check_int("T", T, 2)  # attention must choose between tokens
    check_budget("tokens n·T·d", n * T * d, TOKEN_BUDGET)
    return n, T, d


def make_problem(
    *, n: int = 6, T: int = 8, d: int = 10, seed: int = 0, device: torch.device | str | None = None
) -> Problem:
    """Transformers as SVMs (Att-SVM): https://arxiv.org/abs/2308.16898 — the data of its `local_converge` run.

    v ~ N(0, I) normalized, y = ±1 with equal odds, tokens and queries uniform on the unit sphere; drawn in the
    authors' order from a seeded CPU ``torch.Generator`` (float32, then float64), so seed k is the notebook's
    run k on every device.

    Args:
        n (`int`, defaults to `6`): sequences. T (`int`, defaults to `8`): tokens per sequence (>= 2).
        d (`int`, defaults to `10`): embedding dimension. seed (`int`, defaults to `0`).
        device (`torch.device`, optional): where the tensors live; defaults to the CPU.

    Shapes:
        X: (n, T, d), z: (n, d), y: (n,), v: (d,).

    >>> p = make_problem(n=6, T=8, d=10, seed=0)
    >>> tuple(p.X.shape), tuple(p.z.shape), round(float(p.X[0, 0].norm()), 6)
    ((6, 8, 10), (6, 10), 1.0)
    """
    n, T, d = _check_sizes(n, T, d)
    g = torch.Generator().manual_seed(check_seed(seed))
    v = torch.randn(d, generator=g)
    v /= torch.norm(v)
    y = 2 * torch.ones(n) * (torch.randn(n, generator=g) > 0) - 1
    X = torch.randn((n, T, d), generator=g)
    X /= torch.norm(X, dim=-1, keepdim=True)
    z = torch.randn((n, d), generator=g)
    z /= torch.norm(z, dim=-1, keepdim=True)
    X, z, y, v = X.to(DTYPE), z.to(DTYPE), y.to(DTYPE), v.to(DTYPE)
    return Problem(X=X, z=z, y=y, v=v, values=X @ v).to(device)


def _as_tensor(name: str, a, ndim: int) -> torch.Tensor:
    try:
        host = a.detach().cpu().numpy() if isinstance(a, torch.Tensor) else np.asarray(a)
        if host.dtype.kind not in "biuf":  # complex, strings, objects: no silent cast
            raise TypeError(host.dtype)
        t = torch.as_tensor(host.astype(np.float64), dtype=DTYPE)
    except (TypeError, ValueError, RuntimeError) as e:
        raise OptiscopeError(f"Expected `{name}` to be a real numeric array, but got {type(a).__name__}") from e
    if t.ndim != ndim:
        raise OptiscopeError(f"Expected `{name}` to have {ndim} dimensions, but got shape {tuple(t.shape)}")
    return t.clone()


def _check_shape(name: str, t: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    if tuple(t.shape) != shape:
        raise OptiscopeError(f"Expected `{name}` of shape {shape}, but got {tuple(t.shape)}")
    return t


def from_arrays(X, z, y, *, v=None, values=None) -> Problem:
    """A problem from given arrays (numpy, lists or tensors, copied to the CPU); pass `v` or the head outputs `values`.

    Shapes:
        X: (n, T, d), z: (n, d), y: (n,), v: (d,), values: (n, T).

    >>> p = from_arrays([[[1.0, 0.0], [0.0, 1.0]]], [[1.0, 0.0]], [1.0], v=[1.0, 0.0])
    >>> p.scores.tolist()
    [[1.0, 0.0]]
    """
    X, z, y = _as_tensor("X", X, 3), _as_tensor("z", z, 2), _as_tensor("y", y, 1)
    if v is None and values is None:
        raise OptiscopeError("Expected the head `v` (d,) or the head outputs `values` (n, T), but got neither")
    v = None if v is None else _check_shape("v", _as_tensor("v", v, 1), (X.shape[-1],))
    values = X @ v if values is None else _as_tensor("values", values, 2)
    return check_problem(Problem(X=X, z=z, y=y, v=v, values=values))


def single_input_example(*, third_score: float = 0.0) -> Problem:
    """Max-Margin Token Selection (single input): https://arxiv.org/abs/2306.13596 — its hand-made example.

    One sequence of three 2-D keys, (-0.1, 1), (1, 0) and (0, 0), with scores 1, 0.9 and `third_score`, and
    the query z = e₁, so W z is the first column p of W. Token 1 is the global optimum, p^mm = (-0.1, 1)/1.01;
    token 2 is a local one when the third token scores 0, with p^mm = (1, 0).

    Args:
        third_score (`float`, defaults to `0.0`): the paper uses 0 (two basins) and 0.9 (one basin).

    >>> single_input_example().scores.tolist()
    [[1.0, 0.9, 0.0]]
    """
    X = [[[-0.1, 1.0], [1.0, 0.0], [0.0, 0.0]]]
    return from_arrays(X, [[1.0, 0.0]], [1.0], values=[[1.0, 0.9, third_score]])
