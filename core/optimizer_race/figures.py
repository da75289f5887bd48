"""Plotly figures of the race: validation curves with target lines and hits, LR beliefs, the performance profile."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import plotly.colors
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from core.optimizer_race.optimizers import OPTIMIZERS
from core.optimizer_race.scoring import performance_profile, ratios, score
from core.optimizer_race.studies import Study
from core.optimizer_race.workloads import WORKLOADS

PALETTE = plotly.colors.qualitative.Dark24
COLORS = {key: PALETTE[i % len(PALETTE)] for i, key in enumerate(OPTIMIZERS)}
TAUS = np.linspace(1.0, 4.0, 301)


def median_study(studies: Sequence[Study], target: float, clock: str) -> Study:
    """The study whose time to target is the median of its seeds (the one AlgoPerf's median picks)."""
    ranked = sorted(studies, key=lambda s: (s.time_to(target, clock), s.seed))
    return ranked[(len(ranked) - 1) // 2]


def race_figure(
    studies: Sequence[Study], targets: Mapping[str, float], clock: str, workloads: Sequence[str] = tuple(WORKLOADS)
) -> go.Figure:
    """One row per workload: the median study's validation curve per optimizer (target line, hit markers) and,
    beside it, the learning rate each method believes in."""
    titles = [t for w in workloads for t in (f"{WORKLOADS[w].title}: {WORKLOADS[w].metric}", "LR belief")]
    fig = make_subplots(rows=len(workloads), cols=2, subplot_titles=titles, column_widths=[0.62, 0.38])
    for row, w in enumerate(workloads, start=1):
        by_opt: dict[str, list[Study]] = {}
        for s in studies:
            if s.workload == w:
                by_opt.setdefault(s.optimizer, []).append(s)
        for group in by_opt.values():
            _add_study(fig, median_study(group, targets[w], clock), targets[w], clock, row, show=row == 1)
        fig.add_hline(y=targets[w], line_dash="dash", line_color="black", row=row, col=1)  # after the traces:
        fig.update_yaxes(type="log", row=row, col=2)  # plotly skips lines on a subplot that is still empty
    fig.update_xaxes(title_text="CPU s" if clock == "seconds" else "step", row=len(workloads))
    fig.update_layout(height=260 * len(workloads), margin={"t": 40, "b": 30}, legend={"orientation": "h"})
    return fig


def _add_study(fig: go.Figure, s: Study, target: float, clock: str, row: int, *, show: bool) -> None:
    spec, color = OPTIMIZERS[s.optimizer], COLORS[s.optimizer]
    x = s.steps if clock == "steps" else s.seconds
    common = {"legendgroup": s.optimizer, "line": {"color": color}, "name": spec.label}
    fig.add_trace(go.Scatter(x=x, y=s.values, mode="lines", showlegend=show, **common), row=row, col=1)
    hit = s.time_to(target, clock)
    if math.isfinite(hit):
        marker = {"color": color, "size": 9, "symbol": "star"}
        fig.add_trace(
            go.Scatter(
                x=[hit],
                y=[target],
                mode="markers",
                marker=marker,
                showlegend=False,
                legendgroup=s.optimizer,
                name=f"{spec.label} hits",
            ),
            row=row,
            col=1,
        )
    beliefs = [(t, b) for t, b in zip(x, s.beliefs, strict=True) if b is not None]
    if beliefs:
        bx, by = zip(*beliefs, strict=True)
        fig.add_trace(go.Scatter(x=bx, y=by, mode="lines", showlegend=False, **common), row=row, col=2)
    if s.diverged_at is not None:
        fig.add_vline(x=x[-1], line_color=color, line_dash="dot", row=row, col=1)


def profile_figure(times: Mapping[str, Mapping[str, float]], tau_max: float = 4.0) -> go.Figure:
    """AlgoPerf performance profiles ρ(τ) as step functions on τ ∈ [1, τ_max], one per method."""
    fig = go.Figure()
    scores = score(times, tau_max=tau_max)
    for key, rho in performance_profile(times, TAUS, tau_max=tau_max).items():
        name = f"{OPTIMIZERS[key].label} ({scores[key]:.3f})"
        fig.add_trace(go.Scatter(x=TAUS, y=rho, mode="lines", line_shape="hv", name=name, line={"color": COLORS[key]}))
    fig.update_layout(xaxis_title="τ (time / fastest time)", yaxis_title="ρ(τ): share of workloads", height=380)
    return fig


def leaderboard(times: Mapping[str, Mapping[str, float]], tau_max: float = 4.0) -> list[dict]:
    """Rows ``{optimizer, score, per-workload time and ratio}``, best score first."""
    scores, r = score(times, tau_max=tau_max), ratios(times, tau_max=tau_max)
    rows = [
        {"optimizer": OPTIMIZERS[k].label, "score": scores[k]}
        | {f"{w} time": times[k].get(w, math.inf) for w in r[k]}
        | {f"{w} ratio": r[k][w] for w in r[k]}
        for k in times
    ]
    return sorted(rows, key=lambda row: -row["score"])


def curve_rows(studies: Sequence[Study]) -> list[dict]:
    """Every evaluation of every study as a flat row (for the CSV download)."""
    return [
        {
            "workload": s.workload,
            "optimizer": s.optimizer,
            "seed": s.seed,
            "step": t,
            "cpu_s": c,
            "value": v,
            "lr_belief": b,
        }
        for s in studies
        for t, c, v, b in zip(s.steps, s.seconds, s.values, s.beliefs, strict=True)
    ]


def calibration_figure(lrs: Sequence[float], median_best: Sequence[float], target: float, frozen_lr: float):
    """The target-setting grid: median best metric per learning rate, the target, and the frozen AlgoPerf LR."""
    fig = go.Figure(
        go.Scatter(
            x=list(lrs),
            y=[v if math.isfinite(v) else None for v in median_best],
            mode="lines+markers",
            name="NadamW: median best over seeds",
        )
    )
    fig.add_hline(y=target, line_dash="dash", annotation_text="target")
    fig.add_vline(x=frozen_lr, line_dash="dot", line_color="red", annotation_text="AlgoPerf's frozen lr")
    fig.update_xaxes(type="log", title_text="learning rate")
    fig.update_layout(height=320, yaxis_title="median best validation metric")
    return fig
