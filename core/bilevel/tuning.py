r"""Regularization tuning, the implicit differentiation paper's first example: https://arxiv.org/abs/2105.15183

Inner problem: ``w*(θ) = argmin_w ℓ_train(w) + ½ e^θ ‖w‖²`` (ridge: ``ℓ = ½ mean(res²)``; logistic:
``ℓ = mean log(1 + e^{−y xᵀw})``). Outer: the validation loss (ridge: ``mean(res²)``; logistic: the
mean log-loss) as a function of ``θ = log λ``. The inner solver is gradient descent with step ``1/L``;
the hypergradient ``dL_val/dθ`` comes by the implicit function theorem at the k-th iterate, by
unrolling the same k iterations, or by central finite differences of the same truncated solver.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch

from core.bilevel.checks import check_tensor
from core.bilevel.implicit import RootSpec, custom_root, unrolled
from core.errors import OptiscopeError, check_budget, check_choice, check_int, check_positive, check_range

TASKS = {
    "ridge": "Ridge regression, diabetes (10 features)",
    "logistic": "L2 logistic regression, breast cancer (30 features)",
}
METHODS = {
    "implicit": "implicit (IFT at w_k)",
    "unrolled": "unrolled (backprop through k steps)",
    "finite_difference": "finite difference of the k-step solver",
}
CG = RootSpec(solve="cg")  # the inner Hessian is symmetric positive definite
THETA_RANGE = (-30.0, 30.0)  # θ = log λ: λ from 1e-13 to 1e13
MAX_THETAS = 1000  # points of a validation curve
MAX_STEPS = 20_000
MAX_TOTAL_STEPS = 6000  # per error table: each count runs the solver five times (implicit, unrolled, FD ×2, distance)  # inner GD iterations per hypergradient (unrolling stores every one)


@dataclass(frozen=True)
class Task:
    """A bundled dataset split into train / validation, standardized, and the loss family that tunes it."""

    kind: str  # "ridge" or "logistic"
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor

    def __post_init__(self) -> None:
        check_choice("kind", self.kind, tuple(TASKS))
        x, xv = check_tensor("x_train", self.x_train, dims=(2,)), check_tensor("x_val", self.x_val, dims=(2,))
        y, yv = check_tensor("y_train", self.y_train, dims=(1,)), check_tensor("y_val", self.y_val, dims=(1,))
        if {t.dtype for t in (x, xv, y, yv)} not in ({torch.float32}, {torch.float64}):
            raise OptiscopeError(
                f"Expected the task's tensors all float32 or all float64, but got {x.dtype}, {y.dtype}"
            )
        if len(x) != len(y) or len(xv) != len(yv) or x.shape[1] != xv.shape[1] or len(x) == 0 or len(xv) == 0:
            raise OptiscopeError(
                f"Expected x_train (n, d), y_train (n,), x_val (m, d), y_val (m,) with n, m >= 1, but got "
                f"{tuple(x.shape)}, {tuple(y.shape)}, {tuple(xv.shape)}, {tuple(yv.shape)}"
            )


@lru_cache(maxsize=4)
def _arrays(kind: str) -> tuple[np.ndarray, ...]:
    from sklearn.datasets import load_breast_cancer, load_diabetes
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    x, y = load_diabetes(return_X_y=True) if kind == "ridge" else load_breast_cancer(return_X_y=True)
    if kind == "logistic":
        y = 2.0 * y - 1.0  # labels ±1
    # the JAXopt example's split; StandardScaler (not row normalization) keeps the problem non-trivial (cond ≈ 162)
    return tuple(train_test_split(StandardScaler().fit_transform(x), y, test_size=0.33, random_state=0))


def load_task(kind: str, *, dtype: torch.dtype = torch.float64, device: torch.device | str | None = None) -> Task:
    """The train / validation split of ``kind`` (a key of :data:`TASKS`) as tensors.

    >>> load_task("ridge").x_train.shape
    torch.Size([296, 10])
    """
    check_choice("kind", kind, tuple(TASKS))
    x_train, x_val, y_train, y_val = (torch.as_tensor(a, dtype=dtype, device=device) for a in _arrays(kind))
    return Task(kind, x_train, y_train, x_val, y_val)


def inner_gradient(w: torch.Tensor, theta: torch.Tensor, x: torch.Tensor, y: torch.Tensor, kind: str) -> torch.Tensor:
    """The optimality mapping ``F(w, θ) = ∇_w [ℓ_train(w) + ½ e^θ ‖w‖²]`` (zero at ``w*(θ)``)."""
    if kind == "ridge":
        data = x.T @ (x @ w - y) / len(y)
    else:
        data = -x.T @ (y * torch.sigmoid(-y * (x @ w))) / len(y)
    return data + theta.exp() * w


def validation_loss(task: Task, w: torch.Tensor) -> torch.Tensor:
    """Ridge: ``mean((X_val w − y_val)²)``; logistic: ``mean log(1 + e^{−y xᵀw})`` on the validation split."""
    margin = task.x_val @ w
    if task.kind == "ridge":
        return ((margin - task.y_val) ** 2).mean()
    return torch.nn.functional.softplus(-task.y_val * margin).mean()


def step_size(task: Task, theta: float) -> float:
    """``1/L`` for the inner loss: ``L = λ_max(XᵀX)/n · (1 or ¼) + e^θ``."""
    curvature = torch.linalg.eigvalsh(task.x_train.T @ task.x_train)[-1] / len(task.y_train)
    return 1.0 / (float(curvature) * (1.0 if task.kind == "ridge" else 0.25) + float(np.exp(theta)))


def _gd_step(task: Task, lr: float):
    def step(w: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
        return w - lr * inner_gradient(w, theta, task.x_train, task.y_train, task.kind)

    return step


def inner_solve(task: Task, theta: float, steps: int) -> torch.Tensor:
    """``steps`` gradient-descent iterations from ``w = 0`` with step ``1/L`` (no autograd)."""
    check_int("steps", steps, low=0, high=MAX_STEPS)
    step = _gd_step(task, step_size(task, theta))
    with torch.no_grad():
        return unrolled(
            step, task.x_train.new_zeros(task.x_train.shape[1]), task.x_train.new_tensor(theta), steps=steps
        )


def exact_solution(task: Task, theta: float) -> torch.Tensor:
    """``w*(θ)`` to machine precision: a linear solve (ridge) or Newton's method (logistic)."""
    x, y, lam = task.x_train, task.y_train, float(np.exp(theta))
    eye = torch.eye(x.shape[1], dtype=x.dtype, device=x.device)
    if task.kind == "ridge":
        return torch.linalg.solve(x.T @ x / len(y) + lam * eye, x.T @ y / len(y))
    w = x.new_zeros(x.shape[1])
    for _ in range(50):
        p = torch.sigmoid(x @ w)
        hessian = (x.T * (p * (1 - p))) @ x / len(y) + lam * eye
        delta = torch.linalg.solve(hessian, inner_gradient(w, x.new_tensor(theta), x, y, task.kind))
        w = w - delta
        if float(delta.norm()) < 1e-14 * (1.0 + float(w.norm())):
            break
    return w


