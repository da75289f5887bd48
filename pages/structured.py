"""Structured first-order lab: greedy coordinate choice, sketched constrained Newton, gradient sliding."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import streamlit as st
from plotly.subplots import make_subplots

from core.structured import constrained, constrained_problems, coordinate, coordinate_problems, sliding, traces
from pages import _shipped as shipped
from pages import _ui as ui

LOG = {"type": "log", "exponentformat": "power"}
XY = {"xaxis_title": "x₁", "yaxis_title": "x₂"}  # the plane of the 2-D problems
PATH_RULES = ("cyclic", "random", "gs", "gsl")
GS_FORMULAS = [
    r"\text{GS: } \max_b \|\nabla_b f\| \qquad \text{GSL: } \max_b \|\nabla_b f\| / \sqrt{L_b}"
    r"\qquad \text{GSQ: } \max_b \nabla_b f^\top H_b^{-1} \nabla_b f",
    r"x_b \leftarrow x_b - \nabla_b f / L_b \quad \text{(Lb)} \qquad x_b \leftarrow x_b - H_b^{-1} \nabla_b f \quad \text{(Hb)}",
]
NEWTON_FORMULAS = [
    r"\begin{pmatrix} B & G^\top \\ G & 0 \end{pmatrix} z = -\begin{pmatrix} \nabla_x L \\ c \end{pmatrix},"
    r"\qquad \|K\| \psi \|K z - b\| \le \theta \delta \|b\|",
    r"\mathcal L_\eta = f + c^\top \lambda + \tfrac{\eta_1}{2} \|c\|^2 + \tfrac{\eta_2}{2} \|\nabla_x L\|^2",
]
SLIDING_FORMULAS = [
    r"\Psi = f + h + \chi, \qquad u_t = \arg\min_u \langle \nabla f(\underline x) + h'(u_{t-1}), u \rangle"
    r" + \beta \big(\tfrac12 \|u - x\|^2 + \tfrac{p_t}{2} \|u - u_{t-1}\|^2\big) + \chi(u)"
]
GS_REFERENCE = "Nutini, Laradji, Schmidt (arXiv:1712.08859)"
SLIDING_REFERENCE = "Wu, Xu, Zhang (arXiv:2602.04161); Lan's gradient sliding (arXiv:1406.0919)"
GS_TEXT = """GS picks the steepest coordinate, GSL divides by its curvature. Greedy rules read all d partial derivatives
per step, random and cyclic only τ. Problems: the authors' dataset-A/B recipes at n = 100, d = 300."""
NEWTON_TEXT = """Randomized Kaczmarz projects onto one row of the KKT system per sweep. The step is accepted by an Armijo
search on the exact augmented Lagrangian, whose penalties grow when the sketch is too rough (constants: Param.jl)."""
SLIDING_TEXT = """One gradient of f serves T_k cheap subgradient steps on h: O(log 1/ε) gradients, O(1/ε) subgradients.
Each phase of N = ⌈4√(L/μ)⌉ gradients halves the gap bound."""
RF_NOTE = """The paper's restart-free schedule (RF-SGS) could not be read (only its abstract is available): this section
runs the method it replaces, Lan's gradient sliding restarted in phases."""
CD = {"cd_problem": "least-squares", "block": 1, "partition": "variable", "update": "Lb", "cd_steps": 400}

PRESETS = {
    "GSL vs random on dataset A": CD,
    "Blocks of 5, matrix updates": {**CD, "block": 5, "update": "Hb", "cd_steps": 200},
    "Lasso: only GS-q converges": {**CD, "cd_problem": "lasso"},
    "HS7: Gaussian sketches, θ_k → 0": {"cn_problem": "hs7", "solver": "gaussian", "theta": "decaying"},
    "Sliding with the true gap": {"restart": "oracle", "sl_tol": 4},
}

