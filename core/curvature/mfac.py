"""M-FAC inverse-Hessian-vector products with the empirical Fisher λI + (1/m) Σ gᵢgᵢᵀ.

M-FAC (Frantar, Kurtic, Alistarh): https://arxiv.org/abs/2107.03356
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

import torch

from core.errors import OptiscopeError, check_budget, check_int, check_positive

MAX_WINDOW = 4096  # gradients in one window: an m × m factorisation per added gradient (the reference caps at 1024)
MAX_WINDOW_ENTRIES = 50_000_000  # m × d: 200 MB of float32 gradients


def _check_grads(grads: torch.Tensor) -> torch.Tensor:
    if not isinstance(grads, torch.Tensor) or grads.ndim != 2 or grads.shape[0] < 1 or not grads.is_floating_point():
        shape = (grads.dtype, tuple(grads.shape)) if isinstance(grads, torch.Tensor) else type(grads).__name__
        raise OptiscopeError(f"Expected `grads` to be a float tensor of shape (m, d) with m >= 1, but got {shape}")
    check_budget("gradient entries (m × d)", grads.numel(), MAX_WINDOW_ENTRIES)
    if not torch.isfinite(grads).all():
        raise OptiscopeError("Expected `grads` to be finite, but it holds NaN or inf")
    return grads


class StaticMFAC:
    r"""Static M-FAC: a Sherman–Morrison chain over m fixed gradients (O(m²d) setup, O(md) per product).

    Args:
        grads (`Tensor`): the m gradients as rows, shape (m, d).
        damp (`float`, defaults to `1e-5`): the damping λ of F̂ = λI + GᵀG/m.

    >>> g = torch.eye(2, dtype=torch.float64)
    >>> StaticMFAC(g, damp=1.0).ihvp(torch.ones(2, dtype=torch.float64))
    tensor([0.6667, 0.6667], dtype=torch.float64)
    """

    def __init__(self, grads: torch.Tensor, damp: float = 1e-5) -> None:
        grads = _check_grads(grads)
        self.damp = check_positive("damp", damp)
        m = grads.shape[0]
        # v_i = F̂_{i-1}⁻¹ g_i and den_i = m + g_iᵀ v_i, built one gradient at a time
        self._v = torch.zeros_like(grads)
        self._den = torch.zeros(m, dtype=grads.dtype, device=grads.device)
        for i, g in enumerate(grads):
            coef = (self._v[:i] @ g) / self._den[:i]  # (i,)
            self._v[i] = g / self.damp - coef @ self._v[:i]
            self._den[i] = m + g @ self._v[i]

    def ihvp(self, x: torch.Tensor) -> torch.Tensor:
        """F̂⁻¹x = λ⁻¹x − Σᵢ (vᵢᵀx / denᵢ) vᵢ; x: (d,) -> (d,)."""
        return x / self.damp - ((self._v @ x) / self._den) @ self._v

    def inverse_diagonal(self) -> torch.Tensor:
        """diag F̂⁻¹ = λ⁻¹ − Σᵢ vᵢ² / denᵢ, shape (d,)."""
        return 1.0 / self.damp - (self._v.square() / self._den[:, None]).sum(0)


class DynamicMFAC:
    r"""Dynamic M-FAC: a sliding window of the last m gradients (O(md + m³) per add, O(md + m²) per product).

    The reference factorises mI + λ⁻¹GGᵀ by LU without pivoting, which torch 2.13 lacks on CPU; the matrix
    is SPD, so this uses its Cholesky factor in the Woodbury identity
    F̂⁻¹ = λ⁻¹I − λ⁻²Gᵀ(mI + λ⁻¹GGᵀ)⁻¹G. The window starts as zeros, as in the reference.

    Args:
        m (`int`): the window length.
        d (`int`): the dimension of the gradients.
        damp (`float`, defaults to `1e-5`): the damping λ.
        dtype, device: of the window; the m×m factorisation always runs in float64.
    """

    def __init__(
        self,
        m: int,
        d: int,
        damp: float = 1e-5,
        *,
        dtype: torch.dtype = torch.float32,
        device: torch.device | None = None,
    ) -> None:
        self.m, self.d = check_int("m", m), check_int("d", d)
        check_budget("window length m", self.m, MAX_WINDOW)
        check_budget("window entries (m × d)", self.m * self.d, MAX_WINDOW_ENTRIES)
        self.damp = check_positive("damp", damp)
        self._grads = torch.zeros(self.m, self.d, dtype=dtype, device=device)
        self._gram = torch.zeros(self.m, self.m, dtype=torch.float64, device=device)  # GGᵀ
        self._slot = 0
        self._factorize()

    def add(self, g: torch.Tensor) -> None:
        """Overwrite the oldest gradient with ``g`` (d,): one row and column of GGᵀ, then a new factor."""
        if g.shape != (self.d,) or not torch.isfinite(g).all():
            raise OptiscopeError(f"Expected `g` to be a finite tensor of shape ({self.d},), but got {tuple(g.shape)}")
        self._grads[self._slot] = g
        row = (self._grads @ g.to(self._grads.dtype)).double()
        self._gram[self._slot], self._gram[:, self._slot] = row, row
        self._slot = (self._slot + 1) % self.m
        self._factorize()

    def _factorize(self) -> None:
        eye = torch.eye(self.m, dtype=torch.float64, device=self._gram.device)
        self._chol = torch.linalg.cholesky(self.m * eye + self._gram / self.damp)

    def ihvp(self, x: torch.Tensor) -> torch.Tensor:
        """F̂⁻¹x for x: (d,) -> (d,), in the window's dtype."""
        gx = (self._grads @ x.to(self._grads.dtype)).double()[:, None]  # (m, 1)
        coef = torch.cholesky_solve(gx, self._chol)[:, 0].to(self._grads.dtype)
        return x.to(self._grads.dtype) / self.damp - (coef @ self._grads) / self.damp**2


