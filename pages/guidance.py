"""Classifier-free guidance lab: CFG vs APG side by side, a step scrubber over Δ∥ / Δ⊥, and a w sweep."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import streamlit as st

from core import guidance as G
from core.guidance import shipped
from core.guidance.denoisers import EpsilonDenoiser
from pages import _guidance_charts as charts
from pages import _ui as ui

PIPELINE_ROOT = os.environ.get("OPTISCOPE_PIPELINE_ROOT")  # local pipelines only where the server allows them
MODELS = {"mixture": "2-D mixture (exact)", "empirical": "Digits, smoothed empirical (exact)"}
MODELS |= {"unet": "Digits, tiny UNet (trained)"} | ({"pipeline": "Local diffusers pipeline"} if PIPELINE_ROOT else {})
GUIDERS = {key: label for key, (label, _) in G.GUIDERS.items()}
SAMPLES = {"mixture": 32 * 8, "empirical": 4 * 10, "unet": 4 * 10}  # balanced over the 8 modes or 10 digits
SWEEP_SAMPLES, SWEEP_WS = {"mixture": 128, "pipeline": 10}, (1.0, 3.0, 5.0, 7.5, 10.0, 15.0)
DIGITS = ("empirical", "unet")
EXACT = {"mixture": G.GaussianMixtureDenoiser, "empirical": G.EmpiricalDigitsDenoiser}  # the others: ε-models

ui.header("guidance")
ui.presets(
    {
        "CFG burns at w = 15": {"model": "mixture", "steps": 64, "w": 15.0, "eta": 0.0, "r": 0.0, "beta": 0.0}
        | {"left": "cfg", "right": "apg"},
        "APG with r and β (paper)": {"w": 15.0, "eta": 0.0, "r": 2.0, "beta": -0.5, "model": "unet", "steps": 25},
        "Adaptive guidance": {
            "w": 7.5,
            "left": "cfg",
            "right": "adaptive",
            "model": "unet",
            "steps": 25,
            "gamma": 0.99,
        },
    }
)


def clamp(key: str, high: int) -> None:
    """A value kept from a longer run (or a preset) must fit the slider's new range."""
    if st.session_state.get(key, 0) > high:
        st.session_state[key] = high


D0 = shipped.DEFAULT  # the default view is shipped precomputed: its controls come from there
kind = ui.select("Model", MODELS, shipped.DEFAULT_RUNS["kind"], "model")
path = st.sidebar.text_input("Pipeline folder (inside the server's root)", key="pipeline") if kind == "pipeline" else ""
left = ui.select("Left guider", GUIDERS, "cfg", "left")
right = ui.select("Right guider", GUIDERS, "apg", "right")
w = ui.slider("Guidance scale w (paper: D_c + (w−1)·update)", 0.0, 20.0, D0["w"], "w", step=0.5, help=charts.W_HELP)
eta = ui.slider("η (parallel weight)", 0.0, 1.0, D0["eta"], "eta", step=0.05)
r = ui.slider("Rescale r (0 = off)", 0.0, 20.0, D0["rescale"], "r", step=0.5)
beta = ui.slider("Momentum β", -0.9, 0.9, D0["momentum"], "beta", step=0.05)
max_steps = 128 if kind == "mixture" else 50  # 40 UNet samples × 50 steps ≈ 7 s on one CPU thread
clamp("steps", max_steps)
steps = ui.slider("Steps", 4, max_steps, 64 if kind == "mixture" else 25, "steps")
with st.sidebar.expander("More guider settings"):
    phi = ui.slider("CFG rescale φ", 0.0, 1.0, D0["guidance_rescale"], "phi", step=0.05, where=st)
    gamma = ui.slider(
        "Adaptive γ̄ (cos threshold)", 0.9, 1.01, D0["gamma"], "gamma", step=0.001, format="%.3f", where=st
    )
    warm = ui.slider("Adaptive warm-up steps", 1, 20, D0["warmup_steps"], "warmup", where=st)
seed = ui.seed()


@st.cache_resource(max_entries=4, show_spinner="Loading the model…")
def denoiser(kind: str):
    return EXACT[kind](device=ui.device()) if kind in EXACT else G.digits_unet(model=ui.zoo_model("digits-unet"))


@st.cache_resource(max_entries=2, show_spinner="Loading the pipeline…")
def pipeline(path: str):
    return G.load_pipeline(path, root=PIPELINE_ROOT, device=ui.device())


def model(kind: str, path: str):
    return pipeline(path) if kind == "pipeline" else denoiser(kind)


def config(key: str) -> G.GuiderConfig:
    return G.GuiderConfig(
        key, w=w, eta=eta, rescale=r, momentum=beta, guidance_rescale=phi, gamma=gamma, warmup_steps=warm
    )


