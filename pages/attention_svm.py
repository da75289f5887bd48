"""Transformers as SVMs: GD on one attention layer selects a token per sequence and its direction converges
to a max-margin SVM (Frobenius for W, nuclear for (K, Q)). All math is in `core.attention_svm`."""

import numpy as np
import plotly.graph_objects as go
import streamlit as st
from plotly.subplots import make_subplots

from core import attention_svm as asvm
from pages import _ui as ui

REF = "Tarzanagh, Li, Thrampoulidis, Oymak (2023), Theorems 1-3; code umich-sota/TF-as-SVM."
KIND_BADGE = {"global": ":green-badge[global optimum selected]", "local": ":orange-badge[local optimum selected]",
              "not optimal": ":gray-badge[not (yet) a locally optimal selection]",
              "infeasible": ":red-badge[infeasible: no W separates the selected tokens]"}

ui.header("attention_svm")
ui.presets({
    "Token plane (d = 2)": {"n": 3, "T": 5, "d": 2, "seed": 0},
    "Local optimum (d = 2)": {"n": 4, "T": 3, "d": 2, "seed": 0},
    "Global optimum infeasible (d = 2)": {"n": 3, "T": 4, "d": 2, "seed": 9},
    "Paper: n = 6, T = 8, d = 10": {"n": 6, "T": 8, "d": 10, "seed": 0},
})
param = ui.radio("Parameterization", asvm.PARAMS, "W", key="param")
normalized = ui.toggle("Normalized GD (step ∇/‖∇‖)", True, key="ngd")
lr = ui.select("Step size η", [0.01, 0.03, 0.1, 0.3, 1.0], 0.1, key="lr")
steps = ui.select("Iterations", [200, 500, 1000, 2000], 2000, key="steps")
n = ui.slider("Sequences n", 1, 12, 3, key="n")
T = ui.slider("Tokens per sequence T", 2, 12, 5, key="T")
d = ui.slider("Dimension d", 1, 16, 2, key="d")
seed = ui.seed()
other = "KQ" if param == "W" else "W"
own_norm = "fro" if param == "W" else "nuc"


@st.cache_resource(max_entries=64)
def svm_cache(n: int, T: int, d: int, seed: int) -> dict:
    """Per problem: SVM solutions keyed on the selected set, so an unchanged selection is never re-solved."""
    return {}


@st.cache_data(max_entries=24, show_spinner="Training attention…")
def compute(n, T, d, seed, param, normalized, lr, steps, conventions) -> asvm.Run:
    problem = asvm.make_problem(n, T, d, seed)
    return asvm.run(problem, param, steps, lr, normalized, seed, conventions, svm_cache=svm_cache(n, T, d, seed))


def frame_steps(steps: int, count: int = 60) -> list[int]:
    return sorted({0, steps, *np.unique(np.geomspace(1, steps, count).astype(int)).tolist()})