def closed_form_hypergradient(task: Task, theta: float) -> float:
    r"""Ridge only: ``dL_val/dθ = ∇L_valᵀ dw*/dθ`` with ``dw*/dθ = −(XᵀX/n + λI)⁻¹ λ w*`` (no autograd)."""
    if task.kind != "ridge":
        raise OptiscopeError(f"Expected the 'ridge' task for a closed-form hypergradient, but got {task.kind!r}")
    x, lam = task.x_train, float(np.exp(theta))
    a = x.T @ x / len(task.y_train) + lam * torch.eye(x.shape[1], dtype=x.dtype, device=x.device)
    w = torch.linalg.solve(a, x.T @ task.y_train / len(task.y_train))
    dw = -torch.linalg.solve(a, lam * w)
    grad_val = 2.0 * task.x_val.T @ (task.x_val @ w - task.y_val) / len(task.y_val)
    return float(grad_val @ dw)


def exact_hypergradient(task: Task, theta: float) -> float:
    """The closed form (ridge) or the implicit hypergradient at Newton's solution with a dense solve (logistic)."""
    if task.kind == "ridge":
        return closed_form_hypergradient(task, theta)
    return hypergradient(
        task, theta, method="implicit", steps=0, init=exact_solution(task, theta), spec=RootSpec(solve="dense")
    )


