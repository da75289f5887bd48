"""M-FAC on a model: per-sample gradients, IHVP accuracy against a dense solve, and OBS pruning saliency."""

from __future__ import annotations

import copy
import time

import torch
from torch import nn

from core.curvature.mfac import StaticMFAC
from core.errors import check_budget, check_int, check_positive

MAX_GRADIENT_ENTRIES = 2_000_000  # m × d of one static M-FAC


def per_sample_grads(model: nn.Module, inputs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Cross-entropy gradients of every parameter, one row per sample: (n, d), float64.

    Works on a per-call copy, so a model shared by the app is only read. One backward pass per sample: for the
    few hundred samples M-FAC takes this is ~40 ms, where ``torch.func.vmap`` spends ~1.5 s tracing its first call.
    """
    check_budget(
        "gradient entries (n × d)", len(inputs) * sum(p.numel() for p in model.parameters()), MAX_GRADIENT_ENTRIES
    )
    local = copy.deepcopy(model).double().requires_grad_(True)  # a shared model may have gradients switched off
    params = list(local.parameters())
    device = params[0].device
    rows = []
    for x, y in zip(inputs.to(device).double(), target.to(device), strict=True):
        loss = nn.functional.cross_entropy(local(x[None]), y[None])
        rows.append(torch.cat([g.reshape(-1) for g in torch.autograd.grad(loss, params)]))
    return torch.stack(rows)


def ihvp_errors(grads: torch.Tensor, x: torch.Tensor, *, ms: list[int], damps: list[float]) -> list[dict]:
    """Static M-FAC against ``torch.linalg.solve`` for each window m (first m rows) and damping λ.

    Rows: m, λ, relative error, M-FAC setup + product time and dense solve time (seconds).
    """
    rows = []
    for m in ms:
        check_int("m", m, 1, len(grads))
        for damp in damps:
            check_positive("damp", damp)
            start = time.perf_counter()
            approx = StaticMFAC(grads[:m], damp).ihvp(x)
            mfac_s = time.perf_counter() - start
            fisher = damp * torch.eye(grads.shape[1], dtype=grads.dtype, device=grads.device)
            start = time.perf_counter()
            exact = torch.linalg.solve(fisher.addmm_(grads[:m].T, grads[:m], alpha=1.0 / m), x)
            dense_s = time.perf_counter() - start
            error = float((approx - exact).norm() / exact.norm())
            rows.append({"m": m, "damp": damp, "rel_error": error, "mfac_s": mfac_s, "dense_s": dense_s})
    return rows


def prune_accuracy(
    model: nn.Module,
    grads: torch.Tensor,
    inputs: torch.Tensor,
    target: torch.Tensor,
    *,
    damp: float = 1e-4,
    sparsities: tuple[float, ...] = (0.0, 0.5, 0.7, 0.8, 0.9, 0.95),
) -> dict[str, list[float]]:
    """Accuracy after zeroing the lowest-saliency weights, by OBS saliency w²/(2[F̂⁻¹]ᵢᵢ) or by |w|.

    ``grads`` (m, d) are per-sample gradients in the model's parameter order; no weight is updated after
    pruning, so the curves compare the rankings only.
    """
    weights = torch.cat([p.detach().reshape(-1).double() for p in model.parameters()])
    grads, inputs, target = grads.to(weights.device), inputs.to(weights.device), target.to(weights.device)
    obs = weights.square() / (2 * StaticMFAC(grads, damp).inverse_diagonal())
    return {
        name: [_accuracy_without(model, score.argsort()[: int(s * len(score))], inputs, target) for s in sparsities]
        for name, score in {"M-FAC (OBS)": obs, "magnitude": weights.abs()}.items()
    }


def _accuracy_without(model: nn.Module, pruned: torch.Tensor, inputs: torch.Tensor, target: torch.Tensor) -> float:
    local = copy.deepcopy(model)
    flat = torch.cat([p.detach().reshape(-1) for p in local.parameters()])
    flat[pruned] = 0
    torch.nn.utils.vector_to_parameters(flat, local.parameters())
    with torch.no_grad():
        return float((local(inputs).argmax(1) == target).float().mean())
