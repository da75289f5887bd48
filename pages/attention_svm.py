"""Transformers as SVMs: GD on one attention layer selects a token per sequence and its direction converges
to a max-margin SVM (Frobenius for W, nuclear for (K, Q)). All math is in `core.attention_svm`; the charts
and their explainers are in `pages/_attention_svm_charts.py`."""

import plotly.graph_objects as go
import streamlit as st

from core import attention_svm as asvm
from pages import _attention_svm_charts as charts
from pages import _ui as ui

BADGE = {
    "global": ":green-badge[global optimum selected]",
    "local": ":orange-badge[local optimum selected]",
    "not optimal": ":gray-badge[not (yet) a locally optimal selection]",
    "infeasible": ":red-badge[infeasible: no W separates the selected tokens]",
}
PRESETS = {
    "Token plane (d = 2)": {"n": 3, "T": 5, "d": 2, "seed": 0},
    "Local optimum (d = 2)": {"n": 4, "T": 3, "d": 2, "seed": 0},
    "Global optimum infeasible (d = 2)": {"n": 3, "T": 4, "d": 2, "seed": 9},
    "Paper: n = 6, T = 8, d = 10": {"n": 6, "T": 8, "d": 10, "seed": 0},
}

ui.header("attention_svm")
ui.presets(PRESETS)
if (old := st.query_params.get("param")) in ("W", "KQ"):  # links from before the registry keys
    st.query_params["param"] = old.lower()
param = ui.radio("Parameterization", asvm.PARAMS, "w", key="param")
normalized = ui.toggle("Normalized GD (step ∇/‖∇‖)", True, key="ngd")
lr = ui.select("Step size η", [0.01, 0.03, 0.1, 0.3, 1.0], 0.1, key="lr")
steps = ui.select("Iterations", [200, 500, 1000, 2000], 2000, key="steps")
# Default problem: the two SVMs differ (W: 0.9993 with Frobenius vs 0.918 with nuclear; (K, Q): 0.9995 vs 0.939)
n = ui.slider("Sequences n", 1, 12, 2, key="n")
T = ui.slider("Tokens per sequence T", 2, 12, 6, key="T")
d = ui.slider("Dimension d", 1, 16, 2, key="d")
seed = ui.seed()
setup = (n, T, d, seed, steps, lr, normalized)


@st.cache_resource
def svm_cache() -> asvm.SVMCache:
    """SVM solutions for every session (bounded, thread-safe): an unchanged selection is never re-solved."""
    return asvm.SVMCache()


def problem_on_device(n: int, T: int, d: int, seed: int) -> asvm.Problem:
    return asvm.make_problem(n=n, T=T, d=d, seed=seed, device=ui.device())


@st.cache_data(max_entries=24, show_spinner="Training attention…")
def compute(setup: tuple, param: str, conventions: bool = True) -> asvm.Run:
    n, T, d, seed, steps, lr, normalized = setup
    problem = problem_on_device(n, T, d, seed)
    states = asvm.run(
        problem, param=param, steps=steps, lr=lr, normalized=normalized, conventions=conventions, seed=seed
    )
    return asvm.analyze(problem, states, cache=svm_cache())


with ui.errors("the attention-SVM lab"):
    main, problem = compute(setup, param), problem_on_device(n, T, d, seed)
    runs = {key: main if key == param else compute(setup, key) for key in asvm.PARAMS}
    st.markdown(
        BADGE[main.kind] + ("" if main.global_feasible else "  :red-badge[global optimum infeasible at this d]")
    )
    st.markdown("**Which SVM does training converge to?** Correlation of the trained W with each max-margin SVM:")
    ui.metrics(charts.bias_metrics(runs))
    ui.metrics(
        {
            f"corr with own SVM ({charts.NORM[param][0]})": charts.last(main.corr_own),
            "max softmax prob (min over i)": main.saturation,
            "‖W(k)‖ at the end": float(main.norm[-1]),
            "selected = global optimum": f"{main.n_global}/{n}",
        }
    )
    if main.kind == "infeasible":
        st.warning(
            "No W separates the tokens GD selected from the rest: the SVM is infeasible, so there is no "
            "max-margin direction to converge to and the correlation curves are not drawn."
        )
    if not main.global_feasible:
        st.info(
            "The globally optimal tokens cannot be separated by any W at this d (common at d = 2); "
            "GD settles on another selection."
        )
    ks = main.frame_steps()
    left, right = st.columns(2)
    left.subheader("Token plane")
    if d == 2:
        i = ui.select("Sequence shown", list(range(n)), 0, "seq", where=left)
        plane = asvm.plane_geometry(problem, main, sequence=i, frames=ks)
        table = {"X": plane.tokens, "scores": plane.scores, "svm_fro": main.svm_fro}
        ui.chart(charts.token_plane(plane, ks), key="plane", data=table, where=left)
    else:
        left.caption("The token plane needs d = 2 (try the first preset).")
    right.subheader("Softmax s_i sharpening to one-hot")
    ui.chart(charts.heat_strip(main, ks), key="heat", data={"steps": ks, "probs": main.probs[ks]}, where=right)
    charts.explain_plane(main)

    st.subheader("Convergence to the SVM")
    table = {"corr_fro": main.corr_fro, "corr_nuc": main.corr_nuc, "norm": main.norm, "margin": main.margin}
    ui.chart(charts.curves(main, lr=lr, normalized=normalized), key="curves", data=table)
    charts.explain_curves(main)

    st.subheader("W vs (K, Q): Frobenius vs nuclear-norm bias")
    for col, (key, r) in zip(st.columns(2), runs.items(), strict=True):
        col.markdown(
            f"**{asvm.PARAMS[key]}**: corr own SVM {charts.last(r.corr_own)}, other's {charts.last(r.corr_other)}"
        )
        ui.chart(charts.sv_bars(r), key=f"sv-{key}", where=col)
    charts.explain_spectra(main)

    st.subheader("Numerical conventions on vs off")
    off = compute(setup, param, conventions=False)
    ui.chart(charts.conventions(main, off), key="conventions")
    charts.explain_conventions(main, off)

    st.subheader("Live")
    cache = svm_cache()

    def render(states: list) -> None:
        if not states:
            st.caption("Press Play or Step to train live.")
            return
        s = states[-1]
        svm = cache.solve(problem, s.selected).own(param)  # cached on the selected set
        corr = "infeasible" if svm is None else f"{asvm.correlation(s.W, svm):.4f}"
        ui.metrics({"loss": float(s.loss), "‖W‖": float(s.W.norm()), "corr with own SVM": corr})
        ui.chart(go.Figure(charts.heat(s.probs.numpy())).update_layout(height=250), key="live-heat")

    def start():
        return asvm.run(problem, param=param, steps=steps, lr=lr, normalized=normalized, seed=seed)

    def keep(state):  # K and Q dropped, on the CPU: each held state is a few kB
        return state.preview()

    ui.Player("asvm-live", start, (*setup, param), render, max_states=steps + 1, keep=keep).show()
