"""The guidance lab's charts and their explainers (UI only: every number comes from `core.guidance`)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.express as px
import plotly.graph_objects as go

from pages import _ui as ui

W_HELP = "The paper's w; diffusers' APG gets guidance_scale = w − 1 with use_original_formulation=True."
SPLIT = [
    r"\Delta = D_c - D_u,\quad \Delta_\parallel = \frac{\langle \Delta, D_c\rangle}{\|D_c\|^2} D_c,\quad"
    r" \Delta_\perp = \Delta - \Delta_\parallel",
    r"\hat D_{\mathrm{CFG}} = D_c + (w-1)\Delta,\qquad \hat D_{\mathrm{APG}} = D_c + (w-1)(\Delta_\perp + \eta\,\Delta_\parallel)",
]
SPLIT_NOTE = (
    "Sadat, Hilliges, Weber 2024 (arXiv:2410.02416), Algorithm 1; Δ∥ only rescales D_c about 0 (mid-grey), which is what"
    " saturates; Δ⊥ carries class and detail. In 2-D: Δ∥ is radial, Δ⊥ tangential. APG at w=15 with few steps can"
    " overshoot: the ODE gets stiff; add steps."
)
AG = r"\gamma_t = \cos(D_c, D_u);\ \text{once } \gamma_t > \bar\gamma \text{ (after the warm-up)}: \hat D = D_c"
AG_NOTE = (
    "Castillo et al. 2023 (arXiv:2312.12487). At high noise D_c ≈ D_u, so a warm-up keeps AG from firing at step 0."
)
SWEEP_NOTE = (
    "Saturation: share of final pixel values beyond ±1.1 (data in [−1, 1], no clipping; backgrounds sit at −1)."
    " Accuracy: the shipped digits classifier (digits) or nearest mode (2-D)."
)
POINTS = {"x": ("#999", "sample x"), "x0_uncond": ("#1f77b4", "D_uncond"), "x0_cond": ("#2ca02c", "D_cond")}
POINTS |= {"x0_guided": ("#d62728", "guided D̂")}
ARROWS = {"delta_parallel": "#ff7f0e", "delta_orthogonal": "#9467bd"}
TILE_TITLES = ["D_cond", "D_uncond", "guided", "(w−1)Δ∥", "(w−1)Δ⊥"]
SATURATED = 1.1  # |x| beyond it: saturated (data lie in [−1, 1]), as core.guidance.saturation counts


def scatter_2d(trace, t: int, title: str) -> go.Figure:
    """The 2-D toy at step ``t``: samples, the three x0 predictions, and Δ∥ / Δ⊥ drawn from D_cond."""
    fig = go.Figure().add_shape(type="circle", x0=-2, y0=-2, x1=2, y1=2, line={"color": "#bbb", "dash": "dot"})
    for field, (color, name) in POINTS.items():
        p = getattr(trace, field)[t]
        fig.add_trace(go.Scattergl(x=p[:, 0], y=p[:, 1], mode="markers", marker={"size": 4, "color": color}, name=name))
    base = trace.x0_cond[t][:24]  # labels cycle through the classes: 3 arrows per mode
    for field, color in ARROWS.items():
        tip, gap = base + getattr(trace, field)[t][:24], np.full(len(base), np.nan)
        xs, ys = (np.stack([base[:, k], tip[:, k], gap], 1).ravel() for k in (0, 1))
        fig.add_scatter(x=xs, y=ys, mode="lines", line={"color": color, "width": 2}, name=field.replace("delta_", "Δ "))
    return fig.update_layout(
        title=title, height=430, xaxis_range=[-4, 4], yaxis_range=[-4, 4], yaxis_scaleanchor="x", margin_t=40
    )


def montage(trace, t: int, picks: np.ndarray, w: float, title: str) -> go.Figure:
    """One column per prediction, one row per class; the Δ columns show what CFG adds: (w − 1)·Δ∥ and (w − 1)·Δ⊥.

    The predictions are grey images on the data range [−1, 1]; only the Δ columns use the diverging map.
    """
    gains = {"x0_cond": 1, "x0_uncond": 1, "x0_guided": 1, "delta_parallel": w - 1, "delta_orthogonal": w - 1}
    tiles = [gain * getattr(trace, f)[t][picks, 0] for f, gain in gains.items()]  # (classes, H, W), first channel
    images = [np.pad(a, ((0, 0), (1, 1), (1, 1)), constant_values=np.nan).reshape(-1, a.shape[-1] + 2) for a in tiles]
    fig = ui.image_grid(images, TILE_TITLES, colorscale="Gray", zmin=-1, zmax=1, height=620)
    for delta in fig.data[3:]:
        delta.update(colorscale="RdBu_r", zmin=-1.5, zmax=1.5, showscale=delta is fig.data[3])
    return fig.update_layout(title=title, margin_t=60)


def final_samples(trace, picks: np.ndarray, title: str, saturation: float) -> go.Figure:
    """The final samples, one per class, in grey on [−1, 1]; saturated pixels (|x| > 1.1) marked red."""
    images = list(trace.x[-1][picks, 0])  # (H, W) each
    fig = ui.image_grid(images, columns=5, zmin=-1, zmax=1, height=125)  # classes 0-4, then 5-9
    for i, image in enumerate(images):
        burnt = np.where(np.abs(image) > SATURATED, 1.0, np.nan)
        red = go.Heatmap(z=burnt, colorscale=[[0, "red"], [1, "red"]], showscale=False, hoverinfo="skip", opacity=0.6)
        fig.add_trace(red, i // 5 + 1, i % 5 + 1)
    title = f"{title}<br>final samples, digits 0-9: <b>{saturation:.1%}</b> of pixels saturated (red)"
    return fig.update_layout(title=title, margin_t=70)


def norms_chart(norms: pd.DataFrame, t: int) -> go.Figure:
    """Mean ‖Δ∥‖ and ‖Δ⊥‖ per step, one dash style per guider, a rule at the scrubbed step."""
    long = norms.melt(["step", "guider"], ["‖Δ∥‖", "‖Δ⊥‖"], var_name="part", value_name="mean norm (x0 space)")
    fig = px.line(long, x="step", y="mean norm (x0 space)", color="part", line_dash="guider", height=320)
    return fig.add_vline(x=t, line_color="#888").update_layout(title="Size of the two parts of the update per step")


def cos_chart(norms: pd.DataFrame, gamma: float) -> go.Figure:
    """cos(D_c, D_u) per step against adaptive guidance's threshold γ̄."""
    fig = px.line(norms, x="step", y="cos(D_c, D_u)", color="guider", height=260, title="Agreement of D_c and D_u")
    return fig.add_hline(y=gamma, line_dash="dot", annotation_text="γ̄")


def sweep_chart(table: pd.DataFrame, y: str) -> go.Figure:
    return px.line(table, x="w", y=y, color="guider", markers=True, height=300, title=f"Final {y} against w")