class MFAC(torch.optim.Optimizer):
    r"""The M-FAC optimizer: ``p -= lr · F̂⁻¹(grad + wd·p)`` over a sliding window of the last m gradients.

    The new gradient joins the window before the product, as in the reference ``optim.py``.

    Args:
        params: the parameters (one group).
        lr (`float`, defaults to `1e-2`), m (`int`, defaults to `32`), damp (`float`, defaults to `1e-3`),
        momentum (`float`, defaults to `0.0`), weight_decay (`float`, defaults to `0.0`).
    """

    def __init__(
        self,
        params: Iterable[torch.Tensor],
        lr: float = 1e-2,
        m: int = 32,
        damp: float = 1e-3,
        momentum: float = 0.0,
        weight_decay: float = 0.0,
    ) -> None:
        check_positive("lr", lr)
        check_int("m", m)
        check_positive("damp", damp)
        check_positive("weight_decay", weight_decay, strict=False)
        if not 0.0 <= momentum < 1.0:
            raise OptiscopeError(f"Expected `momentum` between 0 and 1 (exclusive), but got {momentum}")
        defaults = {"lr": lr, "m": m, "damp": damp, "momentum": momentum, "weight_decay": weight_decay}
        params = list(params)
        if any(isinstance(p, torch.Tensor) and not p.is_leaf for p in params):
            raise OptiscopeError("Expected `params` to be leaf tensors (a model's parameters), but got a computed one")
        super().__init__(params, defaults)
        if len(self.param_groups) != 1:
            raise OptiscopeError(f"Expected one parameter group for MFAC, but got {len(self.param_groups)}")
        params = self.param_groups[0]["params"]
        d = sum(p.numel() for p in params)
        self._window = DynamicMFAC(m, d, damp, dtype=params[0].dtype, device=params[0].device)
        self._velocity: torch.Tensor | None = None

    @torch.no_grad()
    def step(self, closure: Callable[[], torch.Tensor] | None = None) -> torch.Tensor | None:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        group = self.param_groups[0]
        params = [p for p in group["params"] if p.grad is not None]
        if len(params) != len(group["params"]):
            return loss
        flat = torch.cat([p.grad.reshape(-1) + group["weight_decay"] * p.reshape(-1) for p in params])
        if not bool(torch.isfinite(flat).all()):  # a diverged run: the weights turn NaN, as any optimizer's would
            for p in params:
                p.fill_(math.nan)
            return loss
        self._window.add(flat)
        update = self._window.ihvp(flat)
        if group["momentum"] > 0:
            mu = group["momentum"]
            self._velocity = update if self._velocity is None else mu * self._velocity + (1 - mu) * update
            update = self._velocity
        for p, u in zip(params, update.split([p.numel() for p in params]), strict=True):
            p.add_(u.view_as(p), alpha=-group["lr"])
        return loss
