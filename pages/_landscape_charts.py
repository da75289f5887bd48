"""The landscape lab's spectrum charts (UI only: every number comes from `core.landscape.spectrum_summary`)."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np
import plotly.graph_objects as go

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


def slices_figure(data: Mapping, c: np.ndarray, title: str, z: Callable, zlabel: str) -> go.Figure:
    """1-D slices along d₁ and d₂ per model, the loss through ``z`` (identity or log₁₀)."""
    fig = go.Figure([go.Scatter(x=c, y=z(v[t]), name=f"{m} along d{t + 1}") for m, v in data.items() for t in (0, 1)])
    return fig.update_layout(title=title, xaxis_title="step along the direction", yaxis_title=f"{zlabel}loss")
