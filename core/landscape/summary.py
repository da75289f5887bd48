"""One call for the page's spectrum panel: top-k eigenvalues, SLQ density, LLA's criteria, trace, per-layer spectra."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core.errors import check_int
from core.landscape.criteria import criteria
from core.landscape.functional import LossFn, Params, num_params
from core.landscape.lanczos import MAX_K, eigenpairs, spectral_density
from core.landscape.trace import LayerSpectrum, TraceEstimate, hessian_trace, layer_spectra

# Parameters above which the spectrum is cut to what a CPU serves in seconds: SLQ 2 chains × 40 steps, and per-layer
# spectra of the weight matrices and kernels only, 20 Lanczos steps each (the 98k-parameter shapes CNN has 14
# tensors; all of them at full length took 122 s on a busy 2-core machine).
LARGE_MODEL = 20_000


@dataclass(frozen=True)
class SpectrumSummary:
    """What :func:`spectrum_summary` measured, ready to display (numbers and small numpy arrays)."""

    top: tuple[float, ...]  # the k largest eigenvalues, descending
    num_hvps: int  # Lanczos' Hessian-vector products for ``top``
    converged: bool  # whether Lanczos met its tolerance for ``top``
    grid: np.ndarray  # (n_bins,) the SLQ density's λ axis
    density: np.ndarray  # (n_bins,)
    criteria: dict[str, float]  # LLA's re and Kh₀.₅
    trace: TraceEstimate  # Krylov-aware (hessian_trace method="krylov")
    layers: list[LayerSpectrum]
    slq_runs: int
    slq_steps: int


def slq_budget(size: int) -> tuple[int, int]:
    """(chains, Lanczos steps) of SLQ for a model of ``size`` parameters: 4 × 80, or 2 × 40 above 20k."""
    return (4, min(80, size)) if size < LARGE_MODEL else (2, 40)


def spectrum_summary(loss_fn: LossFn, params: Params, *, k: int = 5, seed: int = 0) -> SpectrumSummary:
    """The Hessian spectrum and Loss Landscape Analysis' criteria (LLA): https://arxiv.org/abs/2412.10146

    Lanczos' top ``k`` eigenvalues, an SLQ density (chains and steps from :func:`slq_budget`) with the
    criteria ``re`` and ``Kh₀.₅`` computed from it, a Krylov-aware estimate with 60 products for tr H, and per-layer λmax
    (above 20,000 parameters: of the ≥ 2-D tensors only, 20 Lanczos steps and 10 probes each).

    Args:
        loss_fn (`Callable`), params (`dict`): the loss and the point θ.
        k (`int`, defaults to `5`): top eigenvalues, 1 ≤ k ≤ 50.
        seed (`int`, defaults to `0`): every random start.

    >>> import torch
    >>> A = torch.diag(torch.linspace(-1.0, 4.0, 30, dtype=torch.float64))
    >>> s = spectrum_summary(lambda p: 0.5 * p["x"] @ A @ p["x"], {"x": torch.zeros(30, dtype=torch.float64)}, k=2)
    >>> [round(v, 6) for v in s.top], abs(s.trace.trace - 45.0) < 1, (s.slq_runs, s.slq_steps)  # tr A = 45
    ([4.0, 3.827586], True, (4, 30))
    """
    k = check_int("k", k, 1, MAX_K)
    size = num_params(params)
    runs, steps = slq_budget(size)
    large = size >= LARGE_MODEL
    weights = [name for name, v in params.items() if v.dim() >= 2] if large else None
    top = eigenpairs(loss_fn, params, k=k, which="LA", seed=seed)
    slq = spectral_density(loss_fn, params, n_runs=runs, m=steps, seed=seed)
    return SpectrumSummary(
        top=tuple(top.eigenvalues.tolist()),
        num_hvps=top.num_hvps,
        converged=top.converged,
        grid=slq.grid.numpy(),
        density=slq.density.numpy(),
        criteria=criteria(slq.nodes, slq.weights),
        trace=hessian_trace(loss_fn, params, n_probes=60, seed=seed, method="krylov"),
        layers=layer_spectra(
            loss_fn, params, n_probes=10 if large else 20, seed=seed, max_iter=20 if large else None, names=weights
        ),
        slq_runs=runs,
        slq_steps=steps,
    )
