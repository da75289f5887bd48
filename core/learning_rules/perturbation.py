"""Zeroth-order and perturbation gradient estimators, after "From gradient descent to neural adaptation"
(García Fernández, Ahmad, van Gerven): https://arxiv.org/abs/2510.18812

Weight perturbation (a forward difference along Gaussian directions), antithetic evolution strategies, SPSA
(Rademacher directions) and forward gradients (one JVP per direction), with the theory
E||ĝ - g||² / ||g||² = (d + 1)/K (Gaussian) or (d - 1)/K (Rademacher) for K probes. Node perturbation
(perturb pre-activations, not weights) is :func:`node_perturbation` for a one-hidden-layer MLP.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch.func import jvp, vmap

from core.device import generator
from core.errors import OptiscopeError, check_budget, check_choice, check_int, check_positive, check_seed

ESTIMATORS = ("weight", "antithetic", "spsa", "forward")
PROBE_BUDGET = 5e7  # n_samples × d floats of directions held at once


def check_tensor(name: str, value: torch.Tensor, *, dim: int | None = None) -> torch.Tensor:
    """``value`` if it is a non-empty real floating tensor of finite numbers (with ``dim`` dimensions when given)."""
    if not isinstance(value, torch.Tensor) or value.numel() == 0 or (dim is not None and value.dim() != dim):
        shape = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
        raise OptiscopeError(f"Expected `{name}` to be a non-empty {dim or ''}-d tensor, but got {shape}")
    if not value.is_floating_point():
        raise OptiscopeError(f"Expected `{name}` to hold real floating-point numbers, but got {value.dtype}")
    if not bool(torch.isfinite(value).all()):
        raise OptiscopeError(f"Expected `{name}` to hold finite numbers, but it holds NaN or inf")
    return value


def theory(d: int, n_samples: int, *, method: str = "weight") -> dict[str, float]:
    """Relative mean squared error E||ĝ-g||²/||g||² and the cosine (1 + relMSE)^-1/2 for K = ``n_samples`` probes.

    >>> theory(99, 1)["rel_mse"]
    100.0
    """
    d, n_samples = check_int("d", d), check_int("n_samples", n_samples)
    check_choice("method", method, ESTIMATORS)
    rel = (d - 1 if method == "spsa" else d + 1) / n_samples
    return {"rel_mse": float(rel), "cosine": float((1 + rel) ** -0.5)}


def estimate(
    loss: Callable[[torch.Tensor], torch.Tensor],
    params: torch.Tensor,
    *,
    method: str = "weight",
    n_samples: int = 1,
    sigma: float = 1e-4,
    seed: int = 0,
) -> torch.Tensor:
    """Estimate the gradient of ``loss`` at ``params`` (d,) from function values (or one JVP per direction).

    ``loss`` maps (K, d) parameter rows to (K,) values (and (d,) to a scalar for ``"forward"``).

    >>> g = estimate(lambda p: p.sum(-1), torch.zeros(3), method="spsa", n_samples=1)
    >>> torch.allclose(g.abs(), torch.ones(3))
    True
    """
    check_choice("method", method, ESTIMATORS)
    n_samples, sigma = check_int("n_samples", n_samples), check_positive("sigma", sigma)
    params = check_tensor("params", params, dim=1)
    check_budget("probe floats n_samples·d", n_samples * params.numel(), PROBE_BUDGET)
    g = generator(check_seed(seed), params.device)
    shape = (n_samples, params.numel())
    if method == "spsa":
        u = torch.randint(0, 2, shape, generator=g, device=params.device).to(params.dtype) * 2 - 1
    else:
        u = torch.randn(shape, generator=g, device=params.device, dtype=params.dtype)
    if method == "forward":
        slopes = vmap(lambda row: jvp(loss, (params,), (row,))[1])(u)
    elif method == "weight":
        slopes = (loss(params + sigma * u) - loss(params.unsqueeze(0))) / sigma
    else:
        slopes = (loss(params + sigma * u) - loss(params - sigma * u)) / (2 * sigma)
    if slopes.shape != (n_samples,) or not bool(torch.isfinite(slopes).all()):
        raise OptiscopeError(f"Expected `loss` to give {n_samples} finite values, but got {slopes}")
    return (slopes.unsqueeze(-1) * u).mean(0)  # Rademacher: u_i = 1/u_i, so SPSA has the same form


def mlp_loss(params: dict[str, torch.Tensor], inputs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-sample cross-entropy of the MLP inputs → ReLU(W1 x + b1) → W2 h + b2."""
    hidden = torch.relu(inputs @ params["w1"].T + params["b1"])
    return F.cross_entropy(hidden @ params["w2"].T + params["b2"], target, reduction="none")


