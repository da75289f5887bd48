"""Steering the sampler: Dynamic CFG, CFG-MP / CFG-MP+ and EluCD beside CFG, live on the 2-D mixture and on digits."""

from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from core import guidance as G
from core.guidance import steering as S
from core.runs import last_state
from pages import _steering_charts as charts
from pages import _ui as ui

METHODS = {"dynamic": "Dynamic CFG (online feedback)", "cfg-mp": "CFG-MP (Picard)"}
METHODS |= {"cfg-mp+": "CFG-MP+ (Anderson, m = 1)", "elucd": "EluCD (classifier on x̂0)"}
INPUTS = {"x0": "x̂0 (EluCD)", "xt": "noisy x (naive guidance)"}
N_TOY, N_DIGITS, DIGIT_STEPS = 512, 20, 25
CANDIDATES = {"toy": (1.0, 1.5, 2.0, 3.0, 5.0, 7.5, 10.0), "digits": (1.0, 2.0, 3.0, 5.0, 7.5, 10.0)}
SWEEP_S = (0.0, 0.05, 0.1, 0.2, 0.3)
PROGRESS = lambda p: (p.fraction, f"{p.step} runs done")  # noqa: E731

ui.header("steering")
ui.presets(
    {
        "Dynamic CFG: alignment + fidelity": {"method": "dynamic", "std": 0.4, "fidelity": 1.0, "steps": 32},
        "Dynamic CFG: alignment alone overshoots": {"method": "dynamic", "std": 0.4, "fidelity": 0.0, "steps": 32},
        "CFG-MP+ against CFG at equal calls": {"method": "cfg-mp+", "std": 0.15, "w": 4.0, "iters": 3, "steps": 32},
        "EluCD against oracle and naive": {"method": "elucd", "std": 0.15, "s": 0.1, "tau2": 1.0, "on": "x0"},
        "EluCD with τ2 = ½τ1 overshoots": {"method": "elucd", "std": 0.15, "s": 0.1, "tau2": 0.5, "on": "x0"},
    }
)
method = ui.select("Method", METHODS, "dynamic", "method")
std = ui.slider("2-D mixture: std of each mode (0.4: classes overlap)", 0.1, 0.6, 0.4, "std", step=0.05)
steps = ui.slider("Steps (2-D mixture)", 8, 64, 32, "steps")
w = ui.slider("CFG scale w (CFG-MP and the CFG baselines)", 1.0, 10.0, 4.0, "w", step=0.5)
fidelity = ui.slider("Dynamic CFG: fidelity weight λ", 0.0, 3.0, 1.0, "fidelity", step=0.1)
iters = ui.slider("CFG-MP: inner iterations K", 0, 6, 2, "iters")
s = ui.slider("EluCD: scale s", 0.0, 0.5, 0.1, "s", step=0.01)
tau2 = ui.slider("EluCD: τ2 / τ1", 0.25, 1.5, 1.0, "tau2", step=0.05)
on = ui.radio("EluCD: the classifier sees", INPUTS, "x0", "on")
seed = ui.seed()


@st.cache_resource(max_entries=4)
def toy(std: float):
    return G.GaussianMixtureDenoiser(std=std, device=ui.device())


@st.cache_resource(max_entries=4, show_spinner="Training the clean-data classifier (about 1 s)…")
def toy_classifier(std: float):
    return S.toy_classifier(toy(std), n_samples=256, steps=100, seed=0)  # the note's recipe, smaller: same radii


@st.cache_resource(show_spinner="Loading the digits UNet…")
def unet():
    return G.digits_unet(model=ui.zoo_model("digits-unet"))


def guider(kind: str, D, classifier, evaluators, candidates, **changes):
    if kind == "dynamic":
        return S.DynamicCFG(evaluators, candidates=candidates)
    if kind == "elucd":
        return S.EluCD(classifier, **{"scale": s, "tau2": tau2, "on": on, "softplus": 0.0} | changes)
    return S.CFGMP(w=w, iterations=iters, solver="anderson" if kind == "cfg-mp+" else "picard")


def runs(g, D, n_steps: int) -> dict:
    """The method, CFG at w with as many model calls, and (Dynamic CFG) CFG at the note's best fixed scale."""
    cfg, cfg_steps = S.equal_nfe_cfg(g, D, steps=n_steps, w=w)
    extra = {"CFG, w = 1.5": (S.CFG(w=1.5), n_steps)} if method == "dynamic" else {}
    return {METHODS[method]: (g, n_steps), f"CFG, w = {w:g}, equal calls": (cfg, cfg_steps)} | extra


