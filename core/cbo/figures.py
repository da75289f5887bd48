"""Plotly figures of a CBO run (CBO): https://arxiv.org/abs/1604.05648

Headless, like the rest of ``core``: the page shows them, a notebook can draw the same ones. Arrays in,
figures out; nothing here computes the dynamics.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import plotly.graph_objects as go

from core.cbo.phase import PhaseProgress
from core.cbo.trace import Trace

MAX_LINES = 300  # particle-to-consensus lines drawn (all particles are drawn as points)
GREY = {"width": 0.5, "color": "rgba(80,80,80,0.35)"}
RED = "#d62728"
STAR = {"symbol": "star", "size": 14, "color": "gold"}


def swarm_traces(x: np.ndarray, v: np.ndarray, path: np.ndarray) -> list:
    """Lines to the consensus point, the particles, the consensus path so far, the consensus point.

    Shapes:
        x: (N, 2), v: (2,), path: (T, 2)
    """
    lines = np.full((3 * min(len(x), MAX_LINES), 2), np.nan)  # segments x_i -> v separated by NaN
    lines[0::3], lines[1::3] = x[:MAX_LINES], v
    return [
        go.Scattergl(x=lines[:, 0], y=lines[:, 1], mode="lines", line=GREY, name="to consensus"),
        go.Scattergl(x=x[:, 0], y=x[:, 1], mode="markers", marker={"size": 4, "color": "#1f77b4"}, name="particles"),
        go.Scatter(x=path[:, 0], y=path[:, 1], mode="lines", line={"color": RED, "width": 2}, name="consensus path"),
        go.Scatter(
            x=[v[0]], y=[v[1]], mode="markers", marker={"size": 12, "symbol": "x", "color": RED}, name="consensus v"
        ),
    ]


def swarm_figure(
    x: np.ndarray,
    v: np.ndarray,
    path: np.ndarray,
    *,
    box: tuple[float, float],
    x_star: np.ndarray,
    paths: Mapping[str, np.ndarray] | None = None,
    background: str | None = None,
) -> go.Figure:
    """The swarm in the plane: :func:`swarm_traces` (traces 1-4), other methods' ``paths``, and x*.

    ``background`` is a picture of the landscape (a data URI) laid under the plot: replay frames redraw
    every trace, never the layout images, so a heatmap trace would cost ~25% of the frame rate.
    """
    fig = go.Figure(go.Scatter(x=[], y=[], showlegend=False))  # trace 0: keeps frame trace indices fixed
    if background is not None:
        size = box[1] - box[0]
        place = {"xref": "x", "yref": "y", "sizing": "stretch", "layer": "below"}
        fig.add_layout_image(source=background, x=box[0], y=box[1], sizex=size, sizey=size, **place)
    fig.add_traces(swarm_traces(x, v, path))
    for label, p in (paths or {}).items():
        fig.add_scatter(x=p[:, 0], y=p[:, 1], mode="lines+markers", marker={"size": 3}, name=f"{label} path")
    fig.add_scatter(x=x_star[:1], y=x_star[1:2], mode="markers", marker=STAR, name="x*")
    # constrain="domain": the square plot shrinks instead of widening x beyond the box; no grid lines over the picture
    axes = {"range": box, "constrain": "domain", "showgrid": background is None, "zeroline": False}
    fig.update_xaxes(title="x0", **axes).update_yaxes(title="x1", scaleanchor="x", **axes)
    legend = {"orientation": "v", "x": 1.02, "y": 1, "xanchor": "left"}  # beside the square, never over the swarm
    title = "Particles (blue) and their consensus point v (red ×) on the landscape f (dark = low); gold star: x*"
    return fig.update_layout(height=560, margin={"t": 40}, legend=legend, title=title)


def replay_frames(tr: Trace) -> list[go.Frame]:
    """One frame per traced snapshot, replacing traces 1-4 of :func:`swarm_figure`."""
    scenes = zip(tr.frame_x, tr.frame_step, strict=True)
    return [go.Frame(data=swarm_traces(x, tr.path[s], tr.path[: s + 1]), traces=[1, 2, 3, 4]) for x, s in scenes]


def decay_figure(tr: Trace, rates: Mapping[str, float]) -> go.Figure:
    """V(t) on a log scale with the mean-field lines ``V(0) e^{-rate t}`` for each noise model."""
    fig = go.Figure(go.Scatter(x=tr.time, y=tr.V, name="V(t) = ½ mean‖xᵢ − x*‖²"))
    for kind, rate in rates.items():
        fig.add_scatter(x=tr.time, y=tr.theory_V(rate), line={"dash": "dash"}, name=f"theory {kind}: rate {rate:.3g}")
    fig.update_yaxes(type="log", range=[np.log10(max(tr.V.min(), 1e-12)) - 0.5, np.log10(tr.V.max()) + 0.5])
    title = "Spread V(t) of the swarm around x* against the mean-field rates"
    return fig.update_layout(
        xaxis_title="time t = step · dt",
        yaxis_title="V(t) (log)",
        height=380,
        title=title,
        legend={"orientation": "h", "y": -0.25},
    )


def error_figure(tr: Trace, tol: float = 0.25) -> go.Figure:
    """``||v - x*||_inf`` per step on a log scale, with the success threshold."""
    fig = go.Figure(go.Scatter(x=tr.step, y=tr.error, name="‖v − x*‖∞")).update_yaxes(type="log")
    fig.add_hline(y=tol, line_dash="dot", annotation_text=f"success threshold {tol:g}")
    return fig.update_layout(xaxis_title="step", height=300, title="Error of the consensus point")


def weights_figure(weights: np.ndarray) -> go.Figure:
    """The histogram of log10 consensus weights."""
    fig = go.Figure(go.Histogram(x=np.log10(np.maximum(weights, 1e-300)), nbinsx=60))
    title = "Consensus weights ω_α(x_i) = e^(−α f(x_i)), normalised"
    return fig.update_layout(xaxis_title="log10 weight", yaxis_title="particles", height=300, title=title)


def phase_figure(phase: PhaseProgress) -> go.Figure:
    """The success-rate heat map over (sigma, N), each cell labelled with its rate."""
    z = phase.success.numpy()
    cells = {"zmin": 0, "zmax": 1, "colorscale": "RdYlGn", "text": np.round(z, 2), "texttemplate": "%{text}"}
    fig = go.Figure(go.Heatmap(x=list(map(str, phase.ns)), y=list(map(str, phase.sigmas)), z=z, **cells))
    title = "Success rate (‖v − x*‖∞ < 0.25) per (σ, N)"
    return fig.update_layout(xaxis_title="N particles", yaxis_title="σ", height=380, title=title)
