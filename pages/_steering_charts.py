"""The steering lab's charts and explainers (UI only: every number comes from `core.guidance.steering`)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.express as px
import plotly.graph_objects as go

from pages import _ui as ui

DYNAMIC = [
    r"X_0[s] = D_u + s\,(D_c - D_u),\quad s \in S",
    r"s^* = \arg\max_{s \in S} \textstyle\sum_k \lambda_k\, E_k(X_0[s], y),\qquad x \leftarrow \mathrm{Euler}(x, X_0[s^*])",
]
CFGMP = [
    r"G(z) = z' + h\,v_c(z', t),\quad z' = z - h\,v_u(z, t),\quad h = \Delta t / 2 \quad (t < 0.6)",
    r"\text{Picard: } z \leftarrow G(z);\quad \text{Anderson } (m = 1)\text{: } z \leftarrow \alpha_0 G(z_0) + \alpha_1 G(z_1),"
    r"\ (FF^\top + 10^{-4} I)\alpha = \mathbf 1,\ \textstyle\sum\alpha = 1",
    r"z \leftarrow z + \Delta t\,[v_u + w (v_c - v_u)];\quad \text{NFE} = 2 + 2K \text{ per projected step}",
]
ELUCD = [
    r"g = \nabla_{\hat x_0} \log \frac{e^{\tau_1 \ell_y(\hat x_0)}}{\sum_j e^{\tau_2 \ell_j(\hat x_0)}},\quad \hat x_0 = D_u",
    r"\tilde D = D_u + s\,(1 + \gamma \sin(\pi i / N))\,\frac{\sigma^2}{\sqrt{1 + \sigma^2}}\, g,"
    r"\qquad \text{oracle: } D_c - D_u = \sigma^2 \nabla \log p_\sigma(y \mid x)",
]
PAPERS = (
    "Papers: [Dynamic CFG via online feedback](https://arxiv.org/abs/2509.16131) ·"
    " [CFG-MP / CFG-MP+](https://arxiv.org/abs/2601.21892) · [EluCD](https://arxiv.org/abs/2310.11311)."
    " Models: the guidance lab's exact 2-D mixture and shipped digits UNet; nothing is trained here but the"
    " 2-D clean-data classifier (about 1 s)."
)
REFERENCES = {
    "dynamic": "Papalampidi et al. 2025, Dynamic CFG via online feedback (arXiv:2509.16131). No public code: the"
    " evaluators here are proxies (exact log-densities in 2-D; on digits the shipped classifier and the distance to"
    " the nearest training digit), and the judge is another model (digits-mlp-converged). No CLIP, no preferences.",
    "cfg-mp": "Cai, Liu, Su, Wang 2026, CFG-MP (arXiv:2601.21892); code LeonSuZhengYi/CFG-MP (DiT variant). On an exact"
    " model each Picard iteration adds about ½ to w on the projected steps: extra early guidance, no cure for"
    " oversaturation. Compare at equal model calls.",
    "elucd": "Ma, Hu, Wang, Sun 2024, EluCD (arXiv:2310.11311); code AlexMaOLS/EluCD. The gradient is taken on x̂0 and"
    " ignores ∂x̂0/∂x; the classifier never saw noisy data. τ2 < τ1 makes the objective unbounded (≈ ½ℓ_y): it"
    " overshoots like CFG.",
}
REFERENCES["cfg-mp+"] = REFERENCES["cfg-mp"]
FORMULAS = {"dynamic": DYNAMIC, "cfg-mp": CFGMP, "cfg-mp+": CFGMP, "elucd": ELUCD}
RESIDUAL_NOTE = (
    "On the sampler's own path G(z) − z ≈ h(v_c − v_u) is nearly a constant push, so neither solver converges and"
    " Anderson (m = 1) gains little: the projection acts as extra guidance. From fresh noisy data at t = 0.3 (the"
    " note's check, tests/test_steering.py) Anderson halves Picard's residual by the 4th iteration."
)
COLORS = {"EluCD on x̂0": "#d62728", "naive on x_t": "#ff7f0e", "oracle D_c − D_u": "#2ca02c"}
SHOWN = 24  # samples drawn with arrows or paths: 3 per mode


def finals(samples: tuple, labels: list[str]) -> go.Figure:
    """The final samples of each sampler on the plane, the circle of the modes dotted."""
    fig = go.Figure().add_shape(type="circle", x0=-2, y0=-2, x1=2, y1=2, line={"color": "#bbb", "dash": "dot"})
    for x, label in zip(samples, labels, strict=True):
        fig.add_scatter(x=x[:, 0], y=x[:, 1], mode="markers", marker={"size": 3}, name=label)
    return fig.update_layout(height=420, yaxis_scaleanchor="x", xaxis_range=[-4.5, 4.5], yaxis_range=[-4.5, 4.5])


def scale_strip(states: list, shown: int = 64) -> tuple[go.Figure, dict]:
    """The chosen scale of ``shown`` samples (rows) at every step so far (columns), and its data."""
    z = np.stack([s.scale[:shown].cpu().numpy() for s in states], axis=1)
    fig = go.Figure(go.Heatmap(z=z, colorscale="Viridis", colorbar={"title": "w"}, zmin=1))
    fig.update_layout(title="Chosen scale: samples × steps", xaxis_title="step", yaxis_title="sample", height=320)
    return fig, {"scale (samples × steps)": z}


def score_curves(state, names: list[str], candidates: tuple[float, ...]) -> tuple[go.Figure, pd.DataFrame]:
    """Mean raw score of each evaluator per candidate scale at one step."""
    mean = state.scores.double().mean(0).cpu().numpy()  # (|S|, E)
    table = pd.DataFrame(mean, columns=names).assign(w=list(candidates))
    fig = px.line(table.melt("w", var_name="evaluator", value_name="mean score"), x="w", y="mean score", markers=True)
    return fig.update_layout(title=f"Evaluator scores at step {state.step}", height=320), table


def iterate_paths(state) -> go.Figure:
    """The projection's iterates x_0 → x_K of a few samples (2-D), the final sample in black."""
    fig = go.Figure()
    if state.iterates is not None:
        paths = state.iterates[:, :SHOWN].cpu().numpy()  # (K + 1, shown, 2)
        gap = np.full((1, paths.shape[1]), np.nan)
        xs, ys = (np.concatenate([paths[..., k], gap]).T.ravel() for k in (0, 1))
        fig.add_scatter(x=xs, y=ys, mode="lines+markers", marker={"size": 4}, name="iterates x_k")
    x = state.x[:SHOWN].cpu().numpy()
    fig.add_scatter(x=x[:, 0], y=x[:, 1], mode="markers", marker={"color": "black", "size": 5}, name="after the step")
    title = f"Projection at step {state.step}" + ("" if state.iterates is not None else " (not projected: t ≥ 0.6)")
    return fig.update_layout(title=title, height=360, yaxis_scaleanchor="x")


