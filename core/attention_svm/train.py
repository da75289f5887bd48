"""(Normalized) gradient descent on the one-layer attention model, in float64, batched over problems."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import partial

import numpy as np
import torch

from core.attention_svm.problem import DTYPE, Problem, check_problem
from core.errors import OptiscopeError, check_budget, check_choice, check_int, check_positive, check_seed

EPS = torch.finfo(torch.float64).eps  # 2.2e-16, the reference implementation's epsilon
PARAMS = {"w": "W (one d×d matrix)", "kq": "(K, Q), W = KᵀQ"}
STEP_BUDGET = 10**9  # token-steps steps·B·n·T·d: about a minute on one CPU core


@dataclass(frozen=True)
class TrainState:
    """One step of `run` (every field gains a leading batch dim B when `run` is given several problems).

    Shapes:
        W: (d, d) effective attention matrix (KᵀQ for "kq"); K, Q: (d, d) or None for "w";
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

    def preview(self) -> TrainState:
        """This state for a live view: on the CPU, without the factors K, Q (W = KᵀQ is kept)."""
        cpu = {"W": self.W.cpu(), "probs": self.probs.cpu(), "loss": self.loss.cpu(), "grad_norm": self.grad_norm.cpu()}
        return dataclasses.replace(self, K=None, Q=None, **cpu)


# The loop runs on the host in numpy: a problem is at most a few thousand float64 numbers, where numpy's
# ~1 µs per op beats torch's dispatch (measured 0.12 vs 0.47 ms per step on the busy 2-core CPU) and a GPU
# kernel launch per op would be slower still. States are placed on the problem's device as they are yielded.


def forward(X, z, values, y, W) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Softmax, model output and loss for arrays with any leading batch dims (…): X (…,n,T,d), z (…,n,d),
    values (…,n,T), y (…,n), W (…,d,d)."""
    Wz = z @ np.swapaxes(W, -1, -2)  # rows (W z_i)ᵀ, (…, n, d)
    logits = (X @ Wz[..., None])[..., 0]  # x_itᵀ W z_i, (…, n, T)
    e = np.exp(logits - logits.max(-1, keepdims=True))
    probs = e / e.sum(-1, keepdims=True)
    f = (probs * values).sum(-1)  # (…, n)
    loss = np.logaddexp(0.0, -y * f).mean(-1)  # log(1 + e^{-y f}) without overflow, (…,)
    return probs, f, loss


def loss_grad(X, z, values, y, W) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Closed-form ∇_W L, shape (…, d, d), with probs and loss: dL/da_it = dL/df_i · s_it (h_it − f_i)."""
    probs, f, loss = forward(X, z, values, y, W)
    dloss_df = -y / (1 + np.exp(y * f)) / y.shape[-1]  # (…, n)
    g = dloss_df[..., None] * probs * (values - f[..., None])  # (…, n, T)
    Xg = (g[..., None, :] @ X)[..., 0, :]  # X_iᵀ g_i, (…, n, d)
    return np.swapaxes(Xg, -1, -2) @ z, probs, loss


def factor_grads(grad, K, Q, decay: float) -> tuple[np.ndarray, np.ndarray]:
    """∇ of L(KᵀQ) + decay·(‖K‖² + ‖Q‖²) from G = ∇_W L: ∇K = Q Gᵀ + 2 decay K, ∇Q = K G + 2 decay Q."""
    return Q @ np.swapaxes(grad, -1, -2) + 2 * decay * K, K @ grad + 2 * decay * Q


def _frobenius_sq(A: np.ndarray) -> np.ndarray:
    return (A * A).sum((-1, -2))


def _direction(grad: np.ndarray, normalized: bool, eps: float) -> np.ndarray:
    """∇/(‖∇‖_F + eps) per batch member when `normalized`, else ∇; an exactly zero ∇ (a float64 one-hot
    softmax) gives no step rather than 0/0."""
    if not normalized:
        return grad
    norm = np.sqrt(_frobenius_sq(grad))[..., None, None] + eps
    return grad / np.where(norm > 0, norm, 1.0)


def _stack(problem: Problem | Sequence[Problem], device) -> tuple[tuple[np.ndarray, ...], torch.device]:
    """(X, z, values, y) as host arrays, with a leading batch dim B for a list of B problems, and the device."""
    single = isinstance(problem, Problem)
    problems = [problem] if single else list(problem) if isinstance(problem, Sequence) else []
    if not problems:
        raise OptiscopeError(f"Expected a `problem` (or a non-empty list of them), but got {problem!r}")
    problems = [check_problem(p) for p in problems]
    shapes = {tuple(p.X.shape) for p in problems}
    if len(shapes) != 1:
        raise OptiscopeError(f"Expected problems of one shape (n, T, d), but got {sorted(shapes)}")
    device = problems[0].X.device if device is None else problems[0].to(device).X.device
    arrays = [[getattr(p, a).cpu().numpy() for p in problems] for a in ("X", "z", "values", "y")]
    return tuple(a[0] if single else np.stack(a) for a in arrays), device


def _check_init(init, batch: tuple[int, ...], d: int) -> np.ndarray | None:
    if init is None:
        return None
    try:
        W0 = torch.as_tensor(init, dtype=DTYPE).cpu().numpy()
        ok = W0.shape[-2:] == (d, d) and W0.ndim <= 2 + len(batch) and bool(np.isfinite(W0).all())
        W0 = np.broadcast_to(W0, (*batch, d, d)).copy() if ok else W0
    except (TypeError, ValueError, RuntimeError):
        ok = False
    if not ok:
        raise OptiscopeError(f"Expected a finite `init` of shape {(*batch, d, d)} or {(d, d)}, but got {init!r}")
    return W0


