r"""Dataset distillation by implicit differentiation (custom_root's example): https://arxiv.org/abs/2105.15183

Learn one synthetic image per class such that the L2-regularized multiclass logistic regression
trained on those 10 images alone classifies the real training set well. Inner: Newton's method
(warm-started) on ``mean CE(softmax([x, 1] W), class) + ½ l2reg ‖W‖²``; outer: the training set's
cross-entropy at ``W*(images)``; hypergradient: CG on Hessian-vector products plus one VJP
(:func:`core.bilevel.implicit.root_vjp`); update: Adam on the images.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch

from core.bilevel.checks import check_tensor
from core.bilevel.implicit import RootSpec, check_root, root_vjp
from core.device import generator
from core.errors import OptiscopeError, check_budget, check_int, check_positive, check_seed

MAX_STEPS = 2000
NEWTON_STEPS = 30
MAX_HESSIAN = 2e7  # entries of the inner Newton Hessian (160 MB in float64)
CG_FLOAT32 = RootSpec(solve="cg", tol=1e-6)  # float32 CG stalls near 1e-7


@dataclass(frozen=True)
class DistillState:
    """One outer step: the distilled images and how well a model trained on them alone does."""

    step: int
    images: torch.Tensor  # (C, H, W), one per class
    train_loss: float  # outer objective: CE on the real training set at W*(images)
    test_accuracy: float
    hypergradient_norm: float
    cg_iterations: int  # of the implicit linear solve
    newton_steps: int  # of the (warm-started) inner solve


def _features(images: torch.Tensor) -> torch.Tensor:
    flat = images.reshape(len(images), -1)  # (n, H*W)
    return torch.cat([flat, flat.new_ones(len(flat), 1)], dim=1)  # bias column, (n, H*W + 1)


def optimality(weights: torch.Tensor, images: torch.Tensor, l2reg: float) -> torch.Tensor:
    """``∇_W`` of the inner loss on the distilled set (image ``c`` has class ``c``), shaped like ``W``."""
    x = _features(images)
    residual = torch.softmax(x @ weights, dim=1) - torch.eye(len(images), dtype=x.dtype, device=x.device)
    return x.T @ residual / len(images) + l2reg * weights


def _hessian(weights: torch.Tensor, images: torch.Tensor, l2reg: float) -> torch.Tensor:
    x = _features(images)
    p = torch.softmax(x @ weights, dim=1)  # (n, C)
    cov = torch.diag_embed(p) - p.unsqueeze(2) * p.unsqueeze(1)  # (n, C, C)
    h = torch.einsum("na,nb,ncd->acbd", x, x, cov) / len(images)  # (D, C, D, C)
    size = weights.numel()
    return h.reshape(size, size) + l2reg * torch.eye(size, dtype=x.dtype, device=x.device)


def newton(weights: torch.Tensor, images: torch.Tensor, l2reg: float) -> tuple[torch.Tensor, int]:
    """Newton's method on the (strongly convex) inner problem from ``weights``; returns ``(W*, steps)``."""
    tol = 100 * torch.finfo(weights.dtype).eps  # quadratic convergence: the step after this one is rounding noise
    for k in range(1, NEWTON_STEPS + 1):
        grad = optimality(weights, images, l2reg)
        delta = torch.linalg.solve(_hessian(weights, images, l2reg), grad.reshape(-1)).reshape(weights.shape)
        weights = weights - delta
        if float(delta.norm()) <= tol * (1.0 + float(weights.norm())):
            return weights, k
    return weights, NEWTON_STEPS