def token_plane(problem, r: asvm.Run, i: int, ks: list[int]) -> go.Figure:
    X, gamma, a = problem.X[i].numpy(), problem.scores[i].numpy(), int(r.selected[i])
    opt = int(gamma.argmax())
    rays = [r.W[k] @ problem.z[i].numpy() for k in ks]
    unit = [1.4 * w / max(np.linalg.norm(w), 1e-300) for w in rays]
    fig = go.Figure([
        go.Scatter(x=X[:, 0], y=X[:, 1], mode="markers+text", text=[f"t={t}" for t in range(len(X))],
                   textposition="top center", name="tokens (colour = score γ)",
                   marker={"size": 14, "color": gamma, "colorscale": "RdBu", "showscale": True,
                           "colorbar": {"title": "γ"}, "line": {"width": 1, "color": "black"}}),
        go.Scatter(x=[X[opt, 0]], y=[X[opt, 1]], mode="markers", name="optimal token (max γ)",
                   marker={"symbol": "star", "size": 22, "color": "gold", "line": {"width": 1}}),
        go.Scatter(x=[0, unit[0][0]], y=[0, unit[0][1]], mode="lines+markers", name="W(k) z_i (direction)",
                   line={"width": 4, "color": "crimson"}),
    ])
    if r.svm_fro is not None:
        p = r.svm_fro @ problem.z[i].numpy()
        u, c = p / np.linalg.norm(p), X[a] @ p
        perp, s = np.array([-u[1], u[0]]), np.linspace(-3, 3, 2)
        for off, dash, name in ((0.0, "solid", "xᵀp = x_αᵀp (selected)"), (1.0, "dot", "margin xᵀp = x_αᵀp − 1")):
            base = u * (c - off) / np.linalg.norm(p)
            fig.add_scatter(x=base[0] + s * perp[0], y=base[1] + s * perp[1], mode="lines", name=name,
                            line={"dash": dash, "color": "gray"})
        fig.add_scatter(x=[0, 1.4 * u[0]], y=[0, 1.4 * u[1]], mode="lines", name="W^mm z_i (SVM)",
                        line={"dash": "dash", "width": 3, "color": "black"})
    frames = [go.Frame(data=[go.Scatter(x=[0, w[0]], y=[0, w[1]])], traces=[2], name=str(k))
              for k, w in zip(ks, unit, strict=True)]
    fig.update_layout(height=460, xaxis={"range": [-1.6, 1.6], "scaleanchor": "y"}, yaxis={"range": [-1.6, 1.6]},
                      legend={"orientation": "h", "y": 1.02, "yanchor": "bottom", "x": 0}, margin={"t": 90})
    return ui.animate(fig, frames, duration_ms=80)


def heat_strip(r: asvm.Run, ks: list[int]) -> go.Figure:
    def heat(k):
        return go.Heatmap(z=r.probs[k], zmin=0, zmax=1, colorscale="Viridis", colorbar={"title": "s_it"})

    fig = go.Figure([heat(ks[0])])
    fig.update_layout(height=320, xaxis_title="token t", yaxis_title="sequence i", margin={"t": 30},
                      yaxis={"autorange": "reversed"})
    return ui.animate(fig, [go.Frame(data=[heat(k)], name=str(k)) for k in ks], duration_ms=80)


def curves(r: asvm.Run) -> go.Figure:
    k = np.arange(len(r.norm))
    fig = make_subplots(2, 2, subplot_titles=("corr(W(k), W^mm)", "log10(1 − corr)", "‖W(k)‖_F",
                                              "normalized margin"))
    for curve, name, color in ((r.corr_fro, "Frobenius W^mm", "royalblue"), (r.corr_nuc, "nuclear W⋆^mm", "darkorange")):
        if curve is not None:
            fig.add_scatter(x=k, y=curve, name=name, line={"color": color}, row=1, col=1)
            fig.add_scatter(x=k, y=np.log10(np.clip(1 - curve, 1e-16, None)), name=name, showlegend=False,
                            line={"color": color}, row=1, col=2)
    fig.add_scatter(x=k, y=r.norm, name="‖W(k)‖", line={"color": "crimson"}, row=2, col=1)
    if normalized:
        fig.add_scatter(x=k, y=r.norm[0] + lr * k, name="‖W(0)‖ + ηk", line={"dash": "dot", "color": "gray"},
                        row=2, col=1)
    if r.margin is not None:
        fig.add_scatter(x=k, y=r.margin, name="min margin / ‖W‖", line={"color": "seagreen"}, row=2, col=2)
        fig.add_hline(y=1 / np.linalg.norm(r.svm_fro), line_dash="dash", row=2, col=2,
                      annotation_text="1/‖W^mm‖ (SVM)")
    fig.update_layout(height=560, margin={"t": 40}, legend={"orientation": "h", "y": -0.12})
    return fig