def residual_chart(residuals: dict[str, list[float]]) -> go.Figure:
    rows = [
        {"iteration": k + 1, "solver": name, "mean |G(z) − z|": r}
        for name, rs in residuals.items()
        for k, r in enumerate(rs)
    ]
    fig = px.line(pd.DataFrame(rows), x="iteration", y="mean |G(z) − z|", color="solver", markers=True, log_y=True)
    return fig.update_layout(title="Residual per inner iteration, same start", height=320)


def arrows(x: np.ndarray, directions: dict[str, np.ndarray], step: int) -> go.Figure:
    """Guidance directions drawn from a few samples (each arrow normalised to length 0.5)."""
    fig = go.Figure(go.Scatter(x=x[:, 0], y=x[:, 1], mode="markers", marker={"color": "#999", "size": 4}, name="x"))
    for label, d in directions.items():
        unit = d / np.maximum(np.linalg.norm(d, axis=1, keepdims=True), 1e-12) * 0.5
        tip, gap = x + unit, np.full(len(x), np.nan)
        xs, ys = (np.stack([x[:, k], tip[:, k], gap], 1).ravel() for k in (0, 1))
        fig.add_scatter(x=xs, y=ys, mode="lines", line={"color": COLORS[label], "width": 2}, name=label)
    return fig.update_layout(title=f"Guidance directions at step {step}", height=380, yaxis_scaleanchor="x")


def cosine_chart(states: list) -> tuple[go.Figure, pd.DataFrame]:
    """Mean cos(guidance, oracle D_c − D_u) per σ so far (NaN where D_c = D_u exactly), and its table."""
    cos = [s.cosine.double().nanmean().item() for s in states]
    table = pd.DataFrame({"σ": [s.level for s in states], "cos(guidance, oracle)": cos})
    fig = px.line(table, x="σ", y="cos(guidance, oracle)", markers=True, log_x=True)
    fig.update_layout(title="Agreement with the oracle per σ", height=300, xaxis_autorange="reversed")
    return fig, table


def sweep_chart(table: pd.DataFrame, y: str) -> go.Figure:
    return px.line(table, x="s", y=y, color="input", markers=True, height=300, title=f"Final {y} against the scale s")


def digits(samples: tuple, labels: list[str], picks: np.ndarray) -> go.Figure:
    """One row of final digits (one per class) per sampler."""
    images = [x[i, 0].numpy() for x in samples for i in picks]
    titles = [f"{label}" if j == 0 else "" for label in labels for j in range(len(picks))]
    return ui.image_grid(images, titles, columns=len(picks), zmin=-1, zmax=1, height=110)
