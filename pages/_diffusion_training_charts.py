"""Charts, tables and explainers of the diffusion-training lab (UI only: every number comes from core)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
import streamlit as st
import torch

from core import diffusion_training as DT
from core import guidance as G
from core.diffusion_training import models as distilled
from core.diffusion_training import sampling
from core.guidance.metrics import precision_recall
from pages import _ui as ui

PAPERS = (
    "Meng et al. 2023, On Distillation of Guided Diffusion Models ([arXiv:2210.03142](https://arxiv.org/abs/2210.03142));"
    " Wang et al. 2025, Self-NPO ([arXiv:2505.11777](https://arxiv.org/abs/2505.11777)); Han, Razaviyayn, Xu, "
    "Neural network-based score estimation ([arXiv:2401.15604](https://arxiv.org/abs/2401.15604))."
)
DISTILL = [
    r"L_1 = \mathbb{E}_{w,\sigma,x}\,\lambda(\sigma)\,\|D_\eta(x_\sigma,\sigma,y,w) - [D_u + w(D_c - D_u)]\|^2,"
    r"\quad w \sim U[1, 5]",
    r"\tilde x = \frac{z_s - (\sigma_s/\sigma_t)\,z_t}{1 - \sigma_s/\sigma_t}"
    r"\ \text{(two teacher steps } z_t \to z_{mid} \to z_s\text{, one student step)}",
]
NPO = [
    r"\hat x_0 = D_c + w_{neg}(D_c - D_u)\ \text{(5 teacher steps from } z_{t_i}\text{)},\quad"
    r" L = \|D_{neg}(x', t', c) - \hat x_0\|^2",
    r"\hat D = D_{neg}(x,\sigma,\varnothing) + w\,(D_c - D_{neg}(x,\sigma,\varnothing))",
]
NTK = [
    r"f(x) = m^{-1/2}\textstyle\sum_r a_r\,\mathrm{relu}(w_r\cdot u),\quad u = [x/2, 1]",
    r"f_T = (I - (I - \eta K/n)^T)\,Y,\qquad k_\infty(u,u') = u\cdot u'\,\frac{\pi - \theta}{2\pi}",
]
NPO_NOTE = (
    "Self-NPO's claim is a human-preference gain at Stable-Diffusion scale; there is no preference signal here. "
    "On this toy it shows what the negative model is: with w_neg = −1 the base's own smoothed unconditional branch "
    "(almost no change), with w_neg = −5 an anti-class model that costs precision."
)
W_CLAMP = (
    "The student was distilled on w ∈ [{0:g}, {1:g}] and cannot extrapolate beyond it (at w = 7.5 the teacher's "
    "radius is 2.51, a student's stays near its w = 5 value), so the slider stops at {1:g}."
)


def loss_chart(states: list) -> go.Figure:
    frame = pd.DataFrame({"step": [s.step for s in states], "loss": [s.loss for s in states]})
    frame["stage"] = [f"stage {s.stage + 1} ({s.sampler_steps} steps)" for s in states]
    return px.line(frame, x="step", y="loss", color="stage", log_y=True, title="Training loss")


def samples_chart(samples: dict[str, torch.Tensor], title: str) -> go.Figure:
    fig = go.Figure().add_shape(type="circle", x0=-2, y0=-2, x1=2, y1=2, line={"color": "#bbb", "dash": "dot"})
    for name, x in samples.items():
        fig.add_scattergl(
            x=x[:, 0].cpu().numpy(), y=x[:, 1].cpu().numpy(), mode="markers", name=name, marker={"size": 3}
        )
    return fig.update_layout(title=title, height=420, yaxis={"scaleanchor": "x", "range": [-3.5, 3.5]})


@torch.no_grad()
def sweep(predicts: dict, ws: tuple[float, ...], mixture, n: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Scores of each ``{name: (make_predict(labels, w), σ levels)}`` at each w, from one seeded start.

    Recall is improved k-NN recall (k = 3) against ``n`` exact samples of the mixture."""
    labels = (torch.arange(n) % mixture.num_classes).to(mixture.device)
    x, real = sampling.start_noise(n, seed, mixture.device), _real(mixture, n, seed)
    rows = []
    for name, (make, levels) in predicts.items():
        for w in ws:
            out = sampling.euler(make(labels, w), x.clone(), levels)
            recall = {"recall": precision_recall(real, out)[1]}
            rows.append({"sampler": name, "w": w} | sampling.scores(out, mixture, labels) | recall)
    return pd.DataFrame(rows)


def _real(mixture, n: int, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed + 1)
    idx = torch.randint(0, len(mixture.means), (n,), generator=gen)
    return (mixture.means.cpu()[idx] + mixture.std * torch.randn((n, 2), generator=gen, dtype=torch.float64)).to(
        mixture.device
    )


