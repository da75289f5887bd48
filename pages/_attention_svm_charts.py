"""The attention-SVM lab's charts and their explainers (UI only: every number comes from `core.attention_svm`)."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from core import attention_svm as asvm
from core.attention_svm.analysis import Plane
from pages import _ui as ui

REF = "Tarzanagh, Li, Thrampoulidis, Oymak (2023), Theorems 1-3; code umich-sota/TF-as-SVM."
NORM = {"w": ("fro", "Frobenius W^mm", "‖·‖_F"), "kq": ("nuc", "nuclear W⋆^mm", "‖·‖_*")}
RAY = 1.4  # drawn length of a unit direction in the token plane
TOKENS = {"mode": "markers+text", "textposition": "top center", "name": "tokens (colour = score γ)"}
MARKER = {"size": 14, "colorscale": "RdBu", "colorbar": {"title": "γ"}, "line": {"width": 1, "color": "black"}}
STAR = {"symbol": "star", "size": 22, "color": "gold", "line": {"width": 1}}
PLANE_LAYOUT = {
    "xaxis": {"range": [-1.6, 1.6], "scaleanchor": "y"},
    "yaxis": {"range": [-1.6, 1.6]},
    "legend": {"orientation": "h", "y": 1.02, "yanchor": "bottom", "x": 0},
    "margin": {"t": 90},
    "height": 460,
}


def line(x, y, name: str, mode: str = "lines", **style) -> go.Scatter:
    return go.Scatter(x=x, y=y, mode=mode, name=name, line=style)


def last(curve: np.ndarray | None) -> str:
    """A curve's final value as shown in metrics, or — when there is no curve (infeasible SVM)."""
    return "—" if curve is None else f"{curve[-1]:.4f}"


def bias_metrics(runs: dict[str, asvm.Run]) -> dict[str, str]:
    """The four correlations that tell the biases apart: each parameterization's W with each SVM."""
    names = {"w": "W", "kq": "KᵀQ"}
    return {
        f"{names[r.param]} vs {svm} SVM": last(corr)
        for r in runs.values()
        for svm, corr in (("Frobenius", r.corr_fro), ("nuclear", r.corr_nuc))
    }


def token_plane(plane: Plane, ks: list[int]) -> go.Figure:
    """Tokens coloured by score, the optimum starred, and W(k) z_i replayed against the SVM ray and margin lines."""
    X, star, rays = plane.tokens, plane.tokens[plane.optimal], RAY * plane.rays
    labels = [f"t={t}" for t in range(len(X))]
    fig = go.Figure(go.Scatter(x=X[:, 0], y=X[:, 1], text=labels, marker={**MARKER, "color": plane.scores}, **TOKENS))
    fig.add_scatter(x=[star[0]], y=[star[1]], mode="markers", name="optimal token (max γ)", marker=STAR)
    fig.add_trace(
        line([0, rays[0, 0]], [0, rays[0, 1]], "W(k) z_i (direction)", "lines+markers", width=4, color="crimson")
    )
    if plane.svm_ray is not None:
        fig.add_trace(line(*plane.boundary.T, "xᵀp = x_αᵀp (selected)", color="gray"))
        fig.add_trace(line(*plane.margin_line.T, "margin xᵀp = x_αᵀp − 1", dash="dot", color="gray"))
        svm_ray = RAY * plane.svm_ray
        fig.add_trace(line([0, svm_ray[0]], [0, svm_ray[1]], "W^mm z_i (SVM)", dash="dash", width=3, color="black"))
    frames = [
        go.Frame(data=[go.Scatter(x=[0, u[0]], y=[0, u[1]])], traces=[2], name=str(k))
        for k, u in zip(ks, rays, strict=True)
    ]
    return ui.animate(fig.update_layout(**PLANE_LAYOUT), frames, duration_ms=80)


def heat(probs: np.ndarray) -> go.Heatmap:
    return go.Heatmap(z=probs, zmin=0, zmax=1, colorscale="Viridis", colorbar={"title": "s_it"})


def heat_strip(r: asvm.Run, ks: list[int]) -> go.Figure:
    """The softmax of every sequence (rows) over its tokens, replayed over the steps `ks`."""
    fig = go.Figure(heat(r.probs[ks[0]])).update_layout(height=320, xaxis_title="token t", yaxis_title="sequence i")
    fig.update_layout(margin={"t": 30}, yaxis={"autorange": "reversed", "dtick": 1}, xaxis={"dtick": 1})
    return ui.animate(fig, [go.Frame(data=[heat(r.probs[k])], name=str(k)) for k in ks], duration_ms=80)


