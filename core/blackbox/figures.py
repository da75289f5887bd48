"""Plotly figures of black-box runs (ODA): https://arxiv.org/abs/2510.01461

Headless, like the rest of ``core``: the 2-D slice of a search (poll points, attack arrow, frame and mesh),
best-value curves with their spread over seeds, and data profiles. Arrays in, figures out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import plotly.graph_objects as go
import torch

from core.blackbox.compare import Comparison
from core.blackbox.search import SearchState
from core.errors import OptiscopeError, check_int

COLOURS = {"attack": "#d62728", "poll": "#2ca02c", "search": "#9467bd", "none": "#7f7f7f", "start": "#7f7f7f"}
MAX_MESH_NODES = 21  # per side of the frame: finer meshes are drawn as the frame alone
FLOOR = 1e-12  # gaps below this are drawn at it on the log axis


@dataclass(frozen=True)
class Replay:
    """A run reduced to what the 2-D slice draws, per iteration, in the plotted coordinates ``dims``.

    Shapes (T iterations, K ≤ 2d points):
        x: (T, 2); points: list of (K, 2); arrow: (T, 2); frame: (T,) half-widths Δp·(hi - lo) per dim as (T, 2)
    """

    step: np.ndarray
    x: np.ndarray
    points: list[np.ndarray]
    success: list[str]
    arrow: np.ndarray
    frame: np.ndarray
    mesh: np.ndarray
    value: np.ndarray
    evaluations: np.ndarray
    dims: tuple[int, int]


def replay(states: Sequence[SearchState], width: torch.Tensor, dims: tuple[int, int] = (0, 1)) -> Replay:
    """The states of one run as a :class:`Replay`; ``width`` is the box's ``hi - lo`` (poll sizes are relative).

    The frame and mesh drawn at iteration t are the ones polled around the incumbent of iteration t - 1.
    """
    if not states:
        raise OptiscopeError("Expected at least one state to replay")
    dims = (check_int("dims", dims[0], 0, len(width) - 1), check_int("dims", dims[1], 0, len(width) - 1))
    w = width.cpu().double().numpy()[list(dims)]
    prev = [states[0], *states[:-1]]
    return Replay(
        step=np.array([s.step for s in states]),
        x=np.stack([s.x.cpu().double().numpy()[list(dims)] for s in states]),
        points=[s.points.cpu().double().numpy()[:, list(dims)] for s in states],
        success=[s.success for s in states],
        arrow=np.stack([s.arrow.cpu().double().numpy()[list(dims)] for s in states]),
        frame=np.stack([p.poll_size * w for p in prev]),
        mesh=np.stack([p.mesh_size * w for p in prev]),
        value=np.array([s.value for s in states]),
        evaluations=np.array([s.evaluations for s in states]),
        dims=dims,
    )


def _frame_traces(r: Replay, t: int) -> list:
    centre = r.x[max(t - 1, 0)]
    half, mesh = r.frame[t], r.mesh[t]
    square = centre + half * np.array([[-1, -1], [1, -1], [1, 1], [-1, 1], [-1, -1]])
    nodes = np.zeros((0, 2))
    if np.all(half / np.maximum(mesh, 1e-300) <= MAX_MESH_NODES // 2):
        ticks = [np.arange(-half[i], half[i] + mesh[i] / 2, mesh[i]) + centre[i] for i in range(2)]
        nodes = np.stack(np.meshgrid(*ticks), -1).reshape(-1, 2)
    arrow = np.stack([centre, centre + r.arrow[t]]) if np.any(r.arrow[t]) else np.zeros((0, 2))
    points, colour = r.points[t], COLOURS.get(r.success[t], "#7f7f7f")
    path = r.x[: t + 1]
    return [
        go.Scatter(x=nodes[:, 0], y=nodes[:, 1], mode="markers", marker={"size": 3, "color": "#bbbbbb"}, name="mesh"),
        go.Scatter(
            x=square[:, 0], y=square[:, 1], mode="lines", line={"color": "#2ca02c", "dash": "dot"}, name="poll frame Δp"
        ),
        go.Scatter(
            x=points[:, 0],
            y=points[:, 1],
            mode="markers",
            marker={"size": 7, "color": colour},
            name=f"tried ({r.success[t]})",
        ),
        go.Scatter(
            x=arrow[:, 0],
            y=arrow[:, 1],
            mode="lines+markers",
            line={"color": "#d62728", "width": 3},
            marker={"symbol": "arrow", "angleref": "previous", "size": 12},
            name="attack step",
        ),
        go.Scatter(
            x=path[:, 0],
            y=path[:, 1],
            mode="lines+markers",
            line={"color": "white", "width": 1.5},
            marker={"size": 4},
            name="incumbent",
        ),
    ]


def slice_figure(r: Replay, axes: tuple[np.ndarray, np.ndarray], z: np.ndarray, t: int = 0) -> go.Figure:
    """log10 f on the slice (trace 0) under the search at iteration ``t`` (traces 1-5; see :func:`replay_frames`).

    Shapes:
        axes: (G,), (G,); z: (G, G) with rows along the second axis
    """
    fig = go.Figure(
        go.Contour(
            x=axes[0],
            y=axes[1],
            z=np.log10(np.maximum(z - z.min(), FLOOR)),
            ncontours=30,
            colorscale="Viridis",
            colorbar={"title": "log10(f − min)"},
            name="f",
        )
    )
    fig.add_traces(_frame_traces(r, t))
    return fig.update_layout(
        height=520,
        xaxis={"title": f"x{r.dims[0]}", "range": [axes[0][0], axes[0][-1]]},
        yaxis={"title": f"x{r.dims[1]}", "range": [axes[1][0], axes[1][-1]]},
        legend={"orientation": "h", "y": 1.08},
    )


def replay_frames(r: Replay, max_frames: int = 80) -> list[go.Frame]:
    """Frames of about ``max_frames`` iterations, each updating traces 1-5 (the contour stays)."""
    picked = np.unique(np.linspace(0, len(r.step) - 1, min(max_frames, len(r.step))).round().astype(int))
    return [go.Frame(data=_frame_traces(r, int(t)), traces=[1, 2, 3, 4, 5], name=str(r.evaluations[t])) for t in picked]


def gaps(c: Comparison) -> np.ndarray:
    """Each curve minus the best value any method reached on its problem (the y of the curves), floored.

    Shapes: -> (S, P × R, E)
    """
    best = c.curves[..., -1].min(axis=(0, 2))[None, :, None, None]  # (1, P, 1, 1)
    gap = np.maximum(c.curves - best, FLOOR)
    return gap.reshape(gap.shape[0], -1, gap.shape[-1])


def curves_figure(c: Comparison, labels: Mapping[str, str]) -> go.Figure:
    """Median best-value gap vs evaluations per method, with the 25-75 % band over problems and seeds."""
    fig, k = go.Figure(), np.arange(1, c.curves.shape[-1] + 1)
    for i, (method, gap) in enumerate(zip(c.methods, gaps(c), strict=True)):
        low, mid, high = np.quantile(gap, [0.25, 0.5, 0.75], axis=0)
        colour = f"hsl({int(360 * i / len(c.methods))},65%,45%)"
        band = np.concatenate([k, k[::-1]]), np.concatenate([high, low[::-1]])
        fig.add_trace(
            go.Scatter(
                x=band[0],
                y=band[1],
                fill="toself",
                line={"width": 0},
                fillcolor=colour,
                opacity=0.2,
                showlegend=False,
                hoverinfo="skip",
            )
        )
        fig.add_trace(go.Scatter(x=k, y=mid, line={"color": colour, "width": 2}, name=labels.get(method, method)))
    return fig.update_layout(
        height=420,
        xaxis_title="evaluations of f(Φ(x))",
        yaxis={"title": "f − best found (median, 25–75 %)", "type": "log", "exponentformat": "power"},
    )


def profile_figure(c: Comparison, profile: np.ndarray, labels: Mapping[str, str]) -> go.Figure:
    """Data profiles: the share of (problem, seed) runs solved after k evaluations, per method."""
    k = np.arange(1, profile.shape[-1] + 1)
    fig = go.Figure(
        [
            go.Scatter(x=k, y=p, line={"shape": "hv"}, name=labels.get(m, m))
            for m, p in zip(c.methods, profile, strict=True)
        ]
    )
    return fig.update_layout(
        height=380, xaxis_title="evaluations (budget)", yaxis={"title": "share of runs solved", "range": [0, 1.02]}
    )


def slice_grid(problem, centre: torch.Tensor, dims: tuple[int, int] = (0, 1), n: int = 80):
    """f on the plane through ``centre`` spanned by coordinates ``dims``, over the box: (axes, z) as numpy.

    Shapes:
        centre: (d,) -> axes: (n,), (n,); z: (n, n), z[i, j] = f at (axes[0][j], axes[1][i])
    """
    n = check_int("n", n, 2, 400)
    lo, hi = problem.lo, problem.hi
    a0, a1 = (torch.linspace(float(lo[i]), float(hi[i]), n, dtype=lo.dtype, device=lo.device) for i in dims)
    grid = centre.to(lo).repeat(n, n, 1)  # (n, n, d)
    grid[..., dims[0]], grid[..., dims[1]] = a0[None, :], a1[:, None]
    with torch.no_grad():
        z = problem(grid)
    return (a0.cpu().numpy(), a1.cpu().numpy()), z.double().cpu().numpy()
