"""Black-box lab: directional attacks on a neural surrogate, direct search, their hybrid, CMA-ES and CBO."""

from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from core import blackbox, cbo
from core.blackbox import figures, problems, search
from core.blackbox.compare import Comparison, solved_at
from pages import _ui as ui

ZOO = {"digits-mlp-converged": "digits MLP 64-64-10 (converged)", "digits-mlp-early": "digits MLP (early, 30 steps)"}
GOAL = 1e-4  # the reference note's target: f(Φ(x)) ≤ 1e-4 on the procedural surrogates (optimum 0)
STOP = 1e-6  # runs on problems with a known optimum (0) stop there: the curves' floor, and a page that paints fast
PRESET_KEYS = ("problem", "d", "method", "attack", "budget", "count", "centred")
PRESETS = {
    "D1: hybrid vs direct search, d = 10": ("surrogate", 10, "hybrid", "signed", 2000, 3, False),
    "The pitfall: a centred attack stalls": ("surrogate", 10, "attack", "centred", 1000, 3, True),
    "A surrogate trained on Rosenbrock": ("trained", 2, "hybrid", "signed", 400, 3, False),
    "Counterfactual digit from a zoo MLP": ("zoo", 64, "hybrid", "signed", 600, 2, False),
}
REFS = (
    "Bouchet & Vidal 2025, Optimization by Directional Attacks (arXiv:2510.01461); MADS: Audet & Dennis 2006; "
    "OrthoMADS: Abramson et al. 2009; CMA-ES: Hansen (arXiv:1604.00772); CBO: Pinnau et al. (arXiv:1604.05648)."
)
FORMULAS = {
    "search": [
        r"\text{attack: } x^+ = x + r\,\operatorname{sign}\!\big(-J_\Phi(x)^\top \nabla f(\Phi(x))\big)"
        r"\quad(\text{centred: } \nabla f - \overline{\nabla f})",
        r"\text{poll: } x + \Delta^m \operatorname{round}\!\Big(\tfrac{\Delta^p}{\Delta^m}\tfrac{\pm H e_i}"
        r"{\|H e_i\|_\infty}\Big),\ H = I - 2vv^\top,\ \Delta^m = \min(\Delta^p, (\Delta^p)^2)",
        r"\text{hybrid: } \tfrac{f(x) - f(x^+)}{|f(x)|} \ge 10^{-3} \Rightarrow r \leftarrow 1.3r"
        r"\text{ and no poll; else poll: success } \Delta^p \leftarrow 2\Delta^p,\ \text{failure } \Delta^p/2",
    ],
    "profile": r"d_s(k) = \frac{1}{|P|}\Big|\{p : f_0 - f_{s,p}(k) \ge (1 - \tau)(f_0 - f_L)\}\Big|,\ \tau = 10^{-3}",
}

ui.header("blackbox")
ui.presets({label: dict(zip(PRESET_KEYS, values, strict=True)) for label, values in PRESETS.items()})
kind = ui.select("Problem", problems.KINDS, "surrogate", "problem")
d = int(ui.number("Inputs d (zoo: 64 pixels)", 2, 64, 2, "d"))
landscape = ui.select("Landscape (trained / CBO kinds)", list(cbo.OBJECTIVES), "Rosenbrock", "landscape")
zoo_name = ui.select("Zoo surrogate", ZOO, "digits-mlp-converged", "zoo")
target = int(ui.number("Class to reach (zoo)", 0, 9, 3, "target"))
method = ui.radio("Method on the slice", search.METHODS, "hybrid", "method")
attack = ui.radio("Attack direction", search.ATTACKS, "signed", "attack")
budget = int(ui.slider("Budget (evaluations)", 100, 3000, 500, "budget", step=100))
count = int(ui.number("Problems (surrogates) or seeds", 1, 10, 3, "count"))
centred = ui.toggle("Compare the centred attacks too", False, "centred")
seed = ui.seed()
methods = [m for m in blackbox.SOLVERS if centred or "centred" not in m]


def build(kind: str, d: int, landscape: str, zoo_name: str, target: int, count: int, seed: int):
    model = ui.zoo_model(zoo_name) if kind == "zoo" else None
    d = 64 if kind == "zoo" else d
    return problems.instances(
        kind, d=d, count=count, seed=seed, landscape_name=landscape, model=model, target=target, device=ui.device()
    )