with ui.errors("the 2-D mixture"):
    D, clf = toy(std), toy_classifier(std) if method == "elucd" else None
    g = guider(method, D, clf, S.mixture_evaluators(D, fidelity=fidelity), CANDIDATES["toy"])
    target = G.balanced_labels(8, N_TOY)

    @st.cache_data(max_entries=32, show_spinner="Sampling the 2-D mixture…")
    def summary(method, std, steps, w, fidelity, iters, s, tau2, on, seed) -> tuple[pd.DataFrame, tuple]:
        done = last_state(S.compare(D, target, runs=runs(g, D, steps), seed=seed))
        return pd.DataFrame(done.rows), tuple(x.numpy() for x in done.samples)

    table, finals = summary(method, std, steps, w, fidelity, iters, s, tau2, on, seed)
    st.subheader("Final samples on the 2-D mixture, against CFG")
    labels = list(table["sampler"])
    ui.chart(charts.finals(finals, labels), "finals", data=dict(zip(labels, finals, strict=True)))
    for row in table.to_dict("records"):
        st.markdown(f"**{row.pop('sampler')}**")
        ui.metrics(row)
    ui.explainer(METHODS[method], charts.FORMULAS[method], None, charts.REFERENCES[method], text=charts.PAPERS)

    st.subheader("Live: watch the method step by step")
    levels = D.levels(steps)

    def render(states: list) -> None:
        if not states:
            st.info("Press ▶ Play or Step to sample.")
            return
        last, i = states[-1], min(len(states), steps - 1)
        if method == "dynamic":
            figures = {"strip": charts.scale_strip(states)}
            figures["scores"] = charts.score_curves(last, [e.name for e in g.evaluators], g.candidates)
        elif method == "elucd":
            x, y = last.x[: charts.SHOWN], target[: charts.SHOWN]
            d = {k: v.cpu().numpy() for k, v in S.directions(g, D, x, y, levels=levels, i=i).items()}
            figures = {"arrows": (charts.arrows(x.cpu().numpy(), d, i), d), "cosines": charts.cosine_chart(states)}
        else:  # both solvers from the sample the next step starts at
            res = S.solver_residuals(D, last.x, target, levels=levels, i=i, iterations=max(iters, 4))
            figures = {"iterates": (charts.iterate_paths(last), {"residuals": last.residuals})}
            figures["residuals"] = (charts.residual_chart(res), res)
            st.caption(charts.RESIDUAL_NOTE)
        for (key, (fig, data)), column in zip(figures.items(), st.columns(2), strict=True):
            ui.chart(fig, key, data=data, where=column)

    config = (method, std, steps, w, fidelity, iters, s, tau2, on, seed)
    start = lambda: S.run(D, target, guider=g, steps=steps, seed=seed)  # noqa: E731
    ui.Player("steering-live", start, config, render, max_states=steps).show()

if method == "elucd":
    st.subheader("EluCD: accuracy and radius against the scale s")
    with ui.errors("the scale sweep"):
        sweep_runs = {
            (x, v): (guider(method, D, clf, None, None, scale=v, on=x), steps) for x in INPUTS for v in SWEEP_S
        }
        job = lambda: S.compare(D, target, runs=sweep_runs, seed=seed)  # noqa: E731
        done = ui.background("steering-sweep", config, job, PROGRESS, label="Sweep s (10 runs)")
        if done:
            sweep = pd.DataFrame(done.rows).assign(input=[x for x, _ in sweep_runs], s=[v for _, v in sweep_runs])
            for y in ("accuracy", "radius"):
                ui.chart(charts.sweep_chart(sweep, y), f"sweep-{y}", data=sweep, name=f"steering-sweep-{y}")

st.subheader("Digits: the method beside CFG at equal model calls (shipped UNet)")
with ui.errors("the digits run"):
    labels, digit_runs, job = G.balanced_labels(10, N_DIGITS), {}, None
    if ui.job_wanted("steering-digits"):  # the UNet (and diffusers, ~3 CPU-s) loads only when its job is wanted
        U, evaluator, judge = unet(), ui.zoo_model("digits-classifier"), ui.zoo_model("digits-mlp-converged")
        evaluators = S.digits_evaluators(evaluator, fidelity=3 * fidelity)
        digit_runs = runs(guider(method, U, evaluator, evaluators, CANDIDATES["digits"]), U, DIGIT_STEPS)
        job = lambda: S.compare(U, labels, runs=digit_runs, seed=seed, judge=judge)  # noqa: E731
    settings = (method, w, fidelity, iters, s, tau2, on, seed)
    done = ui.background("steering-digits", settings, job, PROGRESS, label="Sample digits (about 30 s)")
    if done:
        picks = np.unique(labels.numpy(), return_index=True)[1]
        ui.chart(charts.digits(done.samples, list(digit_runs), picks), "digits", data=pd.DataFrame(done.rows))
        st.dataframe(pd.DataFrame(done.rows), hide_index=True)
        st.caption(
            "Judge: digits-mlp-converged (landscape lab), not the evaluator digits-classifier; Dynamic CFG's fidelity"
            " weight on digits is 3λ (−RMS to the nearest training digit). Evaluators are proxies, not preferences."
        )