def sv_bars(r: asvm.Run, label: str) -> go.Figure:
    svm = r.svm_fro if label == "W" else r.svm_nuc
    fig = go.Figure()
    for M, name in ((r.W[-1], f"GD {label}: W(k)"), (svm, "SVM " + ("‖·‖_F" if label == "W" else "‖·‖_*"))):
        if M is not None:
            s = np.linalg.svd(M, compute_uv=False)
            fig.add_bar(x=np.arange(1, len(s) + 1), y=s / s.max(), name=name)
    fig.update_layout(height=300, barmode="group", xaxis_title="index", yaxis_title="σ / σ_max", margin={"t": 30})
    return fig


with ui.errors("the attention-SVM lab"):
    problem = asvm.make_problem(n, T, d, seed)
    main = compute(n, T, d, seed, param, normalized, lr, steps, True)
    global_fro = asvm.solve_both(problem, asvm.optimal_tokens(problem), svm_cache(n, T, d, seed))["fro"]
    own = main.corr_fro if param == "W" else main.corr_nuc
    st.markdown(KIND_BADGE[main.kind] + ("" if global_fro is not None else
                "  :red-badge[global optimum infeasible at this d]"))
    m = st.columns(4)
    m[0].metric(f"corr with own SVM ({own_norm})", "—" if own is None else f"{own[-1]:.4f}")
    m[1].metric("max softmax prob (min over i)", f"{main.probs[-1].max(-1).min():.4f}")
    m[2].metric("‖W(k)‖ at the end", f"{main.norm[-1]:.1f}")
    m[3].metric("selected = global optimum", f"{int((main.selected == asvm.optimal_tokens(problem).numpy()).sum())}/{n}")
    if main.kind == "infeasible":
        st.warning("No W separates the tokens GD selected from the rest: the SVM is infeasible, so there is no "
                   "max-margin direction to converge to and the correlation curves are not drawn.")
    if global_fro is None:
        st.info("The globally optimal tokens cannot be separated by any W at this d (common at d = 2); "
                "GD settles on another selection.")
    ks = frame_steps(steps)
    left, right = st.columns(2)
    with left:
        st.subheader("Token plane")
        if d == 2:
            i = ui.select("Sequence shown", list(range(n)), 0, "seq", where=st)
            ui.chart(token_plane(problem, main, i, ks), key="plane", data={"X": problem.X[i].numpy(),
                     "scores": problem.scores[i].numpy(), "svm_fro": main.svm_fro})
        else:
            st.caption("The token plane needs d = 2 (try the first preset).")
    with right:
        st.subheader("Softmax s_i sharpening to one-hot")
        ui.chart(heat_strip(main, ks), key="heat", data={"steps": ks, "probs": main.probs[ks]})
    ui.explainer("token plane and heat strip", r"s_i=\mathrm{softmax}(X_i W z_i),\quad "
                 r"W^{mm}=\arg\min\|W\|_F\ \text{s.t.}\ (x_{i\alpha_i}-x_{it})^\top W z_i\ge 1",
                 {"selection": main.kind, "selected tokens": main.selected.tolist()}, REF,
                 text="Press Play: the red ray W(k)z_i turns onto the dashed SVM ray; tokens beyond the dotted "
                      "margin line are the support tokens. Each row of the strip becomes one-hot.")
    st.subheader("Convergence to the SVM")
    ui.chart(curves(main), key="curves", data={"corr_fro": main.corr_fro, "corr_nuc": main.corr_nuc,
                                                 "norm": main.norm, "margin": main.margin})
    ui.explainer("the curves", [r"\mathrm{corr}(A,B)=\langle A,B\rangle/(\|A\|_F\|B\|_F)",
                                r"\|W(k)\|\le\|W(0)\|+\eta k\ \text{(normalized GD)}"],
                 {"final corr (Frobenius)": None if main.corr_fro is None else float(main.corr_fro[-1]),
                  "final corr (nuclear)": None if main.corr_nuc is None else float(main.corr_nuc[-1])}, REF,
                 text="The norm grows without bound while the direction converges: log(1 − corr) keeps falling.")

    st.subheader("W vs (K, Q): Frobenius vs nuclear-norm bias")
    runs = {param: main, other: compute(n, T, d, seed, other, normalized, lr, steps, True)}
    cols = st.columns(2)
    for col, label in zip(cols, ("W", "KQ"), strict=True):
        r = runs[label]
        mine, theirs = (r.corr_fro, r.corr_nuc) if label == "W" else (r.corr_nuc, r.corr_fro)
        col.markdown(f"**{asvm.PARAMS[label]}**: corr own SVM "
                     f"{'—' if mine is None else f'{mine[-1]:.4f}'}, other's {'—' if theirs is None else f'{theirs[-1]:.4f}'}")
        ui.chart(sv_bars(r, label), key=f"sv-{label}", where=col)
    ui.explainer("singular values", r"W_\star^{mm}=\arg\min\|W\|_\ast\ \text{s.t. the same margins}",
                 {"rank SVM_F": None if main.svm_fro is None else asvm.rank(main.svm_fro),
                  "rank SVM_*": None if main.svm_nuc is None else asvm.rank(main.svm_nuc)}, REF,
                 text="Training (K, Q) biases W = KᵀQ towards the nuclear-norm SVM, whose solution has lower rank.")

    st.subheader("Numerical conventions on vs off")
    off = compute(n, T, d, seed, param, normalized, lr, steps, False)
    fig = go.Figure()
    for r, name in ((main, "conventions on (‖∇‖ + ε, (K,Q) decay ε)"), (off, "off (‖∇‖ alone, no decay)")):
        c = r.corr_fro if param == "W" else r.corr_nuc
        if c is not None:
            fig.add_scatter(x=np.arange(len(c)), y=np.log10(np.clip(1 - c, 1e-16, None)), name=name)
    fig.update_layout(height=320, yaxis_title=f"log10(1 − corr) with the {own_norm} SVM", xaxis_title="k")
    ui.chart(fig, key="conventions")
    ui.explainer("the conventions", r"W\leftarrow W-\eta\,\frac{\nabla L}{\|\nabla L\|_F+\varepsilon},\ "
                 r"\varepsilon=2.2\times10^{-16}", {"on: final ‖∇L‖": float(main.grad_norm[-1]),
                                                   "off: final ‖∇L‖": float(off.grad_norm[-1])}, REF,
                 text="After the softmax saturates, ‖∇L‖ falls towards machine precision and its float64 "
                      "*direction* is rounding noise. With + ε the step shrinks and the iterate freezes with "
                      "its direction converged; dividing by ‖∇L‖ alone keeps taking full steps along noise, so "
                      "the correlation ends lower and depends on the last bits of the arithmetic. The ε weight "
                      "decay on (K, Q) does the same job for the factorized model.")

    st.subheader("Live")
    cache = svm_cache(n, T, d, seed)

    def render(states) -> None:
        if not states:
            st.caption("Press Play or Step to train live.")
            return
        s = states[-1]
        svm = asvm.solve_both(problem, s.selected.numpy(), cache)[own_norm]  # cached on the selected set
        c1, c2, c3 = st.columns(3)
        c1.metric("loss", f"{float(s.loss):.4g}")
        c2.metric("‖W‖", f"{float(s.W.norm()):.2f}")
        c3.metric("corr with own SVM", "infeasible" if svm is None else f"{asvm.correlation(s.W, svm):.4f}")
        st.plotly_chart(go.Figure(go.Heatmap(z=s.probs.numpy(), zmin=0, zmax=1)).update_layout(height=250),
                        key="live-heat")

    ui.Player("asvm-live", lambda: asvm.train(problem, param, steps, lr, normalized, seed),
              (n, T, d, seed, param, normalized, lr, steps), render, max_states=steps + 1).show()
