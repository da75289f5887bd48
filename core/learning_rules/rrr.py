"""Learning with Boolean threshold functions (Elser, Lal): https://arxiv.org/abs/2602.17493

A layered ±1 network whose every node is a Boolean threshold function y = sgn(w·x) (x includes a bias input
fixed at -1) is trained by reflect-reflect-relax (RRR) on a divide-and-concur split:
    A (divide): per item and node, the nearest (w, x, y) with y ∈ {±1} and y·(w·x) >= δ = sqrt(m/3);
    B (concur): one weight vector per node (average over items, rescaled to |w|² = m), each node value equal
        to all its outgoing input copies, inputs and outputs fixed to the data;
    z ← z + β (P_B(2 P_A z - z) - P_A z), stopped when the rms gap |P_B(·) - P_A z| < ``gapstop``.
The concur averages are weighted by a metric g per (item, node), tuned as g ← g + γ(gap/mean gap − g) with
γ = 1e-3 (boolearn's ``train.c``); without it XOR 2-3-1 was solved in 7 of 20 seeds, with it in 20 of 20.
``n_runs`` independent runs (one per seed offset) are batched in the leading dimension.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from itertools import pairwise

import torch

from core.device import generator
from core.errors import OptiscopeError, check_budget, check_int, check_positive, check_range, check_seed
from core.learning_rules.perturbation import check_tensor

ITERATION_BUDGET = 5e9  # runs × items × weights × iterations


def margin_project(w: torch.Tensor, x: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The nearest (w', x') with w'·x' = c: w' = (w + u x)/(1 - u²), x' = (x + u w)/(1 - u²), where u ∈ (-1, 1) solves
    (p(1 + u²) + q u)/(1 - u²)² = c, p = w·x, q = |w|² + |x|² (monotone in u since q >= 2|p|: bisection, then Newton).

    >>> w, x = margin_project(torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0]), torch.tensor(1.0))
    >>> round(float(w @ x), 6)
    1.0
    """
    w, x, c = check_tensor("w", w), check_tensor("x", x), check_tensor("c", c)
    try:
        fits = w.shape == x.shape and torch.broadcast_shapes(c.shape, w.shape[:-1]) == w.shape[:-1]
    except RuntimeError:
        fits = False
    if not fits:
        raise OptiscopeError(
            f"Expected `w` and `x` of one shape (..., m) and `c` of a shape that broadcasts to (...), but got "
            f"{tuple(w.shape)}, {tuple(x.shape)} and {tuple(c.shape)}"
        )
    return _margin_project(w, x, c)


