"""(Normalized) gradient descent on the one-layer attention model, in float64, batched over problems."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from .problem import DTYPE, Problem

EPS = torch.finfo(torch.float64).eps  # 2.2e-16, the reference implementation's epsilon
PARAMS = {"W": "W (one d×d matrix)", "KQ": "(K, Q), W = KᵀQ"}


@dataclass(frozen=True)
class TrainState:
    """One step of `train` (or `train_batch`, where every field gains a leading batch dim B).

    Shapes:
        W: (d, d) effective attention matrix (KᵀQ for "KQ"); K, Q: (d, d) or None for "W";
        probs: (n, T) softmax s_i; loss: () mean logistic loss; grad_norm: () ‖∇L‖_F (summed over K, Q).
    """

    step: int
    W: torch.Tensor
    K: torch.Tensor | None
    Q: torch.Tensor | None
    probs: torch.Tensor
    loss: torch.Tensor
    grad_norm: torch.Tensor

    @property
    def selected(self) -> torch.Tensor:
        """The token each sequence attends to most, argmax_t s_it, shape (n,)."""
        return self.probs.argmax(-1)


# The math runs in numpy: these tensors are tiny, and torch's intra-op threads cost 10-20x on a busy CPU.
def forward(X, z, values, y, W):
    """Softmax, model output and loss for a batch: X (B,n,T,d), z (B,n,d), values (B,n,T), y (B,n), W (B,d,d)."""
    Wz = np.einsum("bde,bie->bid", W, z)  # W z_i, (B, n, d)
    logits = np.einsum("bitd,bid->bit", X, Wz)  # x_itᵀ W z_i, (B, n, T)
    e = np.exp(logits - logits.max(-1, keepdims=True))
    probs = e / e.sum(-1, keepdims=True)
    f = (probs * values).sum(-1)  # (B, n)
    loss = np.log1p(np.exp(-y * f)).mean(-1)  # (B,)
    return probs, f, loss


def loss_grad(X, z, values, y, W):
    """Closed-form ∇_W L, shape (B, d, d), with probs and loss: dL/da_it = dL/df_i · s_it (h_it − f_i)."""
    probs, f, loss = forward(*(np.asarray(a) for a in (X, z, values, y, W)))
    y = np.asarray(y)
    dloss_df = -y / (1 + np.exp(y * f)) / y.shape[-1]  # (B, n)
    g = dloss_df[..., None] * probs * (np.asarray(values) - f[..., None])  # (B, n, T)
    Xg = np.einsum("bit,bitd->bid", g, np.asarray(X))  # X_iᵀ g_i, (B, n, d)
    grad = np.einsum("bid,bie->bde", Xg, np.asarray(z))
    return grad, probs, loss


def _validate(param: str, steps: int, lr: float) -> None:
    if param not in PARAMS:
        raise ValueError(f"Expected `param` in {sorted(PARAMS)}, but got {param!r}")
    if int(steps) < 0:
        raise ValueError(f"Expected `steps` >= 0, but got {steps}")
    if not (float(lr) > 0 and float(lr) < float("inf")):
        raise ValueError(f"Expected `lr` (step size) > 0 and finite, but got {lr}")


def _init(B: int, d: int, param: str, seed: int, init):
    """nn.Linear's default init, U(-1/√d, 1/√d), from a seeded generator (one draw per batch member)."""
    g = torch.Generator().manual_seed(int(seed))
    bound = 1.0 / d**0.5

    def draw():
        return ((torch.rand((B, d, d), generator=g, dtype=DTYPE) * 2 - 1) * bound).numpy()

    if init is not None:
        W0 = np.asarray(torch.as_tensor(init, dtype=DTYPE))
        if W0.shape[-2:] != (d, d) or not np.isfinite(W0).all():
            raise ValueError(f"Expected a finite `init` of shape {(d, d)}, but got {W0.shape}")
        W0 = np.broadcast_to(W0, (B, d, d)).copy()
        if param == "W":
            return W0, None, None
        # a balanced factorization KᵀQ = W0 (via the SVD), so (K, Q) starts from the same W
        U, S, Vh = np.linalg.svd(W0)
        root = np.sqrt(S)[..., None]
        return W0, root * np.swapaxes(U, -1, -2), root * Vh
    if param == "W":
        return draw(), None, None
    Q, K = draw(), draw()  # the notebook builds `query` before `key`
    return np.swapaxes(K, -1, -2) @ Q, K, Q


def _normalize(grad, normalized: bool, eps: float):
    """∇/(‖∇‖_F + eps) per batch member when `normalized`, else ∇; an exactly zero ∇ (a float64 one-hot
    softmax) gives no step rather than 0/0."""
    if not normalized:
        return grad
    norm = np.sqrt((grad * grad).sum((-1, -2)))[:, None, None] + eps
    return grad / np.where(norm > 0, norm, 1.0)


