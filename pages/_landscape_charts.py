"""The landscape lab's charts (UI only: every number comes from `core.landscape`)."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

RED_X = {"symbol": "x", "color": "red"}
DECADES = 6  # of density shown below its peak: SLQ's Gaussian tails would otherwise fill the chart


def density_figure(spec: Mapping) -> go.Figure:
    """SLQ's eigenvalue density per model on a log scale, the lowest decades cut off."""
    main = next(iter(spec.values()))
    fig = go.Figure([go.Scatter(x=s.grid, y=s.density, name=m) for m, s in spec.items()])
    top = np.log10(max(float(s.density.max()) for s in spec.values()))
    title = f"Eigenvalue density (SLQ, {main.slq_runs} runs × {main.slq_steps} Lanczos steps)"
    fig.update_layout(title=title, xaxis_title="eigenvalue λ of the Hessian")
    return fig.update_yaxes(type="log", range=[top - DECADES, top + 0.3], title=f"density (log, {DECADES} decades)")


def top_figure(spec: Mapping, k: int) -> go.Figure:
    """The top-k eigenvalues per model (Lanczos)."""
    main = next(iter(spec.values()))
    fig = go.Figure([go.Bar(x=list(range(1, k + 1)), y=s.top, name=m) for m, s in spec.items()])
    lanczos = f"{main.num_hvps} HVPs{'' if main.converged else ', not converged'}"
    title = f"Top-{k} eigenvalues (Lanczos, {lanczos})"
    return fig.update_layout(title=title, xaxis_title="rank i (1 = largest)", yaxis_title="eigenvalue λᵢ")


def layers_figure(spec: Mapping) -> go.Figure:
    """The largest eigenvalue of each layer's diagonal Hessian block, per model."""
    bars = [go.Bar(x=[s.name for s in v.layers], y=[s.lambda_max for s in v.layers], name=m) for m, v in spec.items()]
    fig = go.Figure(bars).update_layout(title="Per-layer λmax (diagonal Hessian blocks)", xaxis_title="layer")
    return fig.update_yaxes(type="log", title="λmax (log)")


def _span(zs: Mapping) -> tuple[float, float]:
    """One colour and z scale for every model shown."""
    return min(float(v.min()) for v in zs.values()), max(float(v.max()) for v in zs.values())


def contour_figure(
    zs: Mapping, c: np.ndarray, title: str, *, path: np.ndarray | None = None, extent: float = 1.0
) -> go.Figure:
    """Each model's contour (a → x, b → y) of ``zs`` (its loss or log₁₀ loss), θ marked; ``path``: the first
    model's SGD path projected on the plane, (T, 2)."""
    lo, hi = _span(zs)
    fig = make_subplots(len(zs), 1, subplot_titles=[f"{m}: contour" for m in zs])
    for r, (m, zz) in enumerate(zs.items(), start=1):  # plotly wants z[y][x]; ours is loss[a][b]
        fig.add_trace(
            go.Contour(x=c, y=c, z=zz.T, zmin=lo, zmax=hi, colorscale="Viridis", showscale=False, ncontours=30), r, 1
        )
        fig.add_trace(go.Scatter(x=[0], y=[0], mode="markers", marker=RED_X, name=f"θ {m}"), r, 1)
    if path is not None:
        fig.add_trace(go.Scatter(x=path[:, 0], y=path[:, 1], mode="lines+markers", name="SGD path (projected)"), 1, 1)
        fig.update_xaxes(range=[-extent, extent], row=1, col=1).update_yaxes(range=[-extent, extent], row=1, col=1)
    legend = {"orientation": "h", "y": -0.22, "x": 0.5, "xanchor": "center"}  # below the axis title
    fig.update_xaxes(title="a (direction d₁)").update_yaxes(title="b (direction d₂)")
    return fig.update_layout(height=480 * len(zs), title=title, margin={"t": 140, "b": 110}, legend=legend)


def surface_figure(zs: Mapping, c: np.ndarray, zlabel: str) -> go.Figure:
    """Each model's surface in 3-D, on the contours' colour and z scale."""
    lo, hi = _span(zs)
    fig = make_subplots(len(zs), 1, specs=[[{"type": "scene"}]] * len(zs), subplot_titles=list(zs))
    bar, scale = {"title": f"{zlabel}loss", "len": 0.8}, {"cmin": lo, "cmax": hi, "colorscale": "Viridis"}
    for r, zz in enumerate(zs.values(), start=1):
        fig.add_trace(go.Surface(x=c, y=c, z=zz.T, showscale=r == 1, colorbar=bar, **scale), r, 1)
    # the whole surface in view: a lower, farther camera and a flatter box than plotly's default cube
    scene = {"camera_eye": {"x": 1.6, "y": -1.6, "z": 0.9}, "aspectratio": {"x": 1, "y": 1, "z": 0.6}}
    scene |= {"xaxis_title": "a", "yaxis_title": "b", "zaxis_title": f"{zlabel}loss"}
    title = f"Loss surface L(θ + a·d₁ + b·d₂) · z: {zlabel}loss"
    return fig.update_scenes(**scene).update_layout(height=480 * len(zs), title=title, margin={"t": 140, "b": 110})


def slices_figure(data: Mapping, c: np.ndarray, title: str, z: Callable, zlabel: str) -> go.Figure:
    """1-D slices along d₁ and d₂ per model, the loss through ``z`` (identity or log₁₀)."""
    fig = go.Figure([go.Scatter(x=c, y=z(v[t]), name=f"{m} along d{t + 1}") for m, v in data.items() for t in (0, 1)])
    return fig.update_layout(title=title, xaxis_title="step along the direction", yaxis_title=f"{zlabel}loss")