def curves(r: asvm.Run, *, lr: float, normalized: bool) -> go.Figure:
    """corr and log10(1 − corr) with both SVMs, ‖W(k)‖ against ‖W(0)‖ + ηk, and the normalized margin."""
    k = np.arange(len(r.norm))
    fig = make_subplots(2, 2, subplot_titles=("corr(W(k), W^mm)", "log10(1 − corr)", "‖W(k)‖_F", "normalized margin"))
    for corr, name, color in ((r.corr_fro, NORM["w"][1], "royalblue"), (r.corr_nuc, NORM["kq"][1], "darkorange")):
        if corr is not None:
            fig.add_trace(line(k, corr, name, color=color), row=1, col=1)
            fig.add_trace(line(k, asvm.log10_gap(corr), name, color=color).update(showlegend=False), row=1, col=2)
    fig.add_trace(line(k, r.norm, "‖W(k)‖", color="crimson"), row=2, col=1)
    if normalized:
        fig.add_trace(line(k, r.norm[0] + lr * k, "‖W(0)‖ + ηk", dash="dot", color="gray"), row=2, col=1)
    if r.margin is not None:
        fig.add_trace(line(k, r.margin, "min margin / ‖W‖", color="seagreen"), row=2, col=2)
        fig.add_hline(r.svm_margin, line_dash="dash", row=2, col=2, annotation_text="1/‖W^mm‖ (SVM)")
    return fig.update_layout(height=560, margin={"t": 40}, legend={"orientation": "h", "y": -0.12})


def sv_bars(r: asvm.Run) -> go.Figure:
    """Singular values σ/σ_max of GD's final W and of its own SVM."""
    fig = go.Figure().update_layout(height=300, barmode="group", xaxis_title="index i", yaxis_title="σᵢ / σ_max")
    fig.update_layout(title=f"Singular values of the trained {r.param.upper()} and of its SVM")
    for M, name in ((r.W[-1], f"GD {r.param.upper()}: W(k)"), (r.svm_own, f"SVM {NORM[r.param][2]}")):
        if M is not None:
            fig.add_bar(x=np.arange(1, len(M) + 1), y=asvm.spectrum(M), name=name)
    return fig.update_layout(margin={"t": 40})


def conventions(on: asvm.Run, off: asvm.Run) -> go.Figure:
    """log10(1 − corr) with the run's own SVM, with the reference implementation's ε conventions and without."""
    fig = go.Figure().update_layout(height=320, xaxis_title="iteration k", title="Direction error with ε on / off")
    fig.update_layout(yaxis_title=f"log10(1 − corr) with the {NORM[on.param][1]}")
    for r, name in ((on, "conventions on (‖∇‖ + ε, (K,Q) decay ε)"), (off, "off (‖∇‖ alone, no decay)")):
        if r.corr_own is not None:
            fig.add_trace(line(np.arange(len(r.norm)), asvm.log10_gap(r.corr_own), name))
    return fig


def explain_plane(r: asvm.Run) -> None:
    ui.explainer(
        "token plane and heat strip",
        r"s_i=\mathrm{softmax}(X_i W z_i),\quad W^{mm}=\arg\min\|W\|_F\ \text{s.t.}\ (x_{i\alpha_i}-x_{it})^\top W z_i\ge 1",
        {"selection": r.kind, "selected tokens": r.selected.tolist()},
        REF,
        text="Press Play: the red ray W(k)z_i turns onto the dashed SVM ray; tokens beyond the dotted margin line "
        "are the support tokens. Each row of the strip becomes one-hot.",
    )


def explain_curves(r: asvm.Run) -> None:
    ui.explainer(
        "the curves",
        [
            r"\mathrm{corr}(A,B)=\langle A,B\rangle/(\|A\|_F\|B\|_F)",
            r"\|W(k)\|\le\|W(0)\|+\eta k\ \text{(normalized GD)}",
        ],
        {"final corr (Frobenius)": last(r.corr_fro), "final corr (nuclear)": last(r.corr_nuc)},
        REF,
        text="The norm grows without bound while the direction converges: log(1 − corr) keeps falling.",
    )


def explain_spectra(r: asvm.Run) -> None:
    ui.explainer(
        "singular values",
        r"W_\star^{mm}=\arg\min\|W\|_\ast\ \text{s.t. the same margins}",
        {"rank SVM_F": r.ranks["fro"], "rank SVM_*": r.ranks["nuc"]},
        REF,
        text="Training (K, Q) biases W = KᵀQ towards the nuclear-norm SVM, whose solution has lower rank.",
    )


def explain_conventions(on: asvm.Run, off: asvm.Run) -> None:
    ui.explainer(
        "the conventions",
        r"W\leftarrow W-\eta\,\frac{\nabla L}{\|\nabla L\|_F+\varepsilon},\ \varepsilon=2.2\times10^{-16}",
        {"on: final ‖∇L‖": float(on.grad_norm[-1]), "off: final ‖∇L‖": float(off.grad_norm[-1])},
        REF,
        text="After the softmax saturates, ‖∇L‖ falls towards machine precision and its float64 *direction* is "
        "rounding noise. With + ε the step shrinks and the iterate freezes with its direction converged; dividing "
        "by ‖∇L‖ alone keeps taking full steps along noise, so the correlation ends lower and depends on the last "
        "bits of the arithmetic. The ε weight decay on (K, Q) does the same job for the factorized model.",
    )
