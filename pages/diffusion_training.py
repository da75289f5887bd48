"""Training the denoiser: guided distillation, Self-NPO and DSM as kernel regression, trained live on the 2-D toy."""

from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from core import diffusion_training as DT
from core import guidance as G
from core import zoo
from core.diffusion_training import sampling
from pages import _diffusion_training_charts as charts
from pages import _shipped as shipped
from pages import _ui as ui

PARTS = {"distill": "Guided distillation", "npo": "Self-NPO", "ntk": "DSM as kernel regression"}
W_RANGE, N_LIVE, SWEEP_WS = (1.0, 5.0), 256, (1.0, 2.0, 3.0, 4.0, 5.0)

ui.header("diffusion_training")
ui.presets(
    {
        "Distil 32 → 4 steps": {"part": "distill", "width": 64, "steps": 3000, "steps2": 600, "w": 3.0},
        "Self-NPO, w_neg = −5": {"part": "npo", "width": 64, "steps": 1500, "steps2": 500, "w_neg": -5.0},
        "Width 2048 vs its NTK": {"part": "ntk", "ntk_width": 2048, "ntk_steps": 3000},
    }
)
part = ui.radio("Part", PARTS, "distill", "part")
device, seed = ui.device(), ui.seed()
mixture = G.GaussianMixtureDenoiser(device=device)
if part != "ntk":
    width = ui.slider("MLP width", 16, 256, 64, "width", step=16)
    steps = ui.slider("Stage-1 steps" if part == "distill" else "Base (DSM) steps", 100, 4000, 3000, "steps", step=100)
    label2 = "Stage-2 steps per halving" if part == "distill" else "Self-NPO steps"
    steps2 = ui.slider(label2, 50, 1200, 600 if part == "distill" else 500, "steps2", step=50)
    high = W_RANGE[1] if part == "distill" else 10.0  # a student cannot extrapolate past its training range
    w = ui.slider("Guidance scale w", W_RANGE[0], high, 3.0, "w", step=0.5)
    if part == "distill":
        st.sidebar.caption(charts.W_CLAMP.format(*W_RANGE))
    every = max(1, (steps + 3 * steps2) // 60)


cache = shipped.cache_for("diffusion_training", max_entries=8)  # the default link's teacher and digits are shipped
teacher_table = cache(charts.teacher_table, show_spinner="Sampling the exact teacher…")
distilled_digits = cache(charts.distilled_digits, show_spinner="Sampling the digits UNets…")


def teacher_sweep(seed: int) -> pd.DataFrame:
    return teacher_table((*SWEEP_WS, 7.5), seed, str(device))


@st.cache_resource(max_entries=8, show_spinner="Drawing the problem and solving its kernel regression…")
def score_problem(n: int, width: int, seed: int) -> tuple:
    problem = DT.make_problem(mixture, sigma=0.5, n_samples=n, n_test=1000, seed=seed)
    return problem, charts.kernel_rows(problem, width, seed)


def final_distill_sweep(states: list) -> pd.DataFrame:
    stage1 = [s for s in states if s.stage == 0][-1].model
    four = sampling.grid(32)[::8]
    students = {
        "stage-1 student, 32 steps": (lambda y, w: sampling.student(stage1, y, w), sampling.grid(32)),
        "distilled, 4 steps": (lambda y, w: sampling.student(states[-1].model, y, w), four),
        "naive stage-1, 4 steps": (lambda y, w: sampling.student(stage1, y, w), four),
        "teacher CFG, 2 steps (4 calls)": (lambda y, w: sampling.exact_cfg(mixture, y, w), sampling.grid(2)),
    }
    return pd.concat([teacher_sweep(seed).query("w <= 5"), charts.sweep(students, SWEEP_WS, mixture, seed=seed)])


def render_training(states: list) -> None:
    if not states:
        st.info("Press ▶ Play to train live (or Step); the run is bounded and restarts when a setting changes.")
        return
    last = states[-1]
    ui.chart(charts.loss_chart(states), key="dt-loss", data=pd.DataFrame({"step": [s.step for s in states]}))
    shown = {f"model, {last.sampler_steps} steps": last.samples}
    ui.chart(charts.samples_chart(shown, f"Samples at w = {w:g}, step {last.step}"), key="dt-samples")
    ui.metrics(sampling.scores(last.samples, mixture, last.sample_labels) | {"sampler steps": last.sampler_steps})
    if last.step < total:
        return
    if part == "distill":
        table = final_distill_sweep(states)
        for y in ("radius", "precision"):
            ui.chart(charts.sweep_chart(table, y), key=f"dt-sweep-{y}", data=table, name=f"distill-{y}")
    else:
        base, negative = [s for s in states if s.stage == 0][-1].model, last.model
        sigma = ui.slider("σ of the field", 0.1, 10.0, 1.0, "sigma", where=st)
        grid, delta = charts.negative_field(base, negative, sigma, device)
        ui.chart(charts.field_chart(grid, delta, sigma), key="dt-field", data={"x": grid, "delta": delta})
        both = {
            "base CFG": (lambda y, w: sampling.model_cfg(base, y, w), sampling.grid(32)),
            f"Self-NPO (w_neg = {w_neg:g})": (lambda y, w: sampling.model_cfg(base, y, w, negative), sampling.grid(32)),
        }
        table = charts.sweep(both, (1.0, 2.0, 3.0, 5.0, 7.5), mixture, seed=seed)
        for y in ("precision", "recall"):
            ui.chart(charts.sweep_chart(table, y), key=f"dt-npo-{y}", data=table, name=f"npo-{y}")
        ui.metrics({"RMS D_neg − D_u at σ": float(np.sqrt((delta**2).sum(1).mean()))})


with ui.errors("the training run"):
    if part == "distill":
        st.subheader("Stage 1: one call learns CFG; stage 2: 32 → 16 → 8 → 4 steps")
        ui.chart(charts.sweep_chart(teacher_sweep(seed), "radius"), key="dt-teacher", data=teacher_sweep(seed))
        ui.metrics({f"teacher radius at w = {w:g}": float(teacher_sweep(seed).query("w == @w")["radius"].iloc[0])})
        stages = [(DT.TrainConfig(lr=5e-3), steps), (DT.TrainConfig(objective="progressive", lr=5e-4), steps2)]
        model = DT.EDMMLP(width=width, w_range=W_RANGE, seed=seed)
        total, formulas, note = steps + 3 * steps2, charts.DISTILL, charts.W_CLAMP.format(*W_RANGE)
    elif part == "npo":
        st.subheader("Self-NPO: a negative model fine-tuned on the model's own anti-guided predictions")
        st.info(charts.NPO_NOTE, icon=":material/info:")
        w_neg = ui.slider("w_neg", -8.0, 0.0, -1.0, "w_neg", step=0.5)
        npo = DT.TrainConfig(objective="self_npo", lr=1e-3, w_neg=w_neg)
        stages, model = [(DT.TrainConfig(objective="dsm"), steps), (npo, steps2)], DT.EDMMLP(width=width, seed=seed)
        total, formulas, note = steps + steps2, charts.NPO, charts.NPO_NOTE
    if part != "ntk":
        options = {"every": every, "n_samples": N_LIVE, "sample_w": w, "seed": seed}
        start = lambda: DT.run_stages(model, mixture, stages, **options)  # noqa: E731
        config = (part, width, steps, steps2, w, seed, stages[1][0])
        ui.Player(f"dt-{part}", start, config, render_training, max_states=200).show()
        ui.explainer(PARTS[part], formulas, {"w": w, "steps": total, "width": width}, charts.PAPERS, text=note)

if part == "distill":
    with ui.errors("the distilled digits UNet"):
        st.subheader("Digits: the distilled UNet in 4 calls (bottom) beside the teacher's CFG in 64 (top)")
        images = distilled_digits(w, seed, str(device))
        ui.chart(ui.image_grid(images, columns=10, zmin=-1, zmax=1, height=80), key="dt-digits", data={"x": images})
        recipe = zoo.info("digits-unet-distilled")["metrics"]
        ui.metrics({k.replace("_", " "): v for k, v in recipe.items() if k.startswith("accuracy")})

if part == "ntk":
    with ui.errors("the regression"):
        st.subheader("Denoising score matching is regression with noisy labels; a wide net tracks its NTK")
        ntk_width = ui.select("Network width m", [256, 512, 1024, 2048, 4096], 2048, "ntk_width")
        ntk_steps = ui.slider("GD steps T", 100, 5000, 3000, "ntk_steps", step=100)
        n = ui.slider("Training points n", 50, 800, 200, "n", step=50)
        problem, limit = score_problem(n, ntk_width, seed)
        best_kernel = min(r["test_error"] for r in limit[:-1])
        interpolant = {"NTK interpolant vs D*": limit[-1]["test_error"], "NTK early-stopped vs D*": best_kernel}
        ui.metrics({"label noise E‖x0 − D*‖²": problem.label_noise} | interpolant)

        every_ntk = max(1, ntk_steps // 100)
        start = lambda: DT.regress(problem, width=ntk_width, steps=ntk_steps, every=every_ntk, seed=seed)  # noqa: E731
        config = (ntk_width, ntk_steps, n, seed)
        render = lambda states: charts.render_regression(states, limit)  # noqa: E731
        ui.Player("dt-ntk-live", start, config, render, max_states=120).show()
        values = {"m": ntk_width, "n": n, "σ": 0.5}
        text = "Early stopping: the step with the lowest error on held-out noisy labels (unbiased for the error vs D*)."
        ui.explainer("DSM as kernel regression", charts.NTK, values, charts.PAPERS, text=text)