def _iterate(X, z, values, y, param, steps, lr, normalized, conventions, seed, init):
    B, d = X.shape[0], X.shape[-1]
    eps = EPS if conventions else 0.0  # step denominator ‖∇‖ + eps, and (K, Q) weight decay λ = eps
    W, K, Q = _init(B, d, param, seed, init)
    for k in range(int(steps) + 1):
        G, probs, loss = loss_grad(X, z, values, y, W)
        if param == "W":
            grad_norm = np.sqrt((G * G).sum((-1, -2)))
            yield k, W, None, None, probs, loss, grad_norm
            if k < steps:
                W = W - lr * _normalize(G, normalized, eps)
            continue
        # L(KᵀQ) + λ(‖K‖² + ‖Q‖²): ∇K = Q Gᵀ + 2λK, ∇Q = K G + 2λQ; normalized separately as in the notebook
        loss = loss + eps * ((K * K).sum((-1, -2)) + (Q * Q).sum((-1, -2)))
        gK = Q @ np.swapaxes(G, -1, -2) + 2 * eps * K
        gQ = K @ G + 2 * eps * Q
        grad_norm = np.sqrt((gK * gK).sum((-1, -2)) + (gQ * gQ).sum((-1, -2)))
        yield k, W, K, Q, probs, loss, grad_norm
        if k < steps:
            K = K - lr * _normalize(gK, normalized, eps)
            Q = Q - lr * _normalize(gQ, normalized, eps)
            W = np.swapaxes(K, -1, -2) @ Q


def _stack(problems: Sequence[Problem]):
    if len(problems) == 0:
        raise ValueError("Expected at least one problem, but got none")
    shapes = {tuple(p.X.shape) for p in problems}
    if len(shapes) != 1:
        raise ValueError(f"Expected problems of one shape (n, T, d), but got {sorted(shapes)}")
    return (torch.stack([getattr(p, a) for p in problems]).numpy() for a in ("X", "z", "values", "y"))


def train_batch(problems: Sequence[Problem], param: str = "W", steps: int = 2000, lr: float = 0.1,
                normalized: bool = True, seed: int = 0, conventions: bool = True, init=None) -> Iterator[TrainState]:
    """Transformers as SVMs (Att-SVM): https://arxiv.org/abs/2308.16898 — `train` vectorised over problems.

    Problem b starts from the b-th draw of one seeded generator. States carry a leading batch dim B.

    >>> from core.attention_svm.problem import make_problem
    >>> last = list(train_batch([make_problem(seed=s) for s in range(3)], steps=5))[-1]
    >>> tuple(last.W.shape), tuple(last.probs.shape)
    ((3, 10, 10), (3, 6, 8))
    """
    _validate(param, steps, lr)
    X, z, values, y = _stack(problems)
    for k, W, K, Q, probs, loss, gn in _iterate(X, z, values, y, param, steps, float(lr), normalized,
                                                conventions, seed, init):
        t = torch.from_numpy  # fresh arrays every step, so the yielded tensors are never written again
        yield TrainState(k, t(W), None if K is None else t(K), None if Q is None else t(Q), t(probs), t(loss), t(gn))


def train(problem: Problem, param: str = "W", steps: int = 2000, lr: float = 0.1, normalized: bool = True,
          seed: int = 0, conventions: bool = True, init=None) -> Iterator[TrainState]:
    """Transformers as SVMs (Att-SVM): https://arxiv.org/abs/2308.16898 — gradient descent on attention.

    Yields the state before the first step and after each of `steps` steps (so `steps + 1` states).

    Args:
        problem (`Problem`): from `make_problem` or `from_arrays`.
        param (`str`, defaults to `"W"`): `"W"` trains W; `"KQ"` trains K, Q with W = KᵀQ (m = d).
        steps (`int`, defaults to `2000`). lr (`float`, defaults to `0.1`): step size η > 0.
        normalized (`bool`, defaults to `True`): step along ∇/‖∇‖ (K and Q normalized separately), else ∇.
        seed (`int`, defaults to `0`): seeds the init U(-1/√d, 1/√d) (nn.Linear's default).
        conventions (`bool`, defaults to `True`): the reference implementation's two numerical conventions,
            ‖∇‖ + ε in the normalized step and a weight decay ε(‖K‖² + ‖Q‖²) for "KQ", with ε = 2.2e-16.
            Off: divide by ‖∇‖ alone and no decay (after saturation the step follows rounding noise).
        init (`array`, optional): a d×d starting W (for "KQ" a balanced factorization of it).

    Shapes:
        state.W: (d, d), state.probs: (n, T), state.loss: ().

    >>> from core.attention_svm.problem import make_problem
    >>> states = list(train(make_problem(seed=0), param="KQ", steps=3))
    >>> len(states), tuple(states[-1].W.shape), states[-1].W.dtype
    (4, (10, 10), torch.float64)
    """
    for s in train_batch([problem], param, steps, lr, normalized, seed, conventions, init):
        yield TrainState(s.step, s.W[0], None if s.K is None else s.K[0], None if s.Q is None else s.Q[0],
                         s.probs[0], s.loss[0], s.grad_norm[0])
