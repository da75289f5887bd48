"""Denoising score matching as regression with noisy labels, and the network's neural tangent kernel (NTK).

Neural-network score estimation, optimization and generalization: https://arxiv.org/abs/2401.15604 — at one
noise level σ, DSM fits f(x_σ) ≈ x0 (noisy labels of the exact D*(x_σ) = E[x0 | x_σ]); gradient descent on a
wide two-layer network tracks kernel regression with its NTK, and prolonged training overfits, so early
stopping beats the interpolant. Neural Tangent Kernel: https://arxiv.org/abs/1806.07572.

The network: f(x) = m^{-1/2} Σ_r a_r relu(w_r·u), u = [x/2, 1], a_r ∈ {±1}² fixed and paired ±a_r with equal
w_r (so f₀ = 0); only the w_r train, by full-batch GD on L = (1/2n) Σ ‖f(x_i) − y_i‖² with η = n/λ_max(K).
Kernel GD from 0: f_T = (I − (I − ηK/n)^T) Y on the training points, extended by K(x, X) K⁻¹ f_T.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch.func import functional_call, jacrev, vmap

from core.errors import OptiscopeError, check_budget, check_choice, check_int, check_range, check_seed

KERNELS = {"empirical": "the network's own NTK at initialisation (torch.func)", "infinite": "the infinite-width NTK"}
MAX_WIDTH, MAX_POINTS = 8192, 4000
BUDGET = 2e10  # width × steps × (train + test points)


@dataclass(frozen=True)
class ScoreProblem:
    """DSM at one σ: training pairs (x_σ, x0), a held-out noisy-label set, test points with the exact D*.

    Shapes: inputs, target, truth: (n, 2); val_inputs, val_target: (n, 2); test_inputs, test_truth: (n_test, 2).
    """

    sigma: float
    inputs: torch.Tensor
    target: torch.Tensor  # x0: noisy labels of D*(inputs)
    truth: torch.Tensor  # D*(inputs)
    val_inputs: torch.Tensor
    val_target: torch.Tensor
    test_inputs: torch.Tensor
    test_truth: torch.Tensor

    @property
    def label_noise(self) -> float:
        """E‖x0 − D*(x_σ)‖² on the training points: the floor a fit of D* leaves on the labels."""
        return _mse(self.target, self.truth)


def make_problem(mixture, *, sigma: float = 0.5, n_samples: int = 200, n_test: int = 1000, seed: int = 0):
    """Draw a ``ScoreProblem`` from the 2-D ``mixture`` (its exact denoiser gives D*), on its device, float64."""
    sigma = check_range("sigma", sigma, 1e-3, 100.0)
    n_samples = check_int("n_samples", n_samples, 2, MAX_POINTS)
    n_test = check_int("n_test", n_test, 1, MAX_POINTS)
    seed = check_seed(seed)
    gen = torch.Generator().manual_seed(seed)

    def pairs(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        idx = torch.randint(0, len(mixture.means), (n,), generator=gen)
        x0 = mixture.means.cpu()[idx] + mixture.std * torch.randn((n, 2), generator=gen, dtype=torch.float64)
        x = x0 + sigma * torch.randn((n, 2), generator=gen, dtype=torch.float64)
        return x.to(mixture.device), x0.to(mixture.device)

    (x, x0), (x_val, x0_val), (x_test, _) = pairs(n_samples), pairs(n_samples), pairs(n_test)
    exact = lambda z: mixture.predict_x0(z, sigma, None)  # noqa: E731
    return ScoreProblem(sigma, x, x0, exact(x), x_val, x0_val, x_test, exact(x_test))


def _check_problem(problem: ScoreProblem) -> None:
    if not isinstance(problem, ScoreProblem):
        raise OptiscopeError(f"Expected `problem` to be a ScoreProblem, but got {type(problem).__name__}")
    pairs = {"inputs": "target", "val_inputs": "val_target", "test_inputs": "test_truth", "truth": "inputs"}
    for name, other in pairs.items():
        a, b = getattr(problem, name), getattr(problem, other)
        if a.ndim != 2 or a.shape[1] != 2 or a.shape != b.shape or len(a) < 2:
            raise OptiscopeError(
                f"Expected `problem.{name}` of shape (n >= 2, 2) like `{other}`, but got {tuple(a.shape)}"
            )
        if not (torch.isfinite(a).all() and torch.isfinite(b).all()):
            raise OptiscopeError(f"Expected finite `problem.{name}` and `problem.{other}`, but got NaN or inf")
    if max(len(problem.inputs), len(problem.test_inputs)) > MAX_POINTS:
        raise OptiscopeError(f"Expected at most {MAX_POINTS} points per set, but got {len(problem.test_inputs)}")


def _features(x: torch.Tensor) -> torch.Tensor:
    return torch.cat([x / 2, torch.ones_like(x[:, :1])], dim=1)  # u = [x/2, 1]: (n, 3)


def _mse(f: torch.Tensor, y: torch.Tensor) -> float:
    return (f - y).square().sum(1).mean().item()


class TwoLayer(torch.nn.Module):
    """f(x) = m^{-1/2} Σ_r a_r relu(w_r·u), a fixed in ±pairs so that f₀ = 0; ``w`` (m, 3) is the only parameter."""

    def __init__(self, width: int, seed: int, device: torch.device):
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        half = torch.randn((width // 2, 3), generator=gen, dtype=torch.float64)
        signs = torch.randint(0, 2, (width // 2, 2), generator=gen).double() * 2 - 1
        self.w = torch.nn.Parameter(torch.cat([half, half]).to(device))
        self.register_buffer("a", torch.cat([signs, -signs]).to(device) / math.sqrt(width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(_features(x) @ self.w.T) @ self.a  # (n, 2)


def empirical_ntk(model: TwoLayer, x1: torch.Tensor, x2: torch.Tensor, chunk: int = 256) -> torch.Tensor:
    """The network's NTK Θ(x, x') = J(x) J(x')ᵀ by torch.func (jacrev over the parameters, vmap over points).

    Shapes: x1: (n1, 2), x2: (n2, 2) -> (2·n1, 2·n2), rows ordered (point, output).
    """
    params = {k: v.detach() for k, v in model.named_parameters()}

    def jac(x: torch.Tensor) -> torch.Tensor:
        one = lambda p, xi: functional_call(model, p, (xi[None],))[0]  # noqa: E731
        j = vmap(jacrev(one), in_dims=(None, 0))(params, x)["w"]  # (n, 2, m, 3)
        return j.reshape(len(x) * 2, -1)

    right = jac(x2)
    return torch.cat([jac(x1[i : i + chunk]) @ right.T for i in range(0, len(x1), chunk)])


def infinite_ntk(x1: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
    """The infinite-width NTK of the same network, (u·u')(π − θ)/2π ⊗ I₂, shape (2·n1, 2·n2)."""
    u1, u2 = _features(x1), _features(x2)
    dot = u1 @ u2.T
    cos = dot / (u1.norm(dim=1)[:, None] * u2.norm(dim=1)[None, :])
    k = dot * (math.pi - torch.arccos(cos.clamp(-1, 1))) / (2 * math.pi)
    return torch.kron(k, torch.eye(2, dtype=k.dtype, device=k.device))


class KernelFit:
    """Kernel GD from f = 0 on ``(K, Y)``, solved in K's eigenbasis: the prediction after any T (inf included)."""

    def __init__(self, k_train: torch.Tensor, k_test: torch.Tensor, target: torch.Tensor):
        self.n = len(target)
        self.lam, self.vec = torch.linalg.eigh(k_train)  # ascending
        self.lr = self.n / self.lam[-1].item()  # η = n/λ_max(K)
        self.k_test, self.proj = k_test, self.vec.T @ target.reshape(-1)

    def _gain(self, steps: float) -> torch.Tensor:
        """g_T(λ) = (1 − (1 − ηλ/n)^T)/λ, → ηT/n as λ → 0; the pseudo-inverse's 1/λ at T = ∞."""
        lam = self.lam.clamp_min(0)
        tiny = lam <= 1e-12 * self.lam[-1]
        if math.isinf(steps):
            return torch.where(tiny, 0.0, 1 / lam.clamp_min(1e-300))
        q = (self.lr * lam / self.n).clamp(max=1.0)
        gain = -torch.expm1(steps * torch.log1p(-q)) / lam.clamp_min(1e-300)
        return torch.where(tiny, self.lr * steps / self.n, gain)

    def predict(self, steps: float) -> tuple[torch.Tensor, torch.Tensor]:
        """(train, test) predictions after ``steps`` kernel-GD steps, shapes (n/2... as (n, 2))."""
        alpha = self.vec @ (self._gain(steps) * self.proj)  # K⁻¹ f_T
        train = (self.vec @ (self.lam * self._gain(steps) * self.proj)).reshape(-1, 2)
        return train, (self.k_test @ alpha).reshape(-1, 2)


@dataclass(frozen=True)
class RegressionState:
    """Errors after ``step`` GD steps: mean ‖·‖² over points (2 outputs summed). Scalars only."""

    step: int
    train_mse: float  # network vs its noisy labels x0
    val_mse: float  # network vs held-out noisy labels (its argmin is the early-stopping rule)
    test_error: float  # network vs the exact D* on the test points
    kernel_error: float  # kernel GD at the same step vs D*
    kernel_train_mse: float
    gap: float  # ‖f_net − f_kernel‖ / ‖f_kernel‖ on the test points
    weight_movement: float  # ‖W − W₀‖ / ‖W₀‖


def regress(
    problem: ScoreProblem,
    *,
    width: int = 2048,
    steps: int = 1000,
    every: int = 1,
    kernel: str = "empirical",
    seed: int = 0,
) -> Iterator[RegressionState]:
    r"""Train the two-layer network by full-batch GD on ``problem`` beside its kernel regression.

    Args:
        problem (`ScoreProblem`): from ``make_problem``.
        width (`int`, defaults to `2048`): m, even (neurons come in ±a pairs).
        steps (`int`, defaults to `1000`): GD steps T.
        every (`int`, defaults to `1`): yield every k-th step (and the last).
        kernel (`str`, defaults to `"empirical"`): a key of ``KERNELS``, the kernel the network is compared with.
        seed (`int`, defaults to `0`): the initial weights.

    Budget: width × steps × (train + test points) ≤ 2e10.

    >>> from core.guidance import GaussianMixtureDenoiser
    >>> from core.runs import last_state
    >>> problem = make_problem(GaussianMixtureDenoiser(), n_samples=20, n_test=20)
    >>> last_state(regress(problem, width=64, steps=3)).step
    3
    """
    _check_problem(problem)
    width = check_int("width", width, 2, MAX_WIDTH)
    if width % 2:
        raise OptiscopeError(f"Expected an even `width` (neurons come in ±a pairs), but got {width}")
    steps = check_int("steps", steps, 1, 1_000_000)
    every = check_int("every", every, 1, steps)
    check_choice("kernel", kernel, KERNELS)
    seed = check_seed(seed)
    points = len(problem.inputs) + len(problem.test_inputs)
    check_budget("width × steps × points", width * steps * points, BUDGET, hint="Use fewer steps or a smaller width.")
    return _loop(problem, width, steps, every, kernel, seed)


def _loop(problem: ScoreProblem, width, steps, every, kernel, seed) -> Iterator[RegressionState]:
    model = TwoLayer(width, seed, problem.inputs.device)
    x, x_test = problem.inputs, problem.test_inputs
    if kernel == "empirical":
        fit = KernelFit(empirical_ntk(model, x, x), empirical_ntk(model, x_test, x), problem.target)
    else:
        fit = KernelFit(infinite_ntk(x, x), infinite_ntk(x_test, x), problem.target)
    w0 = model.w.detach().clone()
    opt = torch.optim.SGD(model.parameters(), lr=fit.lr)
    for t in range(1, steps + 1):
        loss = 0.5 * (model(x) - problem.target).square().sum(1).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if t % every == 0 or t == steps:
            yield _state(t, model, fit, problem, w0)


@torch.no_grad()
def _state(t: int, model: TwoLayer, fit: KernelFit, problem: ScoreProblem, w0: torch.Tensor) -> RegressionState:
    f_test = model(problem.test_inputs)
    k_train, k_test = fit.predict(t)
    error = _mse(f_test, problem.test_truth)
    if not math.isfinite(error):
        raise OptiscopeError(f"The network diverged at step {t}")
    return RegressionState(
        step=t,
        train_mse=_mse(model(problem.inputs), problem.target),
        val_mse=_mse(model(problem.val_inputs), problem.val_target),
        test_error=error,
        kernel_error=_mse(k_test, problem.test_truth),
        kernel_train_mse=_mse(k_train, problem.target),
        gap=((f_test - k_test).norm() / k_test.norm().clamp_min(1e-300)).item(),
        weight_movement=((model.w - w0).norm() / w0.norm()).item(),
    )


def kernel_curve(problem: ScoreProblem, steps: list[float], *, width: int | None = None, seed: int = 0) -> list[dict]:
    """Kernel regression's errors against D* after each T in ``steps`` (``math.inf`` = the interpolant).

    ``width`` None = the infinite-width NTK; a width = that network's empirical NTK at initialisation.
    Returns one ``{"step", "train_mse", "test_error"}`` per T.
    """
    _check_problem(problem)
    if not steps or len(steps) > 1000 or any(not (float(t) >= 0) for t in steps):
        raise OptiscopeError(f"Expected `steps` to be step counts >= 0 (inf allowed), but got {steps!r}")
    x, x_test = problem.inputs, problem.test_inputs
    if width is None:
        fit = KernelFit(infinite_ntk(x, x), infinite_ntk(x_test, x), problem.target)
    else:
        width = check_int("width", width, 2, MAX_WIDTH)
        model = TwoLayer(width - width % 2, check_seed(seed), x.device)
        fit = KernelFit(empirical_ntk(model, x, x), empirical_ntk(model, x_test, x), problem.target)
    rows = []
    for t in steps:
        train, test = fit.predict(float(t))
        rows.append(
            {"step": float(t), "train_mse": _mse(train, problem.target), "test_error": _mse(test, problem.test_truth)}
        )
    return rows
