"""Plotly figures of the privacy lab: curves over seeds, the estimate's error replayed, the ε ledger, the regime map."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from core.privacy.accountant import regime_ratio
from core.privacy.compare import METHODS

COLORS = {"dp-gd": "#7f7f7f", "diff2": "#d62728"}
FORMULAS = {
    "estimator": [
        r"r \bmod T = 0:\quad v_r=\tfrac1N\sum_i \mathrm{clip}_c\,g_i(x_r)+\mathcal N\big(0,(z_1\tfrac{2c}{N})^2 I\big)",
        r"\text{else}:\quad v_r=v_{r-1}+\tfrac1N\sum_i \mathrm{clip}_{c_r}\big(g_i(x_r)-g_i(x_{r-1})\big)"
        r"+\mathcal N\big(0,(z_2\tfrac{2c_r}{N})^2 I\big),\ c_r=c_2\|x_r-x_{r-1}\|",
        r"x_{r+1}=x_r-\eta\,v_r,\qquad T=1:\ \text{DP-GD}",
    ],
    "privacy": [
        r"\alpha=1+\lceil 2\ln(1/\delta)/\varepsilon\rceil,\quad z_{GD}^2=\tfrac{\alpha R}{\varepsilon},\quad"
        r"z_1^2=\tfrac{u\,\alpha\lceil R/T\rceil}{\varepsilon},\quad z_2^2=\tfrac{u}{u-1}\tfrac{\alpha R}{\varepsilon},\ u=1.25",
        r"\varepsilon_{\text{classic}}=\sum_r \tfrac{\alpha}{2z_r^2}+\tfrac{\ln(1/\delta)}{\alpha-1}\le\varepsilon",
    ],
    "regime": [
        r"\text{DP-GD: }\tilde O\Big(\tfrac{\sqrt d}{n\varepsilon}\Big),\quad"
        r"\text{DIFF2: }\tilde O\Big(\tfrac{d^{2/3}}{(n\varepsilon)^{4/3}}\Big),\quad"
        r"\tfrac{\text{DIFF2}}{\text{DP-GD}}=d^{1/6}(n\varepsilon)^{-1/3}<1\iff n\varepsilon\gtrsim\sqrt d"
    ],
}


def curves_figure(curves: dict[str, np.ndarray], title: str, *, log: bool = True) -> go.Figure:
    """Mean over seeds per method, with a min–max band. curves[method]: (S, R)."""
    fig = go.Figure()
    for key, values in curves.items():
        rounds = np.arange(values.shape[1])
        low, high = np.nanmin(values, 0), np.nanmax(values, 0)
        fig.add_trace(
            go.Scatter(
                x=np.r_[rounds, rounds[::-1]],
                y=np.r_[high, low[::-1]],
                fill="toself",
                fillcolor=COLORS[key],
                opacity=0.15,
                line={"width": 0},
                showlegend=False,
                hoverinfo="skip",
            )
        )
        fig.add_trace(go.Scatter(x=rounds, y=np.nanmean(values, 0), name=METHODS[key], line={"color": COLORS[key]}))
    fig.update_layout(title=title, xaxis_title="round r", height=330, margin={"t": 50, "b": 10})
    return fig.update_yaxes(type="log" if log else "linear")


def error_replay(errors: dict[str, np.ndarray], restarts: np.ndarray, frames: int = 40) -> tuple[go.Figure, list]:
    """Seed 0's ‖v_r − ∇f(x_r)‖² round by round, restarts marked; frames reveal the rounds. errors[method]: (R,)."""
    rounds = np.arange(len(restarts))
    top = max(float(np.nanmax(e)) for e in errors.values())
    low = min((float(np.nanmin(e[e > 0])) for e in errors.values() if (e > 0).any()), default=top / 10)
    fig = go.Figure(
        [go.Scatter(x=rounds[:1], y=e[:1], name=METHODS[k], line={"color": COLORS[k]}) for k, e in errors.items()]
    )
    for r in rounds[restarts][1:]:
        fig.add_vline(x=int(r), line={"width": 1, "dash": "dot", "color": "#d62728"}, opacity=0.3)
    fig.update_layout(
        title="The estimate's squared error ‖v − ∇f‖² per round (dotted: DIFF2's restarts)",
        xaxis={"range": [0, len(rounds)], "title": "round r"},
        height=360,
        margin={"t": 50},
    )
    fig.update_yaxes(type="log", range=[np.log10(low) - 0.2, np.log10(top) + 0.2])
    cuts = np.unique(np.linspace(1, len(rounds), frames).round().astype(int))
    replay = [go.Frame(data=[go.Scatter(x=rounds[:c], y=e[:c]) for e in errors.values()], name=str(c)) for c in cuts]
    return fig, replay


def ledger_figure(spent: dict[str, np.ndarray], target: float) -> go.Figure:
    """ε spent after each round (opacus RDP accountant), both schedules, against the target. spent[method]: (R,)."""
    fig = go.Figure([go.Scatter(y=v, name=METHODS[k], line={"color": COLORS[k]}) for k, v in spent.items()])
    fig.add_hline(y=target, line={"dash": "dash"}, annotation_text=f"target ε = {target:g}")
    return fig.update_layout(
        title="Privacy spent ε vs rounds (opacus RDP)", xaxis_title="round r", height=330, margin={"t": 50, "b": 10}
    )


def regime_figure(n: int, epsilon: float, d: int) -> go.Figure:
    """log10 of DIFF2's bound over DP-GD's on a (nε, d) grid, the boundary nε = √d, and the current setting."""
    n_eps, dims = np.logspace(0, 6, 61), np.logspace(0, 5, 51)
    z = np.log10([[regime_ratio(ne, 1.0, dd) for ne in n_eps] for dd in dims])
    fig = go.Figure(
        go.Heatmap(x=n_eps, y=dims, z=z, colorscale="RdBu", zmid=0, colorbar={"title": "log10 DIFF2/DP-GD"})
    )
    fig.add_trace(go.Scatter(x=np.sqrt(dims), y=dims, mode="lines", line={"color": "black"}, name="nε = √d"))
    fig.add_trace(
        go.Scatter(
            x=[n * epsilon],
            y=[d],
            mode="markers",
            marker={"size": 14, "symbol": "x", "color": "gold"},
            name="this setting",
        )
    )
    fig.update_xaxes(type="log", title="n ε (samples × ε)")
    fig.update_yaxes(type="log", title="d (parameters)")
    return fig.update_layout(title="Where DIFF2 helps, by its bounds (blue: DIFF2's bound is lower)", height=380)