ui.header("structured")
ui.presets(PRESETS)
device, seed = str(ui.device()), ui.seed()
st.sidebar.markdown("**1 · Coordinate descent**")
cd_name = ui.select("Problem", coordinate_problems.PROBLEMS, "least-squares", "cd_problem")
block = int(ui.number("Block size τ", 1, 20, 1, "block"))
partition = ui.radio("Blocks", coordinate.PARTITIONS, "variable", "partition")
update = ui.radio("Update", coordinate.UPDATES, "Lb", "update")
cd_steps = int(ui.slider("Block updates", 100, 5000, 400, "cd_steps", step=100))
cd_config = {"block_size": block, "partition": partition, "update": update, "steps": cd_steps, "seed": seed}
st.sidebar.markdown("**2 · Sketched Newton**")
cn_name = ui.select("Constrained problem", constrained_problems.PROBLEMS, "hs7", "cn_problem")
solver = ui.select("KKT solver", constrained.SOLVERS, "kaczmarz", "solver")
theta = ui.radio("Sketch accuracy", constrained.THETAS, "constant", "theta")
radius = float(ui.number("Sphere radius r (logistic)", 0.1, 5.0, 1.0, "radius", step=0.1))
st.sidebar.markdown("**3 · Gradient sliding**")
sl_tol = int(ui.slider("Target gap 10^−k: k", 2, 6, 4, "sl_tol"))
restart = ui.radio("Restart rule", sliding.RESTARTS, "halving", "restart")
cache = shipped.cache_for("structured", max_entries=16)  # the default link's runs are shipped
compare_rules = cache(traces.compare_rules, show_spinner="Running the selection rules…")
newton_trace = cache(traces.newton_trace, show_spinner="Sketching Newton steps…")
sliding_traces = cache(traces.sliding_traces, show_spinner="Sliding…")


def contour(fig, box, fn, name, **style):
    xs, ys, z = traces.contour_grid(fn, box, n=40)  # smooth level sets: 40² points draw them as 80² do, in a quarter
    fig.add_trace(go.Contour(x=xs, y=ys, z=z, name=name, showscale=False, hoverinfo="skip", **style))


def with_paths(fig, paths: dict, first: int, length: int) -> go.Figure:
    """``paths`` as traces ``first, first + 1, ...`` replayed point by point in the browser."""
    for label, p in paths.items():
        fig.add_trace(go.Scatter(x=p[:1, 0], y=p[:1, 1], mode="lines+markers", name=label))
    indices = list(range(first, first + len(paths)))
    upto = [[go.Scatter(x=p[: t + 1, 0], y=p[: t + 1, 1]) for p in paths.values()] for t in range(length)]
    return ui.animate(fig, [go.Frame(data=d, traces=indices, name=str(t)) for t, d in enumerate(upto)], duration_ms=150)


st.header("1 · Which coordinate to update?")
with ui.errors("the coordinate-descent runs"):
    paths = {r: t.path for r, t in compare_rules("quadratic-2d", rules=PATH_RULES, steps=20).items()}
    fig = go.Figure()
    contour(fig, (-2.5, 2.5, -4.0, 4.0), coordinate_problems.make_problem("quadratic-2d").smooth, "f", ncontours=25)
    fig.update_layout(height=460, title="A 2-D quadratic with L₁ = 10, L₂ = 1: one coordinate per step", **XY)
    ui.chart(with_paths(fig, paths, 1, 21), "structured-2d", data=paths)
    found = compare_rules(cd_name, **cd_config, device=device)
    fig = go.Figure([go.Scatter(x=t.step, y=t.relative_gap, name=coordinate.RULES[r]) for r, t in found.items()])
    fig.add_hline(y=1e-6, line_dash="dot", annotation_text="1e-6").update_layout(title=f"Relative gap: {cd_name}")
    fig.update_layout(yaxis=LOG, xaxis_title="block updates", yaxis_title="(F − F*) / (F₀ − F*)", height=420)
    ui.chart(fig, "structured-gaps", data={r: {"step": t.step, "gap": t.relative_gap} for r, t in found.items()})
    reached = {r: int(t.step[-1]) if t.relative_gap[-1] <= 1e-6 else "—" for r, t in found.items()}
    ui.metrics({f"{r.upper()}: updates to 1e-6": reached[r] for r in ("random", "gs", "gsl")})
    strip_rule = ui.select("Heat strip of", {r: coordinate.RULES[r] for r in found}, "gsl", "strip_rule", where=st)
    strip = found[strip_rule]
    picks = np.log1p(strip.strip).astype(np.float32)  # a colour per cell: float32 halves what the browser receives
    fig = go.Figure(go.Heatmap(z=picks, colorscale="Viridis", colorbar={"title": "log(1+picks)"}))
    fig.update_layout(xaxis_title="coordinate, sorted by L_i", yaxis_title=f"bin of {cd_steps} steps", height=340)
    ui.chart(fig, "structured-strip", data={"strip": strip.strip, "coordinate": strip.order})
    values = {f"to 1e-6: {coordinate.RULES[r]}": v for r, v in reached.items()}
    ui.explainer("the selection rules", GS_FORMULAS, values, GS_REFERENCE, text=GS_TEXT)

