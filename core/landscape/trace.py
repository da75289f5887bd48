"""Hessian trace (Hutchinson, Hutch++) and per-layer spectra (top eigenvalue and trace per tensor)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from core.landscape.functional import LossFn, Params
from core.landscape.hvp import HessianOperator
from core.landscape.lanczos import lanczos

TRACE_METHODS = ("hutchinson", "hutch++")


@dataclass(frozen=True)
class TraceEstimate:
    trace: float
    stderr: float  # standard error of the stochastic part (0 when exact, inf with a single probe)
    num_hvps: int


def _rademacher(n: int, size: int, gen: torch.Generator) -> torch.Tensor:
    return (torch.randint(0, 2, (n, size), generator=gen) * 2 - 1).double()


def _trace(matvec, size: int, n_probes: int, gen: torch.Generator, method: str) -> tuple[float, float]:
    if method == "hutchinson" or n_probes < 3:
        z = _rademacher(n_probes, size, gen)
        samples = (z * matvec(z)).sum(-1)
        stderr = float(samples.std() / n_probes**0.5) if n_probes > 1 else float("inf")
        return float(samples.mean()), stderr
    # Hutch++ (Meyer et al.): the top of the spectrum exactly on a sketched subspace, Hutchinson on the rest.
    s = n_probes // 3
    q, _ = torch.linalg.qr(matvec(_rademacher(s, size, gen)).T)  # (P, s)
    top = float((q.T * matvec(q.T)).sum())
    g = _rademacher(n_probes - 2 * s, size, gen)
    g = g - (g @ q) @ q.T
    samples = (g * matvec(g)).sum(-1)
    return top + float(samples.mean()), float(samples.std() / len(samples) ** 0.5) if len(samples) > 1 else float("inf")


def hessian_trace(
    loss_fn: LossFn, params: Params, n_probes: int = 60, seed: int = 0, method: str = "hutchinson"
) -> TraceEstimate:
    """Hutchinson's trace estimator, tr H ≈ mean(zᵀHz) over Rademacher z: https://arxiv.org/abs/2010.09649

    Args:
        loss_fn (`Callable`), params (`dict`): the loss and the point θ.
        n_probes (`int`, defaults to `60`): Hessian-vector products to spend (batched in one block).
        seed (`int`, defaults to `0`): the probes.
        method (`str`, defaults to `"hutchinson"`): or ``"hutch++"`` (a third of the budget sketches the top
            subspace, whose trace is then exact; much lower variance when a few eigenvalues dominate).

    >>> A = torch.diag(torch.tensor([1.0, -2.0, 7.0], dtype=torch.float64))
    >>> hessian_trace(lambda p: 0.5 * p["x"] @ A @ p["x"], {"x": torch.zeros(3, dtype=torch.float64)}, n_probes=1).trace
    6.0
    """
    if method not in TRACE_METHODS:
        raise ValueError(f"Expected `method` in {TRACE_METHODS}, but got {method!r}.")
    if n_probes < 1:
        raise ValueError(f"Expected `n_probes` >= 1, but got {n_probes}.")
    op = HessianOperator(loss_fn, params)
    matvec = lambda v: op.matvec(v.to(op.dtype)).double()  # noqa: E731
    trace, stderr = _trace(matvec, op.size, n_probes, torch.Generator().manual_seed(seed), method)
    return TraceEstimate(trace, stderr, op.num_hvps)


@dataclass(frozen=True)
class LayerSpectrum:
    name: str
    size: int
    lambda_max: float  # largest eigenvalue of the diagonal block H_ll
    trace: float  # tr H_ll (exact when the tensor has ≤ n_probes entries)
    trace_stderr: float


def layer_spectra(loss_fn: LossFn, params: Params, n_probes: int = 30, seed: int = 0, tol: float = 1e-4) -> list[LayerSpectrum]:
    """Per-layer Hessian spectra: λmax and trace of each parameter tensor's diagonal block (PyHessian#9, #10).

    Args:
        loss_fn (`Callable`), params (`dict`): the loss and the point θ.
        n_probes (`int`, defaults to `30`): Hutchinson probes per tensor.
        seed (`int`, defaults to `0`), tol (`float`, defaults to `1e-4`): Lanczos start and tolerance.

    >>> A = torch.diag(torch.tensor([1.0, 3.0, 5.0], dtype=torch.float64))
    >>> f = lambda p: 0.5 * torch.cat([p["a"], p["b"]]) @ A @ torch.cat([p["a"], p["b"]])
    >>> [(s.name, round(s.lambda_max, 6), round(s.trace, 6)) for s in layer_spectra(f, {"a": torch.zeros(2, dtype=torch.float64), "b": torch.zeros(1, dtype=torch.float64)})]
    [('a', 3.0, 4.0), ('b', 5.0, 5.0)]
    """
    op = HessianOperator(loss_fn, params)
    gen = torch.Generator().manual_seed(seed)
    out, start = [], 0
    for name, tensor in params.items():
        size = tensor.numel()
        sl = slice(start, start + size)
        start += size

        def block(v, sl=sl, size=size):  # H_ll·v: embed into θ-space, multiply, take the block back
            full = torch.zeros(v.shape[:-1] + (op.size,), dtype=op.dtype)
            full[..., sl] = v.to(op.dtype)
            return op.matvec(full)[..., sl].double()

        values, *_ = lanczos(block, size, 1, "LA", tol, None, gen)
        if size <= n_probes:
            trace, stderr = float(torch.diagonal(block(torch.eye(size, dtype=torch.float64))).sum()), 0.0
        else:
            trace, stderr = _trace(block, size, n_probes, gen, "hutchinson")
        out.append(LayerSpectrum(name, size, float(values[0]), trace, stderr))
    return out