def sweep_chart(table: pd.DataFrame, y: str) -> go.Figure:
    return px.line(table, x="w", y=y, color="sampler", markers=True, title=f"{y} against w")


def field_chart(grid: np.ndarray, delta: np.ndarray, sigma: float) -> go.Figure:
    """D_neg − D_u as arrows on a grid of points (one segment per point)."""
    ends = grid + delta
    xs = np.stack([grid[:, 0], ends[:, 0], np.full(len(grid), np.nan)], 1).ravel()
    ys = np.stack([grid[:, 1], ends[:, 1], np.full(len(grid), np.nan)], 1).ravel()
    fig = go.Figure(go.Scatter(x=xs, y=ys, mode="lines", line={"width": 1.5}, name="D_neg − D_u"))
    fig.add_scatter(x=grid[:, 0], y=grid[:, 1], mode="markers", marker={"size": 3, "color": "#999"}, name="x")
    return fig.update_layout(title=f"D_neg(x, σ, ∅) − D_u(x, σ, ∅) at σ = {sigma:g}", yaxis={"scaleanchor": "x"})


@torch.no_grad()
def negative_field(base, negative, sigma: float, device) -> tuple[np.ndarray, np.ndarray]:
    axis = torch.linspace(-3, 3, 15)
    points = torch.cartesian_prod(axis, axis).to(device)
    null = torch.full((len(points),), base.num_classes, device=device)
    return points.cpu().numpy(), (negative(points, sigma, null) - base(points, sigma, null)).cpu().numpy()


def regression_chart(states: list, kernel_rows: list[dict], best_step: int) -> go.Figure:
    frame = pd.DataFrame([vars(s) for s in states]).melt("step", ["train_mse", "val_mse", "test_error", "kernel_error"])
    fig = px.line(frame, x="step", y="value", color="variable", log_x=True, log_y=True)
    limit = pd.DataFrame([r for r in kernel_rows if np.isfinite(r["step"]) and r["step"] > 0])
    fig.add_scatter(
        x=limit["step"], y=limit["test_error"], mode="lines", name="its NTK vs D*, long T", line={"dash": "dot"}
    )
    fig.add_vline(x=best_step, line_dash="dash", annotation_text=f"early stop T = {best_step}")
    return fig.update_layout(title="DSM as regression: errors against T (D* = exact denoiser)", yaxis_title="mean ‖·‖²")


def kernel_rows(problem, width: int, seed: int) -> list[dict]:
    """The network's own NTK regression from T = 1 to 1e6, then its interpolant (T = ∞, last row)."""
    return DT.kernel_curve(problem, [*np.logspace(0, 6, 25).tolist(), float("inf")], width=width, seed=seed)


def render_regression(states: list, kernel_rows: list[dict]) -> None:
    """The live regression: its curves with the early-stopping marker, and the net–kernel gap."""
    if not states:
        st.info("Press ▶ Play: the network trains by full-batch GD beside its kernel regression.")
        return
    best = min(states, key=lambda s: s.val_mse)
    fig = regression_chart(states, kernel_rows, best.step)
    ui.chart(fig, key="dt-ntk", data=pd.DataFrame(map(vars, states)), name="dsm-regression")
    ui.metrics({"early-stop T": best.step, "net vs D* there": best.test_error, "max gap": max(s.gap for s in states)})


@torch.no_grad()
def teacher_table(ws: tuple[float, ...], seed: int, device: str) -> pd.DataFrame:
    """The exact teacher's sweep over ``ws`` (32 steps, 64 calls): the first screen's chart (shipped)."""
    mixture = G.GaussianMixtureDenoiser(device=device)
    exact = {"teacher, 32 steps (64 calls)": (lambda y, w: sampling.exact_cfg(mixture, y, w), sampling.grid(32))}
    return sweep(exact, ws, mixture, seed=seed)


def distilled_digits(w: float, seed: int, device: str) -> np.ndarray:
    """:func:`digits_pair` of the shared teacher and distilled UNets on ``device`` (the app's, part of the shipped
    key: the default link on a CPU server is shipped)."""
    teacher, student = ui.zoo_model("digits-unet"), ui.zoo_model("digits-unet-distilled")
    return digits_pair(teacher, student, w, seed, device)


def digits_pair(teacher, student, w: float, seed: int, device) -> np.ndarray:
    """One sample per digit: the teacher's CFG in 32 DDIM steps, then the distilled student in 4; (20, 8, 8)."""
    labels = torch.arange(10, device=device)
    top = distilled.sample(distilled.teacher_cfg(teacher, w), labels, distilled.TEACHER_STEPS, seed)
    bottom = distilled.sample(distilled.student_eps(student, w), labels, distilled.STUDENT_STEPS, seed)
    return torch.cat([top, bottom])[:, 0].cpu().numpy()