st.header("2 · Constraints by sketched Newton")
with ui.errors("the sketched Newton run"):
    table, xy, status = newton_trace(cn_name, solver=solver, theta=theta, radius=radius, seed=seed, device=device)
    iterations, sweeps, error = int(table["step"][-1]), int(table["sweeps"].sum()), float(table["error"][-1])
    ui.metrics({"Newton iterations": iterations, "sketch sweeps": sweeps, "‖x − x*‖": error, "status": status})
    if cn_name in ("hs6", "hs7"):
        p = constrained_problems.make_problem(cn_name)
        box = (xy[:, 0].min() - 1, xy[:, 0].max() + 1, xy[:, 1].min() - 1, xy[:, 1].max() + 1)
        fig = go.Figure()
        contour(fig, box, p.objective, "f", ncontours=30)
        zero = {"contours": {"start": 0, "end": 0, "coloring": "none"}, "line": {"width": 3, "color": "crimson"}}
        contour(fig, box, lambda v: p.constraints(v)[0], "c(x) = 0", **zero)
        fig.update_layout(height=440, title=f"{constrained_problems.PROBLEMS[cn_name]}: Newton iterates", **XY)
        ui.chart(with_paths(fig, {"iterates": xy}, 2, len(xy)), "structured-newton", data={"x": xy})
    fig = make_subplots(1, 2, subplot_titles=("sweeps per iteration, accuracy δ", "KKT residual, violation ‖c(x)‖"))
    fig.add_trace(go.Bar(x=table["step"], y=np.maximum(table["sweeps"], 1), name="sketch sweeps"), 1, 1)
    for name, col, key in (("accuracy δ", 1, "accuracy"), ("KKT", 2, "kkt"), ("‖c(x)‖", 2, "violation")):
        fig.add_trace(go.Scatter(x=table["step"], y=np.maximum(table[key], 1e-16), name=name), 1, col)
    fig.update_yaxes(**LOG).update_layout(height=380, xaxis_title="Newton iteration")
    ui.chart(fig, "structured-sketch", data=table)
    values = {"final " + k: float(table[k][-1]) for k in ("accuracy", "eta1", "eta2", "alpha")}
    ui.explainer("sketched Newton", NEWTON_FORMULAS, values, "Hong et al. (arXiv:2305.18379)", text=NEWTON_TEXT)

st.header("3 · Gradient sliding: few gradients, many subgradients")
st.info(RF_NOTE, icon=":material/info:")
with ui.errors("the sliding runs"):
    runs = sliding_traces(tol=10.0**-sl_tol, restart=restart, device=device)
    fig = make_subplots(1, 2, shared_yaxes=True, subplot_titles=("gap vs ∇f calls", "gap vs h′ calls"))
    for col, key in ((1, "gradients"), (2, "subgradients")):
        for m, t in runs.items():
            curve = go.Scatter(x=t[key], y=np.maximum(t["relative_gap"], 1e-16), name=sliding.METHODS[m])
            fig.add_trace(curve.update(legendgroup=m, showlegend=col == 1), 1, col)
    fig.update_xaxes(**LOG).update_yaxes(**LOG).update_layout(height=400, yaxis_title="(Ψ − Ψ*) / (Ψ₀ − Ψ*)")
    ui.chart(fig, "structured-sliding", data=runs)
    gs, sub = runs["sliding"], runs["subgradient"]
    counts = {"∇f calls, sliding": gs["gradients"][-1], "∇f calls, subgradient": sub["gradients"][-1]}
    ui.metrics({**counts, "h′ calls, sliding": gs["subgradients"][-1], "phases": gs["phase"][-1]})
    values = {"reached gap": float(gs["relative_gap"][-1])}
    ui.explainer("gradient sliding", SLIDING_FORMULAS, values, SLIDING_REFERENCE, text=SLIDING_TEXT)