@st.cache_data(max_entries=16, show_spinner="Sampling…")
def trajectory(kind: str, path: str, guider: G.GuiderConfig, steps: int, seed: int) -> tuple:
    n = SAMPLES.get(kind) or min(model(kind, path).num_classes, 10)  # a pipeline: one sample per class
    if kind != "pipeline" and (run := shipped.load(shipped.run_key(kind, guider, n, steps, seed))):
        return run
    D, clf = model(kind, path), ui.zoo_model("digits-classifier") if kind in DIGITS else None
    return shipped.guided_run(D, guider, n_samples=n, steps=steps, seed=seed, classifier=clf)


with ui.errors("the guided samples"):
    runs = [(key, *trajectory(kind, path, config(key), steps, seed)) for key in (left, right)]
    if kind in DIGITS:  # the paper's point first: the final samples, one per class, saturated pixels marked
        for j, (col, (key, tr, scores, target)) in enumerate(zip(st.columns(2), runs, strict=True)):
            picks, title = np.unique(target, return_index=True)[1][:10], f"{GUIDERS[key]}, w = {w:g}"
            fig = charts.final_samples(tr, picks, title, scores["saturation"])
            ui.chart(fig, key=f"final-{j}", name=f"guidance-{key}-final", data={"x": tr.x[-1]}, where=col)
    # the class's name, not the model's: a shipped view must not load the UNet (and diffusers) for a caption
    sampler = EXACT.get(kind, EpsilonDenoiser).sampler_name
    st.caption(f"Same seed, same start. Sampler: {sampler}. Guidance acts on the x0 prediction.")
    clamp("t", steps - 1)
    t = ui.slider("Step t (scrubber)", 0, steps - 1, steps - 1, "t", where=st)
    for j, (col, (key, tr, _, target)) in enumerate(zip(st.columns(2), runs, strict=True)):
        title, picks = f"{GUIDERS[key]}, step {t}", np.unique(target, return_index=True)[1][:10]
        fig = charts.scatter_2d(tr, t, title) if kind == "mixture" else charts.montage(tr, t, picks, w, title)
        data = {"x0_cond": tr.x0_cond[t], "x0_guided": tr.x0_guided[t]}
        ui.chart(fig, key=f"view-{j}", name=f"guidance-{key}-step{t}", data=data, where=col)
    for side, (key, _, scores, _) in zip(("Left", "Right"), runs, strict=True):
        st.markdown(f"**{side}: {GUIDERS[key]}**, final samples")
        ui.metrics(scores)
    norms = pd.concat([pd.DataFrame(tr.per_step()).assign(guider=GUIDERS[key]) for key, tr, _, _ in runs])
    ui.chart(charts.norms_chart(norms, t), key="norms", data=norms, name="guidance-norms")
    at_t = {"‖Δ∥‖ at t (left)": float(norms["‖Δ∥‖"].iloc[t]), "‖Δ⊥‖ at t (left)": float(norms["‖Δ⊥‖"].iloc[t])}
    ui.explainer(
        "the split of the CFG update", charts.SPLIT, {"w": w, "η": eta, "r": r, "β": beta} | at_t, charts.SPLIT_NOTE
    )
    ui.chart(charts.cos_chart(norms, gamma), key="cos", name="guidance-cos")
    calls = {
        f"model calls ({side})": s["model calls"] for side, (_, _, s, _) in zip(("left", "right"), runs, strict=True)
    }
    ui.explainer("adaptive guidance", charts.AG, calls, charts.AG_NOTE)

st.subheader("Sweep over w: saturation and class accuracy, CFG vs APG")
with ui.errors("the w sweep"):
    job = None
    if ui.job_wanted("guidance-sweep"):  # the model is resolved here (the worker makes no st.* calls), when needed
        D, clf = model(kind, path), ui.zoo_model("digits-classifier") if kind in DIGITS else None
        pair, n = {"CFG": config("cfg"), "APG": config("apg")}, SWEEP_SAMPLES.get(kind, 40)
        job = G.sweep(D, pair, ws=SWEEP_WS, n_samples=n, steps=steps, seed=seed, classifier=clf)
    settings, label = (kind, path, eta, r, beta, steps, seed), "Run the w sweep"
    done = ui.background("guidance-sweep", settings, lambda: job, lambda s: (s.fraction, f"{s.step} runs"), label=label)
    if done:
        table = pd.DataFrame(done.rows)
        for y in [m for m in ("mean_radius" if kind == "mixture" else "saturation", "accuracy") if m in table]:
            ui.chart(charts.sweep_chart(table, y), key=f"sweep-{y}", data=table, name=f"guidance-sweep-{y}")
        ui.explainer("the sweep", r"\text{saturation} = \Pr(|x| > 1.1)", None, charts.SWEEP_NOTE)