def _initial(batch: tuple[int, ...], d: int, param: str, seed: int, init: np.ndarray | None):
    """(W, K, Q) at step 0: nn.Linear's default init U(-1/√d, 1/√d) from a seeded generator, one draw per
    batch member; or `init`, for "kq" as a balanced factorization KᵀQ = init (via the SVD)."""
    if init is None:
        g = torch.Generator().manual_seed(seed)
        draws = [((torch.rand((*batch, d, d), generator=g, dtype=DTYPE) * 2 - 1) / d**0.5).numpy() for _ in param]
        if param == "w":
            return draws[0], None, None
        Q, K = draws  # the notebook builds `query` before `key`
    elif param == "w":
        return init, None, None
    else:
        U, S, Vh = np.linalg.svd(init)
        root = np.sqrt(S)[..., None]
        K, Q = root * np.swapaxes(U, -1, -2), root * Vh
    return np.swapaxes(K, -1, -2) @ Q, K, Q


def run(
    problem: Problem | Sequence[Problem],
    *,
    param: str = "w",
    steps: int = 2000,
    lr: float = 0.1,
    normalized: bool = True,
    conventions: bool = True,
    init=None,
    seed: int = 0,
    device: torch.device | str | None = None,
) -> Iterator[TrainState]:
    """Transformers as SVMs (Att-SVM): https://arxiv.org/abs/2308.16898 — gradient descent on attention.

    Yields the state before the first step and after each of `steps` steps (so `steps + 1` states).
    Validated when called; the budget is STEP_BUDGET token-steps steps·B·n·T·d.

    Args:
        problem (`Problem` or a list of them): from `make_problem` or `from_arrays`; a list (one shape) is
            trained as a batch, member b from the b-th draw of one seeded generator.
        param (`str`, defaults to `"w"`): `"w"` trains W; `"kq"` trains K, Q with W = KᵀQ (m = d).
        steps (`int`, defaults to `2000`). lr (`float`, defaults to `0.1`): step size η > 0.
        normalized (`bool`, defaults to `True`): step along ∇/‖∇‖ (K and Q normalized separately), else ∇.
        conventions (`bool`, defaults to `True`): the reference implementation's two numerical conventions,
            ‖∇‖ + ε in the normalized step and a weight decay ε(‖K‖² + ‖Q‖²) for "kq", with ε = 2.2e-16.
            Off: divide by ‖∇‖ alone and no decay (after saturation the step follows rounding noise).
        init (`array`, optional): a d×d starting W (for "kq" a balanced factorization of it).
        seed (`int`, defaults to `0`): seeds the init U(-1/√d, 1/√d) (nn.Linear's default).
        device (`torch.device`, optional): where the states' tensors live; defaults to the problem's device.
            The loop itself runs on the host (see the note above `forward`).

    Shapes:
        state.W: (d, d), state.probs: (n, T), state.loss: (); with B problems each gains a leading B.

    >>> from core.attention_svm.problem import make_problem
    >>> states = list(run(make_problem(seed=0), param="kq", steps=3))
    >>> len(states), tuple(states[-1].W.shape), states[-1].W.dtype
    (4, (10, 10), torch.float64)
    >>> last = list(run([make_problem(seed=s) for s in range(3)], steps=5))[-1]
    >>> tuple(last.W.shape), tuple(last.probs.shape)
    ((3, 10, 10), (3, 6, 8))
    """
    check_choice("param", param, PARAMS)
    steps, seed = check_int("steps", steps, 1), check_seed(seed)
    lr = check_positive("lr", lr)
    data, device = _stack(problem, device)
    work = steps * data[0].size
    check_budget("token-steps steps·B·n·T·d", work, STEP_BUDGET, hint="Use fewer steps or a smaller problem.")
    batch, d = data[0].shape[:-3], data[0].shape[-1]
    init = _check_init(init, batch, d)
    eps = EPS if conventions else 0.0  # step denominator ‖∇‖ + eps, and (K, Q) weight decay λ = eps
    return _loop(data, device, partial(_initial, batch, d, param, seed, init), steps, lr, bool(normalized), eps)


def _loop(data, device, initial, steps, lr, normalized, eps) -> Iterator[TrainState]:
    W, K, Q = initial()
    for k in range(steps + 1):
        G, probs, loss = loss_grad(*data, W)
        if K is not None:  # L(KᵀQ) + λ(‖K‖² + ‖Q‖²), K and Q normalized separately as in the notebook
            loss = loss + eps * (_frobenius_sq(K) + _frobenius_sq(Q))
            gK, gQ = factor_grads(G, K, Q, eps)
        grads = (G,) if K is None else (gK, gQ)
        grad_norm = np.sqrt(sum(_frobenius_sq(g) for g in grads))
        yield _state(k, device, W, K, Q, probs, loss, grad_norm)
        if k == steps:
            return
        if K is None:
            W = W - lr * _direction(G, normalized, eps)
        else:
            K, Q = K - lr * _direction(gK, normalized, eps), Q - lr * _direction(gQ, normalized, eps)
            W = np.swapaxes(K, -1, -2) @ Q


def _state(step: int, device: torch.device, *arrays) -> TrainState:
    # every array is freshly allocated each step, so the (zero-copy on the CPU) tensors are never written again
    return TrainState(step, *(None if a is None else torch.from_numpy(np.asarray(a)).to(device) for a in arrays))
