"""Private optimization lab: DP-GD and DIFF2-GD trained across clients at the same (ε, δ), the budget drawn as spent."""

from __future__ import annotations

import numpy as np
import streamlit as st

from core import privacy
from core.privacy import figures
from core.privacy.compare import METHODS, compare_on
from core.privacy.data import n_parameters
from pages import _shipped as shipped
from pages import _ui as ui

PAPERS = (
    "DIFF2: Murata & Suzuki, ICML 2023 ([arXiv:2302.03884](https://arxiv.org/abs/2302.03884)); DP-GD is its T = 1 "
    "case; accounting by opacus's RDP accountant (Mironov, [arXiv:1702.07476](https://arxiv.org/abs/1702.07476))."
)
SAWTOOTH = {"dataset": "unit-logistic", "model": "logistic", "epsilon": 1.0, "restart": 25, "clip": 1.4, "seeds": 2}
SAWTOOTH |= {"clip_difference": 0.5, "lr": 1.0, "rounds": 100, "clients": 10, "samples": 3000}
PRESETS = {
    "DIFF2's sawtooth: unit-norm logistic, ε = 1": SAWTOOTH,
    "ε = 3: smaller noise, same ratio": SAWTOOTH | {"epsilon": 3.0, "restart": 10},
    "DP-GD wins: small n, active clipping (breast cancer)": SAWTOOTH
    | {"dataset": "breast_cancer", "epsilon": 0.3, "restart": 10, "clip": 0.3, "clip_difference": 0.3, "rounds": 100},
}

ui.header("privacy")
ui.presets(PRESETS)
dataset = ui.select("Data", privacy.DATASETS, "unit-logistic", "dataset")
model = ui.radio("Model", privacy.MODELS, "logistic", "model")
samples = int(ui.slider("Samples (generated set)", 500, 20_000, 3000, "samples", step=500))
epsilon = ui.select("Target ε", [0.1, 0.3, 1.0, 3.0, 5.0], 1.0, "epsilon")
delta = ui.select("δ", [1e-6, 1e-5, 1e-3], 1e-5, "delta")
restart = int(ui.slider("Restart interval T (DIFF2)", 2, 100, 25, "restart"))
clip = ui.slider("Gradient clip c", 0.1, 10.0, 1.4, "clip", step=0.1)
clip_difference = ui.slider("Difference clip c₂ (× ‖x_r − x_{r−1}‖)", 0.1, 10.0, 0.5, "clip_difference", step=0.1)
lr = ui.select("Step size η", [0.0625, 0.125, 0.25, 0.5, 1.0, 2.0], 1.0, "lr")
rounds = int(ui.slider("Rounds R", 20, 500, 100, "rounds", step=10))
clients = int(ui.slider("Clients P", 1, 50, 10, "clients"))
seeds = int(ui.slider("Seeds", 1, 5, 2, "seeds"))
device = ui.device()


# the default link's runs are shipped; any other link trains here
race = shipped.cache_for("privacy", max_entries=16)(
    compare_on, show_spinner="Training DP-GD and DIFF2-GD on every seed…"
)


with ui.errors("the private runs"):
    options = {
        "epsilon": epsilon,
        "delta": delta,
        "clip": clip,
        "clip_difference": clip_difference,
        "restart": restart,
        "lr": lr,
        "n_clients": clients,
    }
    (n, d), result = race(dataset, model, samples, tuple(options.items()), rounds, seeds, str(device))
    curves, dims = result.curves, n_parameters(model, d)
    mean_error = {k: float(np.nanmean(c["error"])) for k, c in curves.items()}
    ui.metrics(
        {f"{METHODS[k]}: mean ‖v − ∇f‖²": v for k, v in mean_error.items()}
        | {"error ratio DP-GD / DIFF2": mean_error["dp-gd"] / mean_error["diff2"]}
        | {f"{METHODS[k]}: final loss": float(np.nanmean(c["loss"][:, -1])) for k, c in curves.items()}
    )
    if any(result.diverged.values()):
        st.warning(f"Runs that blew up (curves stop there): {result.diverged}. See the notes' feedback instability.")

    st.subheader("The mechanism: DIFF2's estimate error drops at each restart")
    fig, frames = figures.error_replay({k: c["error"][0] for k, c in curves.items()}, result.restarts)
    fig = ui.animate(fig, frames, labels=[f.name for f in frames], prefix="rounds shown: ", duration_ms=80)
    ui.chart(fig, "privacy-error", data={k: c["error"] for k, c in curves.items()} | {"restarts": result.restarts})
    ui.explainer(
        "the two estimators",
        figures.FORMULAS["estimator"],
        {"N (kept)": n // clients * clients, "P": clients, "D": dims, "T": restart, "c": clip, "c₂": clip_difference},
        PAPERS,
        text="DP-GD adds fresh noise to every round's gradient. DIFF2 adds it once per T rounds to a full gradient, "
        "then only to the gradient *differences*, whose sensitivity shrinks with the step ‖x_r − x_{r−1}‖.",
    )

    left, right = st.columns(2)
    with left:
        loss = {k: c["loss"] for k, c in curves.items()}
        ui.chart(figures.curves_figure(loss, f"Training loss over {seeds} seed(s)"), "privacy-loss", data=loss)
    with right:
        norm = {k: c["grad_norm"] for k, c in curves.items()}
        ui.chart(figures.curves_figure(norm, "True gradient norm ‖∇f(x_r)‖"), "privacy-grad", data=norm)

    st.subheader("The privacy budget, spent round by round")
    calibration = privacy.calibrate(epsilon, delta, rounds=rounds, restart=restart)
    spent = {k: c["epsilon"][0] for k, c in curves.items()}
    ui.chart(figures.ledger_figure(spent, epsilon), "privacy-ledger", data=spent)
    full, diff = calibration.full_rounds, calibration.difference_rounds
    ui.metrics(
        {
            "ε spent, DP-GD (opacus)": float(spent["dp-gd"][-1]),
            "ε spent, DIFF2 (opacus)": float(spent["diff2"][-1]),
            "ε, DIFF2 (classic conversion)": privacy.classic_epsilon(calibration, delta, full=full, difference=diff),
        }
    )
    ui.explainer(
        "the noise calibration and the accountant",
        figures.FORMULAS["privacy"],
        {"α": calibration.order, "z₁": calibration.z_full, "z₂": calibration.z_difference, "full rounds": full},
        PAPERS,
        text="Both schedules are calibrated to the target (ε, δ) over the whole run; opacus's RDP accountant "
        "certifies a tighter ε than the classic conversion the authors' calibration uses (about 20% slack).",
    )

    st.subheader("The regime map: where the bounds favour DIFF2")
    ratio = privacy.regime_ratio(n, epsilon, dims)
    ui.chart(figures.regime_figure(n, epsilon, dims), "privacy-regime", data={"n": n, "epsilon": epsilon, "d": dims})
    ui.metrics({"bound ratio DIFF2 / DP-GD": ratio, "nε": n * epsilon, "√d": dims**0.5})
    ui.explainer(
        "the regime map",
        figures.FORMULAS["regime"],
        {"n": n, "ε": epsilon, "d": dims, "ratio": ratio},
        PAPERS,
        text="The bounds are rates, not measurements: at CPU scale the estimate's error drops 10–20×, but the loss "
        "gain is small, and with small n or active clipping (c below the per-sample gradient norm) DP-GD wins.",
    )
