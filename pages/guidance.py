"""Classifier-free guidance lab: CFG vs APG side by side, a step scrubber over Δ∥ / Δ⊥, and a w sweep."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import streamlit as st

from core import guidance as G
from pages import _guidance_charts as charts
from pages import _ui as ui

PIPELINE_ROOT = os.environ.get("OPTISCOPE_PIPELINE_ROOT")  # local pipelines only where the server allows them
MODELS = {"mixture": "2-D mixture (exact)", "empirical": "Digits, smoothed empirical (exact)"}
MODELS |= {"unet": "Digits, tiny UNet (trained)"} | ({"pipeline": "Local diffusers pipeline"} if PIPELINE_ROOT else {})
GUIDERS = {key: label for key, (label, _) in G.GUIDERS.items()}
PER_CLASS = {"mixture": 32, "empirical": 4, "unet": 4, "pipeline": 1}  # samples per class (10 classes at most)
SWEEP_SAMPLES, SWEEP_WS = {"mixture": 128, "pipeline": 10}, (1.0, 3.0, 5.0, 7.5, 10.0, 15.0)
DIGITS = ("empirical", "unet")

ui.header("guidance")
ui.presets(
    {
        "CFG burns at w = 15": {"w": 15.0, "eta": 0.0, "r": 0.0, "beta": 0.0, "left": "cfg", "right": "apg"},
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


kind = ui.select("Model", MODELS, "mixture", "model")
path = st.sidebar.text_input("Pipeline folder (inside the server's root)", key="pipeline") if kind == "pipeline" else ""
left = ui.select("Left guider", GUIDERS, "cfg", "left")
right = ui.select("Right guider", GUIDERS, "apg", "right")
w = ui.slider("Guidance scale w (paper: D_c + (w−1)·update)", 0.0, 20.0, 15.0, "w", step=0.5, help=charts.W_HELP)
eta = ui.slider("η (parallel weight)", 0.0, 1.0, 0.0, "eta", step=0.05)
r = ui.slider("Rescale r (0 = off)", 0.0, 20.0, 0.0, "r", step=0.5)
beta = ui.slider("Momentum β", -0.9, 0.9, 0.0, "beta", step=0.05)
max_steps = 128 if kind == "mixture" else 50  # 40 UNet samples × 50 steps ≈ 7 s on one CPU thread
clamp("steps", max_steps)
steps = ui.slider("Steps", 4, max_steps, 64 if kind == "mixture" else 25, "steps")
with st.sidebar.expander("More guider settings"):
    phi = ui.slider("CFG rescale φ", 0.0, 1.0, 0.7, "phi", step=0.05, where=st)
    gamma = ui.slider("Adaptive γ̄ (cos threshold)", 0.9, 1.01, 0.999, "gamma", step=0.001, format="%.3f", where=st)
    warm = ui.slider("Adaptive warm-up steps", 1, 20, 8, "warmup", where=st)
seed = ui.seed()


@st.cache_resource(max_entries=4, show_spinner="Loading the model…")
def denoiser(kind: str):
    exact = {"mixture": G.GaussianMixtureDenoiser, "empirical": G.EmpiricalDigitsDenoiser}
    return exact[kind](device=ui.device()) if kind in exact else G.digits_unet(model=ui.zoo_model("digits-unet"))


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
    D = model(kind, path)
    target = G.balanced_labels(D.num_classes, PER_CLASS[kind] * min(D.num_classes, 10))
    trace = G.trace(G.run(D, target, guider=guider, steps=steps, seed=seed))
    clf = ui.zoo_model("digits-classifier") if kind in DIGITS else None
    scores = G.evaluate(D, trace.x[-1], target, classifier=clf) | {"model calls": int(trace.model_evals[-1])}
    return trace, scores, target.numpy()


with ui.errors("the guided samples"):
    runs = [(key, *trajectory(kind, path, config(key), steps, seed)) for key in (left, right)]
    st.caption(f"Same seed, same start. Sampler: {model(kind, path).sampler_name}. Guidance acts on the x0 prediction.")
    clamp("t", steps - 1)
    t = ui.slider("Step t (scrubber)", 0, steps - 1, steps // 4, "t", where=st)
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
    D = model(kind, path)  # resolved here: the worker makes no st.* calls
    clf = ui.zoo_model("digits-classifier") if kind in DIGITS else None
    pair, n = {"CFG": config("cfg"), "APG": config("apg")}, SWEEP_SAMPLES.get(kind, 40)
    job = G.sweep(D, pair, ws=SWEEP_WS, n_samples=n, steps=steps, seed=seed, classifier=clf)
    settings, label = (kind, path, eta, r, beta, steps, seed), "Run the w sweep"
    done = ui.background("guidance-sweep", settings, lambda: job, lambda s: (s.fraction, f"{s.step} runs"), label=label)
    if done:
        table = pd.DataFrame(done.rows)
        for y in [m for m in ("mean_radius" if kind == "mixture" else "saturation", "accuracy") if m in table]:
            ui.chart(charts.sweep_chart(table, y), key=f"sweep-{y}", data=table, name=f"guidance-sweep-{y}")
        ui.explainer("the sweep", r"\text{saturation} = \Pr(|x| > 1.1)", None, charts.SWEEP_NOTE)
