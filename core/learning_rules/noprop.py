"""NoProp (discrete time): https://arxiv.org/abs/2503.24322

Each of ``T`` blocks learns, on its own, to denoise a noisy label embedding: block t sees the image and
z_{t-1} ~ q(z_{t-1} | y) = N(sqrt(abar_{t-1}) u_y, (1 - abar_{t-1}) I) and predicts u_y, with loss weight
(T/2)·eta·(SNR(t) - SNR(t-1)). Inference runs the blocks as a diffusion chain from z_0 ~ N(0, I):
z_t = a_t û_t(z_{t-1}, x) + b_t z_{t-1} + sqrt(c_t) eps. The T blocks are stored as stacked (T, ...) weights
and trained with one AdamW: Adam is elementwise, so each block still gets only its own loss's gradient.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from core.device import generator
from core.errors import OptiscopeError, check_budget, check_choice, check_int, check_range, check_seed

METHODS = ("noprop", "backprop_chain", "mlp")
EPOCH_BUDGET = 2_000  # epochs × blocks: keeps one run under about a minute on one CPU core


def schedule(T: int, *, dtype: torch.dtype = torch.float64) -> dict[str, torch.Tensor]:
    """The cosine schedule abar_t = clip(sin²(πt/2T), 1e-3, .999) for t = 0..T and the chain's a_t, b_t, c_t, SNR(t).

    ``a``, ``b``, ``c`` have T entries (t = 1..T); ``abar`` and ``snr`` have T + 1 (t = 0..T).

    >>> s = schedule(10)
    >>> round(float(s["abar"][0]), 4), round(float(s["abar"][-1]), 4)
    (0.001, 0.999)
    """
    T = check_int("T", T, 1, 1000)
    t = torch.arange(T + 1, dtype=dtype)
    abar = torch.sin(math.pi * t / (2 * T)).pow(2).clamp(1e-3, 0.999)
    alpha = abar[:-1] / abar[1:]  # alpha_{t-1} = abar_{t-1} / abar_t
    prev, cur = abar[:-1], abar[1:]
    a = cur.sqrt() * (1 - alpha) / (1 - prev)
    b = alpha.sqrt() * (1 - cur) / (1 - prev)
    c = (1 - cur) * (1 - alpha) / (1 - prev)
    return {"abar": abar, "a": a, "b": b, "c": c, "snr": abar / (1 - abar)}


@dataclass(frozen=True)
class NoPropState:
    """One epoch: per-block losses (T,), the chain's test accuracy (one noise draw and noise-free), each block's
    own accuracy along the noise-free chain (T,), the label embedding z_0..z_T along the noisy chain for the first
    test image of each class (T + 1, ≤ 10 images, 10), and the epoch's training seconds (evaluation excluded)."""

    step: int
    block_losses: torch.Tensor
    accuracy: float
    accuracy_noise_free: float
    block_accuracy: torch.Tensor
    chain_z: torch.Tensor
    seconds: float


def _init_blocks(T: int, width: int, g: torch.Generator, device) -> dict[str, torch.Tensor]:
    def layer(n_in: int, n_out: int) -> tuple[torch.Tensor, torch.Tensor]:
        bound = 1 / math.sqrt(n_in)
        w = (torch.rand(T, n_in, n_out, generator=g, device=device) * 2 - 1) * bound
        return w.requires_grad_(), torch.zeros(T, 1, n_out, device=device, requires_grad=True)

    p = {}
    for name, (n_in, n_out) in {
        "img": (64, width),
        "lab": (10, 64),
        "h": (width + 64, width),
        "out": (width, 10),
    }.items():
        p[f"w_{name}"], p[f"b_{name}"] = layer(n_in, n_out)
    cls = torch.eye(10, device=device).clone().requires_grad_()  # linear head 10→10 on z_T
    p["w_cls"], p["b_cls"] = cls, torch.zeros(10, device=device, requires_grad=True)
    return p