def _outer(weights: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.cross_entropy(_features(x) @ weights, y)


def _accuracy(weights: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> float:
    return float(((_features(x) @ weights).argmax(1) == y).float().mean())


def distill(
    data: dict[str, torch.Tensor],
    *,
    steps: int = 100,
    lr: float = 0.05,
    l2reg: float = 0.1,
    spec: RootSpec = CG_FLOAT32,
    seed: int = 0,
    every: int = 1,
    device: torch.device | str | None = None,
) -> Iterator[DistillState]:
    r"""Dataset distillation (custom_root): https://arxiv.org/abs/2105.15183

    Args:
        data (`dict`): ``x_train, y_train, x_test, y_test`` as from :func:`core.data.digits.load_digits_split`,
            images (n, H, W), integer classes 0..C−1.
        steps (`int`, defaults to `100`): outer Adam steps.
        lr (`float`, defaults to `0.05`): Adam's step on the images.
        l2reg (`float`, defaults to `0.1`): the inner L2 weight (strong convexity, so ∂F/∂W is invertible).
        spec (`RootSpec`, defaults to CG with tol 1e-6): the implicit linear solve.
        seed (`int`, defaults to `0`): the images start as ``0.1 · N(0, 1)`` noise from this seed.
        every (`int`, defaults to `1`): yield every k-th step (and the last).
        device: where to compute (default: the data's device).

    Shapes:
        data["x_train"]: (n, H, W) -> state.images: (C, H, W)

    >>> from core.data.digits import load_digits_split
    >>> last = list(distill(load_digits_split(), steps=10, every=10))[-1]
    >>> last.step, last.images.shape, last.test_accuracy > 0.8
    (10, torch.Size([10, 8, 8]), True)
    """
    missing = {"x_train", "y_train", "x_test", "y_test"} - set(data)
    if missing:
        raise OptiscopeError(
            f"Expected `data` to hold x_train, y_train, x_test, y_test, but it lacks {sorted(missing)}"
        )
    steps, every, seed = check_int("steps", steps, high=MAX_STEPS), check_int("every", every), check_seed(seed)
    check_positive("lr", lr)
    check_positive("l2reg", l2reg)
    device = device or data["x_train"].device
    x, x_test = (check_tensor(k, data[k], dims=(3,)).to(device) for k in ("x_train", "x_test"))
    y, y_test = (check_tensor(k, data[k], dims=(1,), floating=False).to(device) for k in ("y_train", "y_test"))
    if y.dtype != torch.long or y_test.dtype != torch.long or len(y) != len(x) or len(y_test) != len(x_test):
        raise OptiscopeError("Expected integer class labels `y_train` (n,) and `y_test` (m,) matching the images")
    if x.shape[1:] != x_test.shape[1:] or len(x) == 0 or len(x_test) == 0:
        raise OptiscopeError(
            f"Expected train and test images of one size, but got {tuple(x.shape)}, {tuple(x_test.shape)}"
        )
    classes = int(y.max()) + 1
    if classes < 2 or int(y.min()) < 0 or int(y_test.min()) < 0 or int(y_test.max()) >= classes:
        raise OptiscopeError(f"Expected classes 0..C−1 (C >= 2) in the labels, but got {int(y.min())}..{int(y.max())}")
    check_budget("Newton Hessian entries ((H·W + 1)·C)²", (x[0].numel() + 1) ** 2 * classes**2, MAX_HESSIAN)
    # drawn on the CPU so that a seed gives the same start on every device
    noise = torch.randn((classes, *x.shape[1:]), generator=generator(seed), dtype=x.dtype).to(device)
    return _loop(x, y, x_test, y_test, 0.1 * noise, steps, every, lr, l2reg, spec)


def _loop(x, y, x_test, y_test, images, steps, every, lr, l2reg, spec) -> Iterator[DistillState]:
    images = images.clone().requires_grad_(True)
    adam = torch.optim.Adam([images], lr=lr)  # a fresh optimizer per run: nothing shared between runs
    weights = x.new_zeros(x.shape[1] * x.shape[2] + 1, len(images))  # (D, C), warm start of Newton
    for k in range(steps + 1):
        weights, newton_steps = newton(weights, images.detach(), l2reg)
        check_root(optimality, weights, images.detach(), l2reg, root_tol=1e-4)
        with torch.enable_grad():
            w = weights.detach().requires_grad_(True)
            loss = _outer(w, x, y)
            (v,) = torch.autograd.grad(loss, w)
        grad, solve = root_vjp(optimality, weights, images.detach(), v, l2reg, spec=spec)
        if k % every == 0 or k == steps:
            yield DistillState(
                k,
                images.detach().clone(),
                float(loss.detach()),
                _accuracy(weights, x_test, y_test),
                float(grad.norm()),
                solve.iterations,
                newton_steps,
            )
        if k < steps:
            images.grad = grad
            adam.step()