def node_perturbation(
    params: dict[str, torch.Tensor], inputs: torch.Tensor, target: torch.Tensor, *, sigma: float = 1e-3, seed: int = 0
) -> dict[str, torch.Tensor]:
    """Node perturbation: noise ξ on every pre-activation, per sample; ΔW_l = mean_n (L̃_n - L_n)/σ · ξ_l hᵀ_{l-1}.

    One probe per sample (independent noise across samples), so it estimates the mean loss's gradient.
    """
    sigma = check_positive("sigma", sigma)
    _check_mlp(params, check_tensor("inputs", inputs, dim=2), target)
    g = generator(check_seed(seed), inputs.device)
    a1 = inputs @ params["w1"].T + params["b1"]
    xi1 = torch.randn(a1.shape, generator=g, device=a1.device, dtype=a1.dtype)
    h_clean, h_noisy = torch.relu(a1), torch.relu(a1 + sigma * xi1)
    a2_noisy = h_noisy @ params["w2"].T + params["b2"]
    xi2 = torch.randn(a2_noisy.shape, generator=g, device=a1.device, dtype=a1.dtype)
    clean = F.cross_entropy(h_clean @ params["w2"].T + params["b2"], target, reduction="none")
    noisy = F.cross_entropy(a2_noisy + sigma * xi2, target, reduction="none")
    scale = ((noisy - clean) / sigma / len(target)).unsqueeze(-1)  # (B, 1)
    d1, d2 = scale * xi1, scale * xi2
    return {"w1": d1.T @ inputs, "b1": d1.sum(0), "w2": d2.T @ h_clean, "b2": d2.sum(0)}


def _check_mlp(params: dict[str, torch.Tensor], inputs: torch.Tensor, target: torch.Tensor) -> None:
    """w1 (h, n), b1 (h,), w2 (c, h), b2 (c,) for inputs (B, n) and B integer targets in [0, c)."""
    shapes = {
        k: tuple(check_tensor(f"params[{k!r}]", params[k]).shape) for k in ("w1", "b1", "w2", "b2") if k in params
    }
    h, c = shapes.get("w1", (0,))[0], shapes.get("w2", (0,))[0]
    expected = {"w1": (h, inputs.shape[1]), "b1": (h,), "w2": (c, h), "b2": (c,)}
    if shapes != expected:
        raise OptiscopeError(f"Expected `params` shaped {expected} for inputs {tuple(inputs.shape)}, but got {shapes}")
    dtypes = {str(t.dtype) for t in (*params.values(), inputs)}
    if len(dtypes) > 1:
        raise OptiscopeError(f"Expected `params` and `inputs` of one dtype, but got {sorted(dtypes)}")
    if target.shape != inputs.shape[:1] or target.dtype != torch.long or not bool(((target >= 0) & (target < c)).all()):
        raise OptiscopeError(f"Expected `target` of {len(inputs)} class indices in [0, {c}), but got {target!r}")


def error_vs_dimension(
    method: str, *, dims: tuple[int, ...] = (10, 100, 1000), n_samples: int = 10, repeats: int = 100, seed: int = 0
) -> list[dict[str, float]]:
    """Measured relative error and cosine of ``method`` on a linear loss L(θ) = g·θ (exact slopes, so only the
    directions' variance shows), beside :func:`theory`, one row per d."""
    dims, seed = [check_int("dims", d, 1, 10**6) for d in dims], check_seed(seed)
    repeats, rows = check_int("repeats", repeats, 1, 10_000), []
    for d in dims:
        true = torch.randn(d, dtype=torch.float64, generator=torch.Generator().manual_seed(d))
        ests = torch.stack(
            [
                estimate(
                    true.__rmatmul__,
                    torch.zeros(d, dtype=torch.float64),
                    method=method,
                    n_samples=n_samples,
                    seed=seed * repeats + s,
                )
                for s in range(repeats)
            ]
        )
        rel = float(((ests - true).pow(2).sum(-1) / true.pow(2).sum()).mean())
        cos = float(torch.cosine_similarity(ests, true.expand_as(ests), dim=-1).mean())
        expected = theory(d, n_samples, method=method)
        rows.append(
            {
                "d": d,
                "rel_mse": rel,
                "cosine": cos,
                "theory_rel_mse": expected["rel_mse"],
                "theory_cosine": expected["cosine"],
            }
        )
    return rows