def block_logits(p: dict[str, torch.Tensor], x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """All T blocks at once: x (T, B, 64) or (B, 64), z (T, B, 10) -> logits (T, B, 10)."""
    x = x.expand(z.shape[0], *x.shape[-2:])
    img = torch.relu(torch.baddbmm(p["b_img"], x, p["w_img"]))
    lab = torch.relu(torch.baddbmm(p["b_lab"], z, p["w_lab"]))
    h = torch.relu(torch.baddbmm(p["b_h"], torch.cat([img, lab], -1), p["w_h"]))
    return torch.baddbmm(p["b_out"], h, p["w_out"])


def _block(p, t: int, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    one = {k: v[t : t + 1] for k, v in p.items() if k not in ("w_cls", "b_cls")}
    return block_logits(one, x.unsqueeze(0), z.unsqueeze(0))[0]


def infer(p, x: torch.Tensor, sched, *, noise: bool, g: torch.Generator | None = None) -> tuple[torch.Tensor, ...]:
    """Run the chain: the classifier's logits on z_T, each block's logits (T, B, 10) and z_0..z_T (T + 1, B, 10)."""
    a, b, c = (sched[k].to(x) for k in ("a", "b", "c"))
    z = torch.randn(x.shape[0], 10, generator=g, device=x.device) if noise else x.new_zeros(x.shape[0], 10)
    per_block, path = [], [z]
    for t in range(len(a)):
        logits = _block(p, t, x, z)
        per_block.append(logits)
        u_hat = torch.softmax(logits, -1)  # one-hot embeddings: softmax · W_embed = softmax
        z = a[t] * u_hat + b[t] * z
        if noise:
            z = z + c[t].sqrt() * torch.randn(z.shape, generator=g, device=x.device)
        path.append(z)
    return z @ p["w_cls"] + p["b_cls"], torch.stack(per_block), torch.stack(path)


def _noprop_loss(p, x, y, sched, eta: float, g) -> tuple[torch.Tensor, torch.Tensor]:
    T = len(sched["a"])
    u = F.one_hot(y, 10).float()
    abar = sched["abar"].to(x)
    noise = torch.randn(T, *u.shape, generator=g, device=x.device)
    z_prev = abar[:-1].sqrt().view(T, 1, 1) * u + (1 - abar[:-1]).sqrt().view(T, 1, 1) * noise
    u_hat = torch.softmax(block_logits(p, x, z_prev), -1)  # (T, B, 10)
    weight = (T / 2) * eta * (sched["snr"][1:] - sched["snr"][:-1]).to(x)
    per_block = weight * (u_hat - u).pow(2).sum(-1).mean(-1)  # (T,)
    z_T = abar[-1].sqrt() * u + (1 - abar[-1]).sqrt() * torch.randn(u.shape, generator=g, device=x.device)
    ce = F.cross_entropy(z_T @ p["w_cls"] + p["b_cls"], y)
    return per_block.sum() + ce, per_block.detach()


def _chain_loss(p, x, y, sched, eta: float, g) -> tuple[torch.Tensor, torch.Tensor]:
    _, per_block, _ = infer(p, x, sched, noise=True, g=g)
    loss = F.cross_entropy(per_block[-1], y)  # logits, not softmax·W: a head on probabilities trains very slowly
    return loss, loss.detach().expand(len(sched["a"]))


def _mlp_loss(p, x, y, sched, eta: float, g) -> tuple[torch.Tensor, torch.Tensor]:
    logits = torch.relu(x @ p["w_img"][0] + p["b_img"][0]) @ p["w_out"][0] + p["b_out"][0]
    loss = F.cross_entropy(logits, y)
    return loss, loss.detach().expand(len(sched["a"]))


_LOSSES = {"noprop": _noprop_loss, "backprop_chain": _chain_loss, "mlp": _mlp_loss}


def run(
    data: dict[str, torch.Tensor],
    *,
    method: str = "noprop",
    T: int = 10,
    eta: float = 0.1,
    steps: int = 60,
    width: int = 128,
    lr: float = 1e-3,
    batch_size: int = 128,
    seed: int = 0,
    device: torch.device | str | None = None,
) -> Iterator[NoPropState]:
    """NoProp-DT (NoProp): https://arxiv.org/abs/2503.24322 — train on digits, one state per epoch.

    Args:
        data (`dict`): ``x_train`` (N, 8, 8) or (N, 64), ``y_train`` (N,), ``x_test``, ``y_test`` (labels 0..9).
        method (`str`, defaults to `"noprop"`): ``"noprop"`` (each block denoises alone), ``"backprop_chain"``
            (cross-entropy on the last block's logits, backprop through the same noisy chain) or ``"mlp"``
            (plain 64-width-10 MLP; the block fields repeat its one loss).
        T (`int`, defaults to `10`): number of blocks. eta (`float`, defaults to `0.1`): loss weight.
        steps (`int`, defaults to `60`): epochs. width, lr, batch_size: the recipe's 128, 1e-3 (AdamW, wd 1e-3), 128.

    >>> from core.data.digits import load_digits_split
    >>> states = list(run(load_digits_split(0.2), steps=2, T=3))
    >>> states[-1].step, states[-1].block_losses.shape
    (2, torch.Size([3]))
    """
    check_choice("method", method, METHODS)
    T, steps = check_int("T", T, 1, 100), check_int("steps", steps)
    width, batch_size = check_int("width", width, 1, 4096), check_int("batch_size", batch_size)
    eta, lr = check_range("eta", eta, 1e-9, 1e3), check_range("lr", lr, 1e-9, 1.0)
    check_budget("epochs × blocks", steps * T, EPOCH_BUDGET)
    x, y, x_test, y_test = check_digits(data, device)
    return _loop(x, y, x_test, y_test, method, T, eta, steps, width, lr, batch_size, check_seed(seed))


def check_digits(data: dict[str, torch.Tensor], device=None) -> tuple[torch.Tensor, ...]:
    """``data``'s x_train, y_train, x_test, y_test as (N, 64) floats and labels 0..9 on ``device``, or a clear error."""
    missing = {"x_train", "y_train", "x_test", "y_test"} - set(data)
    if missing:
        raise OptiscopeError(
            f"Expected `data` to have keys x_train, y_train, x_test, y_test, but it lacks {sorted(missing)}"
        )
    dev = torch.device(device) if device is not None else data["x_train"].device
    out = []
    for split in ("train", "test"):
        x, y = data[f"x_{split}"].reshape(len(data[f"x_{split}"]), -1).float().to(dev), data[f"y_{split}"].to(dev)
        if x.shape[1] != 64 or len(y) != len(x) or len(x) == 0:
            raise OptiscopeError(f"Expected `x_{split}` of 64 features per item, but got shape {tuple(x.shape)}")
        if not bool(torch.isfinite(x).all()):
            raise OptiscopeError(f"Expected `x_{split}` to hold finite pixel values, but it holds NaN or inf")
        if y.dtype != torch.long or int(y.min()) < 0 or int(y.max()) > 9:
            raise OptiscopeError(
                f"Expected `y_{split}` to hold integer labels 0..9, but got {y.dtype} in [{y.min()}, {y.max()}]"
            )
        out += [x, y]
    return tuple(out)


def _loop(x, y, x_test, y_test, method, T, eta, steps, width, lr, batch_size, seed) -> Iterator[NoPropState]:
    g = generator(seed, x.device)
    sched = schedule(T)
    p = _init_blocks(T, width, g, x.device)
    opt = torch.optim.AdamW(p.values(), lr=lr, weight_decay=1e-3)
    loss_fn = _LOSSES[method]
    for epoch in range(1, steps + 1):
        order = torch.randperm(len(y), generator=g, device=x.device)
        totals, start = torch.zeros(T, device=x.device), time.perf_counter()
        for batch in order.split(batch_size):
            loss, per_block = loss_fn(p, x[batch], y[batch], sched, eta, g)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            totals += per_block * len(batch) / len(y)
        seconds = time.perf_counter() - start
        yield _evaluate(epoch, p, x_test, y_test, sched, method, totals, seconds, g)


@torch.no_grad()
def _evaluate(epoch, p, x, y, sched, method, totals, seconds, g) -> NoPropState:
    T = len(sched["a"])
    shown = torch.cat([(y == k).nonzero()[:1, 0] for k in range(10)])  # the first test image of each class
    if method == "mlp":
        logits = torch.relu(x @ p["w_img"][0] + p["b_img"][0]) @ p["w_out"][0] + p["b_out"][0]
        acc = float((logits.argmax(-1) == y).float().mean())
        path = torch.softmax(logits[shown], -1).expand(T + 1, len(shown), 10)  # no chain: its output at every t
        return NoPropState(epoch, totals, acc, acc, torch.full((T,), acc, device=x.device), path, seconds)
    noisy, noisy_blocks, path = infer(p, x, sched, noise=True, g=g)
    clean, per_block, _ = infer(p, x, sched, noise=False)
    chain_head = per_block[-1] if method == "backprop_chain" else clean
    noisy_head = noisy_blocks[-1] if method == "backprop_chain" else noisy
    return NoPropState(
        step=epoch,
        block_losses=totals,
        accuracy=float((noisy_head.argmax(-1) == y).float().mean()),
        accuracy_noise_free=float((chain_head.argmax(-1) == y).float().mean()),
        block_accuracy=(per_block.argmax(-1) == y).float().mean(-1),
        chain_z=path[:, shown],
        seconds=seconds,
    )


def class_circle(chain_z: torch.Tensor) -> torch.Tensor:
    """The label embeddings z_t (..., 10) drawn in 2-D: class k's one-hot embedding lands at angle 2πk/10 on the unit
    circle, so the noise z_0 sits near the centre and a denoised z_T at its class's point (a linear map).

    >>> class_circle(torch.eye(10))[3].round(decimals=3).tolist()
    [-0.309, 0.951]
    """
    angles = torch.arange(10, dtype=torch.float64, device=chain_z.device) * (2 * math.pi / 10)
    return chain_z.double() @ torch.stack([angles.cos(), angles.sin()], -1)  # (..., 2)
