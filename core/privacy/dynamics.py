"""The private training loop: DIFF2-GD (and DP-GD, its T = 1 case) as an iterator of states."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import torch

from core.device import generator
from core.errors import OptiscopeError, check_budget, check_choice, check_int, check_seed
from core.privacy.accountant import calibrate, ledger
from core.privacy.config import DEFAULT_CONFIG, GRADIENT_BUDGET, MAX_ROUNDS, PrivateConfig
from core.privacy.data import MODELS, TASKS, Dataset, init_parameters, n_parameters, per_sample_gradients


@dataclass(frozen=True)
class PrivateState:
    """Round r: the iterate x_r, the true loss and gradient there, and the server's private estimate v_r.

    Shapes:
        params: (D,)
    """

    step: int  # the round r, from 0
    loss: float  # f(x_r) on all samples
    grad_norm: float  # ‖∇f(x_r)‖
    error: float  # ‖v_r − ∇f(x_r)‖², the estimate's squared error
    epsilon: float  # ε spent after releasing v_r (opacus RDP accountant; inf when not private)
    restart: bool  # v_r was a full private gradient (r mod T = 0)
    diverged: bool  # the loss or the estimate is no longer finite: the run stops here
    params: torch.Tensor


def clip(vectors: torch.Tensor, bound: float) -> torch.Tensor:
    """Each row scaled to norm at most ``bound``: v · min(1, bound/‖v‖) (``inf`` leaves it alone).

    Shapes:
        vectors: (N, D) -> (N, D)

    >>> clip(torch.tensor([[3.0, 4.0], [0.3, 0.4]]), 1.0)
    tensor([[0.6000, 0.8000],
            [0.3000, 0.4000]])
    """
    norms = vectors.norm(dim=-1, keepdim=True).clamp_min(torch.finfo(vectors.dtype).tiny)
    return vectors * (bound / norms).clamp(max=1.0)


def run(
    model: str,
    data: Dataset,
    *,
    config: PrivateConfig = DEFAULT_CONFIG,
    steps: int = 300,
    seed: int = 0,
    device: torch.device | str | None = None,
) -> Iterator[PrivateState]:
    r"""DIFF2: differential private optimization via gradient differences (DIFF2): https://arxiv.org/abs/2302.03884

    P clients hold equal shares of ``data``; per-sample gradients g_i come from ``torch.func.vmap(grad)`` (closed form for the logistic model).
    Every T = ``config.restart`` rounds the server receives a full private gradient, in between the private
    mean difference of successive gradients, and keeps the running estimate v:

    .. math::
        v_r = \overline{\mathrm{clip}_c(g_i(x_r))} + \mathcal N(0, (z_1 \tfrac{2c}{N})^2 I)  \quad (r \bmod T = 0)
        v_r = v_{r-1} + \overline{\mathrm{clip}_{c_r}(g_i(x_r) - g_i(x_{r-1}))} + \mathcal N(0, (z_2 \tfrac{2c_r}{N})^2 I)

    with c_r = c₂‖x_r − x_{r−1}‖, then x_{r+1} = x_r − η v_r. The noise multipliers z come from
    :func:`core.privacy.accountant.calibrate` for the target (ε, δ) over ``steps`` rounds; T = 1 is DP-GD.
    The mean over all N = nP samples is the mean of the client means (equal sizes: no batch weighting).

    Args:
        model (`str`): a key of :data:`MODELS` ("logistic" or "mlp").
        data (:class:`Dataset`): features (N, d) and targets (N,).
        config (:class:`PrivateConfig`): ε, δ, c, c₂, T, η, P.
        steps (`int`, defaults to `300`): rounds R. seed, device: the noise (and MLP init) seed; compute device.

    Shapes:
        data.inputs: (N, d) -> state.params: (D,), D = d + 1 or (d + 1)·10 + 11

    >>> from core.privacy.data import load
    >>> states = list(run("logistic", load("unit-logistic", n_samples=1000), steps=3))
    >>> [s.step for s in states], states[0].restart, states[1].restart
    ([0, 1, 2], True, False)
    """
    check_choice("model", model, MODELS)
    if not isinstance(config, PrivateConfig):
        raise OptiscopeError(f"Expected `config` to be a PrivateConfig, but got {type(config).__name__}")
    steps, seed = check_int("steps", steps, 1, MAX_ROUNDS), check_seed(seed)
    inputs, target = _check_data(data, config.n_clients, device)
    size = n_parameters(model, inputs.shape[1])
    check_budget(
        "per-sample gradient entries N·D·rounds",
        inputs.shape[0] * size * steps,
        GRADIENT_BUDGET,
        hint="Use fewer rounds, samples or the logistic model.",
    )
    return _loop(model, inputs, target, data.task, config, steps, seed)


def _check_data(data: Dataset, n_clients: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """Features and targets on ``device``, cut to P equal client shares."""
    if not isinstance(data, Dataset):
        raise OptiscopeError(f"Expected `data` to be a Dataset, but got {type(data).__name__}")
    inputs, target = data.inputs, data.target
    real = all(isinstance(t, torch.Tensor) and t.is_floating_point() for t in (inputs, target))
    if not (real and inputs.dim() == 2 and target.shape == inputs.shape[:1] and inputs.shape[1] > 0):
        raise OptiscopeError(f"Expected real inputs (N, d) and target (N,), but got {_shapes(inputs, target)}")
    if not (torch.isfinite(inputs).all() and torch.isfinite(target).all()):
        raise OptiscopeError("Expected finite `data.inputs` and `data.target`, but got NaN or inf")
    check_choice("data.task", data.task, TASKS)
    n = inputs.shape[0]
    if n_clients > n:
        raise OptiscopeError(f"Expected at most one client per sample, but got `n_clients`={n_clients} for {n} samples")
    kept = n // n_clients * n_clients  # equal shares: n_min enters the noise, so unequal clients would be wrong
    x, y = data.inputs[:kept], data.target[:kept]
    return (x.to(device), y.to(device)) if device is not None else (x, y)


def _loop(model, inputs, target, task, config, steps, seed) -> Iterator[PrivateState]:
    n, d = inputs.shape
    per_sample = per_sample_gradients(model, d, task)
    x = init_parameters(model, d, seed=seed, like=inputs)
    g = generator(seed, inputs.device)
    calibration = (
        calibrate(config.epsilon, config.delta, rounds=steps, restart=config.restart) if config.private else None
    )
    spent = ledger(calibration, config.delta, config.restart) if calibration else [math.inf] * steps
    x_prev = grads_prev = v = None
    for r in range(steps):
        grads, losses = per_sample(x, inputs, target)  # (N, D), (N,)
        full = r % config.restart == 0
        if full:
            v = clip(grads, config.clip).mean(0) + _noise(g, x, calibration and calibration.z_full, config.clip, n)
        else:
            bound = (
                config.clip_difference * float((x - x_prev).norm())
                if math.isfinite(config.clip_difference)
                else math.inf
            )
            v = (
                v
                + clip(grads - grads_prev, bound).mean(0)
                + _noise(g, x, calibration and calibration.z_difference, bound, n)
            )
        true_grad = grads.mean(0)
        loss, error = losses.mean(), (v - true_grad).pow(2).sum()
        diverged = not bool(torch.isfinite(loss) & torch.isfinite(error))
        yield PrivateState(
            step=r,
            loss=float(loss),
            grad_norm=float(true_grad.norm()),
            error=float(error),
            epsilon=float(spent[r]),
            restart=full,
            diverged=diverged,
            params=x.detach().clone(),
        )
        if diverged:
            return
        x_prev, grads_prev, x = x, grads, x - config.lr * v


def _noise(g: torch.Generator, like: torch.Tensor, z: float | None, bound: float, n: int) -> torch.Tensor | float:
    """Gaussian noise of std z · 2·bound/N (replace-one sensitivity of a mean of N clipped vectors); 0 if not private."""
    if z is None or bound == 0:
        return 0.0
    return torch.randn(like.shape, generator=g, device=like.device, dtype=like.dtype) * (z * 2 * bound / n)


def _shapes(*values) -> str:
    return ", ".join(str(tuple(v.shape)) if isinstance(v, torch.Tensor) else type(v).__name__ for v in values)
