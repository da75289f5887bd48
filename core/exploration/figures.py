"""Plotly figures of the exploration lab: visits lighting up, suboptimality curves, ellipsoids, H-scaling."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

COLORS = {"random": "#7f7f7f", "ucrl_rfe": "#1f77b4", "hf_ucrl_rfe": "#d62728"}
FORMULAS = {
    "mdp": [
        r"P(s'\mid s,a)=\sum_{i=1}^d \theta^*_i\,\phi_i(s'\mid s,a),\qquad"
        r"[PV](s,a)=\langle \psi_V(s,a),\theta^*\rangle,\ \psi_V(s,a)=\sum_{s'}\phi(s'\mid s,a)V(s')",
        r"\text{UCRL-RFE: } r_h(s,a)=\min\Big\{1,\tfrac{2\beta}{H}\max_{f:S\to[0,H-h]}\|\psi_f(s,a)\|_{\Sigma^{-1}}\Big\}",
        r"\text{HF: } \hat V_h(s)=\min\big\{1,\ u_h+2\beta\|\psi_{\hat V_{h+1}}\|_{\hat\Sigma^{-1}}"
        r"+\langle\psi_{\hat V_{h+1}},\tilde\theta\rangle\big\},\ u_h=\min\{1,\beta\|\psi_{\tilde V_{h+1}}\|_{\tilde\Sigma^{-1}}\}",
    ],
    "planning": [
        r"\hat\theta=\Big(\lambda I+\sum_t\Phi_t^\top\Phi_t\Big)^{-1}\sum_t\Phi_t^\top e_{s'_t},\quad"
        r"Q_h=\big[r/H+\langle\psi_{V_{h+1}},\hat\theta\rangle\big]_{[0,1]}",
        r"\text{gap}=V^*_1(s_1;r)-V^{\hat\pi_r}_1(s_1;r)\quad(\text{both on the true } P)",
    ],
    "scaling": [r"K_\varepsilon(H)=\min\{K:\ \max_r \text{gap}_k(r)\le\varepsilon\ \ \forall k\ge K\}"],
}


def visits_figure(visits: dict[str, np.ndarray], names: dict[str, str]) -> tuple[go.Figure, list[go.Frame]]:
    """One bar row per explorer: cumulative state visits; frames step through the episodes. visits: (K+1, S)."""
    keys = list(visits)
    fig = make_subplots(len(keys), 1, shared_xaxes=True, subplot_titles=[names[k] for k in keys], vertical_spacing=0.08)
    for row, key in enumerate(keys, 1):
        fig.add_trace(go.Bar(y=visits[key][0], marker_color=COLORS[key], name=names[key], showlegend=False), row, 1)
        fig.update_yaxes(range=[0, float(visits[key].max()) * 1.05 + 1], title_text="visits", row=row, col=1)
    fig.update_xaxes(title_text="state (start at 0, the far segment is 9–11)", row=len(keys), col=1)
    frames = [
        go.Frame(data=[go.Bar(y=visits[key][k]) for key in keys], name=str(k)) for k in range(len(visits[keys[0]]))
    ]
    return fig.update_layout(height=130 + 130 * len(keys), margin={"t": 40, "b": 10}), frames


def curves_figure(curves: dict[str, np.ndarray], names: dict[str, str], title: str) -> go.Figure:
    """Suboptimality vs episodes explored, one line per explorer."""
    fig = go.Figure()
    for key, curve in curves.items():
        fig.add_trace(go.Scatter(y=curve, name=names[key], line={"color": COLORS[key]}))
    return fig.update_layout(title=title, xaxis_title="episodes explored K", yaxis_title="V* − V^π̂", height=330)


def ellipse_figure(ellipses: dict[str, np.ndarray], truth: np.ndarray, names: dict[str, str], axes: tuple) -> go.Figure:
    """2-D slices (θ_i, θ_j) of the confidence ellipsoids {‖θ − θ̂‖_Σ ≤ β}; the star is θ*."""
    fig = go.Figure()
    for key, points in ellipses.items():
        fig.add_trace(go.Scatter(x=points[:, 0], y=points[:, 1], name=names[key], line={"color": COLORS[key]}))
    fig.add_trace(
        go.Scatter(x=[truth[0]], y=[truth[1]], mode="markers", name="θ*", marker={"symbol": "star", "size": 14})
    )
    i, j = axes
    return fig.update_layout(xaxis_title=f"θ{i}", yaxis_title=f"θ{j}", height=330)


def ellipse(theta: np.ndarray, gram: np.ndarray, beta: float, axes: tuple[int, int], n: int = 100) -> np.ndarray:
    """Boundary of the projection of {θ: (θ − θ̂)ᵀΣ(θ − θ̂) ≤ β²} onto coordinates ``axes``: (n, 2)."""
    block = np.linalg.inv(gram)[np.ix_(axes, axes)]  # the projection's shape matrix is the block of Σ⁻¹
    circle = np.stack([np.cos(np.linspace(0, 2 * np.pi, n)), np.sin(np.linspace(0, 2 * np.pi, n))], 1)
    return theta[list(axes)] + beta * circle @ np.linalg.cholesky(block).T


def scaling_figure(horizons, episodes: np.ndarray, explorers, names: dict[str, str], steps: int) -> go.Figure:
    """Episodes to ε vs H per explorer; a run that never settled is drawn at K + 1 with an open marker."""
    fig = go.Figure()
    for key, row in zip(explorers, episodes, strict=True):
        y = np.where(row < 0, steps + 1, row)
        symbols = ["circle-open" if v < 0 else "circle" for v in row]
        fig.add_trace(
            go.Scatter(
                x=list(horizons),
                y=y,
                name=names[key],
                mode="lines+markers",
                marker={"symbol": symbols, "size": 10},
                line={"color": COLORS[key]},
            )
        )
    fig.update_xaxes(type="log", title_text="horizon H")
    return fig.update_layout(yaxis_title="episodes to ε (open: not reached)", height=330)