@st.cache_data(max_entries=16, show_spinner="Running the search on the slice…")
def slice_run(spec: tuple, method: str, attack: str, budget: int, seed: int):
    problem = build(*spec, 1, seed)[0][0]
    config = blackbox.SearchConfig(method=method, attack=attack)
    states = list(blackbox.run(problem, config=config, budget=budget, seed=seed))
    replay = figures.replay(states, problem.hi - problem.lo)
    axes, z = figures.slice_grid(problem, states[-1].x)
    return replay, axes, z, states[-1].gradients, states[-1].x.cpu().numpy()


@st.cache_data(max_entries=16, show_spinner="Running every method on the same problems, budgets and seeds…")
def comparison(spec: tuple, methods: tuple, budget: int, count: int, seed: int) -> Comparison:
    found, seeds = build(*spec, count, seed)
    goal = STOP if all(p.optimum is not None for p in found) else None
    return blackbox.compare(found, list(methods), seeds=seeds, budget=budget, goal=goal)


spec = (kind, d, landscape, zoo_name, target)
with ui.errors("the search on the slice"):
    r, axes, z, passes, x_final = slice_run(spec, method, attack, budget, seed)
    st.subheader(f"{search.METHODS[method]} on a 2-D slice (x0, x1) through the final point")
    fig = ui.animate(figures.slice_figure(r, axes, z), figures.replay_frames(r, 40), prefix="evaluations ")
    data = {"evaluations": r.evaluations, "value": r.value, "x": r.x, "success": r.success, "poll_frame": r.frame}
    ui.chart(fig, "blackbox-slice", data=data)
    counts = {k: r.success.count(k) for k in ("attack", "poll", "search")}
    final = {"f(Φ(x)) final": float(r.value[-1]), "evaluations": int(r.evaluations[-1]), "attack passes": passes}
    ui.metrics(final | {f"{k} successes": v for k, v in counts.items()})
    text = (
        "Green dots: the poll tried this iteration around the last incumbent (dotted frame of half-width Δp, grey "
        "mesh nodes of size Δm when coarse); red arrow: the attack step; purple: a covering point. The contour is "
        "log10 f on the plane through the final point."
    )
    values = {"Δp final": float(r.frame[-1][0]), "Δm final": float(r.mesh[-1][0])} | final
    ui.explainer("the search", FORMULAS["search"], values, REFS, text=text)
    if kind == "zoo":
        st.caption(f"The final 8×8 image (the zoo MLP's input), pushed toward class {target}.")
        ui.chart(ui.image_grid([x_final.reshape(8, 8)], height=200), "blackbox-image", data={"pixels": x_final})

with ui.errors("the comparison"):
    c = comparison(spec, tuple(methods), budget, count, seed)
    labels = blackbox.SOLVER_LABELS
    left, right = st.columns(2)
    with left:
        st.subheader("Best value vs evaluations")
        gaps = figures.gaps(c)
        curve_data = {labels[m]: np.median(g, axis=0) for m, g in zip(c.methods, gaps, strict=True)}
        ui.chart(figures.curves_figure(c, labels), "blackbox-curves", data=curve_data)
    with right:
        st.subheader("Data profiles")
        profile = blackbox.data_profile(c, tau=1e-3)
        profile_data = {labels[m]: p for m, p in zip(c.methods, profile, strict=True)}
        ui.chart(figures.profile_figure(c, profile, labels), "blackbox-profiles", data=profile_data)
    solved = solved_at(c, tau=1e-3).reshape(len(c.methods), -1)
    reached, known = c.evaluations_to(GOAL).reshape(len(c.methods), -1), kind != "trained"  # trained: optimum unknown
    table = pd.DataFrame(
        {
            "method": [labels[m] for m in c.methods],
            "solved (τ = 1e-3)": [f"{int(np.isfinite(s).sum())}/{s.size}" for s in solved],
            "median evaluations to solve": [float(np.nanmedian(s)) if np.isfinite(s).any() else None for s in solved],
            f"reached f ≤ {GOAL:g}": [f"{int(np.isfinite(e).sum())}/{e.size}" if known else "–" for e in reached],
            "final f (median)": np.median(c.curves[..., -1].reshape(len(c.methods), -1), axis=1),
        }
    )
    st.dataframe(table, hide_index=True, key="blackbox-table")
    runs = f"{len(c.problems)} problem(s) × {len(c.seeds)} seed(s), budget {budget}"
    ui.explainer(
        "the data profiles",
        FORMULAS["profile"],
        {"runs": runs, "τ": 1e-3},
        "Moré & Wild 2009; f_L is the best value any method reached on that problem and seed.",
    )