def _margin_project(w: torch.Tensor, x: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    p, q = (w * x).sum(-1), (w * w + x * x).sum(-1)
    lo, hi = torch.full_like(p, -1.0), torch.full_like(p, 1.0)
    for _ in range(24):
        u = (lo + hi) / 2
        above = (p * (1 + u * u) + q * u) / (1 - u * u) ** 2 > c
        hi, lo = torch.where(above, u, hi), torch.where(above, lo, u)
    u = (lo + hi) / 2
    for _ in range(4):  # polish: Newton from a bracket of width 2^-23 lands at machine precision
        den = 1 - u * u
        f = (p * (1 + u * u) + q * u) / den**2 - c
        df = (q * (1 + 3 * u * u) + 2 * p * u * (3 + u * u)) / den**3
        step = torch.nan_to_num(f / df, nan=0.0, posinf=0.0, neginf=0.0)
        u = torch.where((u - step).abs() < 1, u - step, u)
    den = (1 - u * u).unsqueeze(-1)
    return (w + u.unsqueeze(-1) * x) / den, (x + u.unsqueeze(-1) * w) / den


@dataclass(frozen=True)
class RRRState:
    """One iteration: rms gap per run (R,), its weight/input/value parts (R, 3), which runs are solved (R,) and at
    which iteration (R,; 0 while unsolved), the concur weights per layer [(R, n_l, m_l)] and the training accuracy of
    sign inference per run (R,)."""

    step: int
    gap: torch.Tensor
    gap_parts: torch.Tensor
    solved: torch.Tensor
    solved_at: torch.Tensor
    weights: tuple[torch.Tensor, ...]
    accuracy: torch.Tensor


def _project_a(z: list[dict[str, torch.Tensor]], delta: list[float]) -> list[dict[str, torch.Tensor]]:
    out = []
    for layer, d in zip(z, delta, strict=True):
        w, x, y = layer["w"], layer["x"], layer["y"]
        sign = torch.tensor([1.0, -1.0], dtype=y.dtype, device=y.device).view(2, *[1] * y.dim())  # both y = ±1 at once
        ok = (sign * (w * x).sum(-1) >= d).unsqueeze(-1)  # (2, ..., 1): the margin already holds
        w2, x2 = _margin_project(w, x, (sign * d).expand(2, *y.shape))
        w2, x2 = torch.where(ok, w, w2), torch.where(ok, x, x2)
        cost = (w2 - w).pow(2).sum(-1) + (x2 - x).pow(2).sum(-1) + (sign - y) ** 2
        cost = torch.nan_to_num(cost, nan=torch.inf)  # w = -x admits no point with w'·x' > 0 on this path
        plus = (cost[0] <= cost[1]).unsqueeze(-1)
        out.append(
            {
                "w": torch.where(plus, w2[0], w2[1]),
                "x": torch.where(plus, x2[0], x2[1]),
                "y": torch.where(plus[..., 0], 1.0, -1.0).to(y),
            }
        )
    return out


def _project_b(
    z, inputs: torch.Tensor, targets: torch.Tensor, metric: list[torch.Tensor]
) -> list[dict[str, torch.Tensor]]:
    out = []
    for layer, g in zip(z, metric, strict=True):
        m = layer["w"].shape[-1]
        gw = g.unsqueeze(-1)  # (R, I, n, 1): the metric weighs each (item, node)'s copy
        w = (layer["w"] * gw).sum(1, keepdim=True) / gw.sum(1, keepdim=True)  # (R, 1, n, m): one vector per node
        w = w * (m**0.5 / w.norm(dim=-1, keepdim=True).clamp_min(1e-12))
        out.append({"w": w.expand_as(layer["w"]).clone(), "x": layer["x"].clone(), "y": layer["y"].clone()})
    out[0]["x"][..., :-1] = inputs.unsqueeze(-2)  # (R, I, n_1, n_0): the data, copied to every first-layer node
    for layer in out:
        layer["x"][..., -1] = -1.0  # bias input
    for k in range(len(out) - 1):
        # node values of layer k concur with their copies in layer k+1: the average of 1 + n_{k+1} numbers
        copies = out[k + 1]["x"][..., :-1]  # (R, I, n_{k+1}, n_k)
        g_self, g_next = metric[k], metric[k + 1].unsqueeze(-1)  # (R, I, n_k), (R, I, n_{k+1}, 1)
        mean = (g_self * out[k]["y"] + (g_next * copies).sum(-2)) / (g_self + g_next.sum(-2))
        out[k]["y"] = mean
        out[k + 1]["x"][..., :-1] = mean.unsqueeze(-2).expand_as(copies)
    out[-1]["y"] = targets.expand_as(out[-1]["y"]).clone()
    return out


def infer(weights: tuple[torch.Tensor, ...], inputs: torch.Tensor) -> torch.Tensor:
    """Sign inference: ±1 inputs (I, n_0) through sgn(w·[h, -1]) with weights (R, n_l, m_l) -> (R, I, n_L)."""
    h = inputs.to(weights[0].dtype).unsqueeze(0).expand(weights[0].shape[0], *inputs.shape)
    for w in weights:
        h = torch.cat([h, -torch.ones_like(h[..., :1])], -1)
        h = torch.where(h @ w.transpose(-1, -2) >= 0, 1.0, -1.0).to(w.dtype)
    return h


def run(
    inputs: torch.Tensor,
    targets: torch.Tensor,
    *,
    hidden: tuple[int, ...] = (3,),
    beta: float = 0.2,
    gapstop: float = 0.01,
    steps: int = 1000,
    every: int = 1,
    n_runs: int = 1,
    seed: int = 0,
) -> Iterator[RRRState]:
    """Train a ±1 threshold network by RRR (Elser & Lal): https://arxiv.org/abs/2602.17493

    Args:
        inputs (`torch.Tensor`): (I, n_0) Boolean data as ±1. targets (`torch.Tensor`): (I, n_L) as ±1.
        hidden (`tuple[int]`, defaults to `(3,)`): hidden widths (XOR on 2-3-1 by default).
        beta (`float`, defaults to `0.2`): RRR step. gapstop (`float`, defaults to `0.01`): solved when gap < it.
        steps (`int`, defaults to `1000`): iterations at most; runs not solved by then are reported unsolved.
        n_runs (`int`, defaults to `1`): independent runs batched together (success rate over seeds).

    Shapes:
        state.gap: (R,); state.weights[l]: (R, n_{l+1}, n_l + 1) with the bias weight last.

    >>> x = torch.tensor([[-1., -1.], [-1., 1.], [1., -1.], [1., 1.]])
    >>> last = list(run(x, -(x[:, :1] * x[:, 1:]), steps=1000))[-1]
    >>> bool(last.solved.all()), float(last.accuracy[0])
    (True, 1.0)
    """
    inputs, targets = _check_boolean("inputs", inputs), _check_boolean("targets", targets)
    if inputs.dim() != 2 or targets.dim() != 2 or len(inputs) != len(targets):
        raise OptiscopeError(
            f"Expected `inputs` (I, n_0) and `targets` (I, n_L), but got {tuple(inputs.shape)} and {tuple(targets.shape)}"
        )
    hidden = tuple(check_int("hidden", h, 1, 256) for h in hidden)
    beta, gapstop = check_range("beta", beta, 1e-3, 1.0), check_positive("gapstop", gapstop)
    steps, every, n_runs = check_int("steps", steps), check_int("every", every), check_int("n_runs", n_runs, 1, 1000)
    widths = (inputs.shape[1], *hidden, targets.shape[1])
    n_weights = sum((a + 1) * b for a, b in pairwise(widths))
    check_budget("run·item·weight·iterations", n_runs * len(inputs) * n_weights * steps, ITERATION_BUDGET)
    return _loop(inputs.double(), targets.double(), widths, beta, gapstop, steps, every, n_runs, check_seed(seed))


def _check_boolean(name: str, t: torch.Tensor) -> torch.Tensor:
    if not isinstance(t, torch.Tensor) or t.numel() == 0 or not bool(((t == 1) | (t == -1)).all()):
        raise OptiscopeError(f"Expected `{name}` to be a non-empty tensor of ±1 Boolean values, but got {t!r}")
    return t


def _init(widths, n_items: int, n_runs: int, g: torch.Generator, device) -> list[dict[str, torch.Tensor]]:
    def u(*shape):
        return torch.rand(*shape, generator=g, device=device, dtype=torch.float64) * 2 - 1

    return [
        {
            "w": u(n_runs, n_items, n_out, n_in + 1),
            "x": u(n_runs, n_items, n_out, n_in + 1),
            "y": u(n_runs, n_items, n_out),
        }
        for n_in, n_out in pairwise(widths)
    ]


def _loop(inputs, targets, widths, beta, gapstop, steps, every, n_runs, seed, gamma=1e-3) -> Iterator[RRRState]:
    g = generator(seed, inputs.device)
    z = _init(widths, len(inputs), n_runs, g, inputs.device)
    delta = [((n_in + 1) / 3) ** 0.5 for n_in in widths[:-1]]
    n_btf = len(inputs) * sum(widths[1:])
    solved = torch.zeros(n_runs, dtype=torch.bool, device=inputs.device)
    solved_at = torch.zeros(n_runs, dtype=torch.long, device=inputs.device)
    metric = [torch.ones_like(layer["y"]) for layer in z]
    for k in range(1, steps + 1):
        pa = _project_a(z, delta)
        pb = _project_b([{n: 2 * a[n] - b[n] for n in a} for a, b in zip(pa, z, strict=True)], inputs, targets, metric)
        metric = _tune_metric(metric, pa, pb, gamma)
        parts = torch.stack(
            [sum((b[n] - a[n]).pow(2).flatten(1).sum(1) for a, b in zip(pa, pb, strict=True)) for n in ("w", "x", "y")],
            -1,
        )  # (R, 3)
        gap = (parts.sum(-1) / n_btf).sqrt()
        active = ~solved
        z = [
            {n: torch.where(_bcast(active, z_l[n]), z_l[n] + beta * (b[n] - a[n]), z_l[n]) for n in z_l}
            for z_l, a, b in zip(z, pa, pb, strict=True)
        ]
        solved_at = torch.where(~solved & (gap < gapstop), k, solved_at)
        solved = solved | (gap < gapstop)
        done = bool(solved.all()) or k == steps
        if k % every == 0 or done:
            weights = tuple(layer["w"][:, 0] for layer in pb)
            acc = (infer(weights, inputs) == targets).all(-1).double().mean(-1)
            yield RRRState(k, gap, (parts / n_btf).sqrt(), solved.clone(), solved_at.clone(), weights, acc)
        if done:
            return


def _tune_metric(metric, pa, pb, gamma: float) -> list[torch.Tensor]:
    """g ← g + γ (gap / mean gap − g) per (item, node): weigh more the constraints RRR keeps failing."""
    gaps = [
        sum((b[n] - a[n]).pow(2).reshape(*b["y"].shape, -1).sum(-1) for n in ("w", "x", "y")).sqrt()
        for a, b in zip(pa, pb, strict=True)
    ]
    mean = torch.cat([g.flatten(1) for g in gaps], 1).mean(1).clamp_min(1e-12).view(-1, 1, 1)  # (R, 1, 1)
    return [g + gamma * (gap / mean - g) for g, gap in zip(metric, gaps, strict=True)]


def _bcast(mask: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return mask.view(-1, *([1] * (like.dim() - 1)))