def hypergradient(
    task: Task,
    theta: float,
    *,
    method: str = "implicit",
    steps: int = 100,
    spec: RootSpec = CG,
    h: float = 1e-5,
    init: torch.Tensor | None = None,
) -> float:
    """``dL_val/dθ`` from ``steps`` inner GD iterations (from ``init``, default 0), by ``method`` (a key of :data:`METHODS`).

    >>> task = load_task("ridge")
    >>> round(hypergradient(task, -4.0, steps=20_000), 6), round(closed_form_hypergradient(task, -4.0), 6)
    (-58.997237, -58.997237)
    """
    check_choice("method", method, tuple(METHODS))
    check_int("steps", steps, low=0, high=MAX_STEPS)
    _check_task_theta(task, theta)
    check_positive("h", h)
    x, y, kind = task.x_train, task.y_train, task.kind
    step = _gd_step(task, step_size(task, theta))  # the step size is a constant of the solver, not differentiated
    w0 = x.new_zeros(x.shape[1]) if init is None else init
    if method == "finite_difference":
        ends = [validation_loss(task, unrolled(step, w0, x.new_tensor(theta + s), steps=steps)) for s in (h, -h)]
        return float((ends[0] - ends[1]) / (2 * h))
    t = x.new_tensor(theta, requires_grad=True)
    with torch.enable_grad():
        if method == "unrolled":
            w = unrolled(step, w0, t, steps=steps)
        else:
            solver = custom_root(inner_gradient, spec=spec)(
                lambda init_, t_, *_: unrolled(step, init_, t_, steps=steps)
            )
            w = solver(w0, t, x, y, kind)
        loss = validation_loss(task, w)
        if not loss.requires_grad:  # zero unrolled steps: w_0 does not depend on θ
            return 0.0
        (grad,) = torch.autograd.grad(loss, t)
    return float(grad)


@dataclass(frozen=True)
class HypergradientErrors:
    """Relative errors of the three hypergradients against the exact one, per number of inner iterations."""

    steps: np.ndarray  # (K,)
    distance: np.ndarray  # ‖w_k − w*‖, (K,)
    exact: float
    values: dict[str, np.ndarray]  # method -> hypergradient (K,)
    errors: dict[str, np.ndarray]  # method -> |g − g*| / |g*| (K,)


def hypergradient_errors(
    task: Task, theta: float, steps: tuple[int, ...], *, spec: RootSpec = CG
) -> HypergradientErrors:
    """The implicit, unrolled and finite-difference hypergradients at each inner iteration count in ``steps``.

    >>> out = hypergradient_errors(load_task("ridge"), -4.0, (100, 1000))
    >>> bool((out.errors["implicit"] < out.errors["unrolled"]).all())
    True
    """
    if not isinstance(steps, (tuple, list)) or not steps:
        raise OptiscopeError(f"Expected `steps` to list at least one inner iteration count, but got {steps!r}")
    for k in steps:
        check_int("steps", k, low=0, high=MAX_STEPS)
    check_budget("inner GD steps in total", sum(steps), MAX_TOTAL_STEPS, hint="Drop the largest counts.")
    _check_task_theta(task, theta)
    exact, w_star = exact_hypergradient(task, theta), exact_solution(task, theta)
    values = {m: np.array([hypergradient(task, theta, method=m, steps=k, spec=spec) for k in steps]) for m in METHODS}
    distance = np.array([float((inner_solve(task, theta, k) - w_star).norm()) for k in steps])
    errors = {m: np.abs(v - exact) / abs(exact) for m, v in values.items()}
    return HypergradientErrors(np.array(steps), distance, exact, values, errors)


def _check_task_theta(task: Task, theta: float) -> None:
    if not isinstance(task, Task):
        raise OptiscopeError(f"Expected `task` from load_task(...), but got {type(task).__name__}")
    check_range("theta", theta, *THETA_RANGE)


def validation_curve(task: Task, thetas: np.ndarray) -> np.ndarray:
    """``L_val(w*(θ))`` at each ``θ = log λ`` of ``thetas`` (exact inner solutions)."""
    thetas = np.asarray(thetas, dtype=float).reshape(-1)
    check_int("number of thetas", len(thetas), high=MAX_THETAS)
    for t in thetas:
        _check_task_theta(task, t)
    return np.array([float(validation_loss(task, exact_solution(task, float(t)))) for t in thetas])
