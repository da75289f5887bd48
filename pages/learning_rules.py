"""Learning-rules lab: NoProp's denoising blocks, ±1 threshold nets trained by RRR, and zeroth-order gradients."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st
import torch

from core.data.digits import load_digits_split
from core.learning_rules import ESTIMATORS, error_vs_dimension, noprop_run, rrr_run
from pages import _ui as ui

NOPROP_REF = "NoProp (Li, Teh, Pascanu): https://arxiv.org/abs/2503.24322"
RRR_REF = "Learning with Boolean threshold functions (Elser, Lal): https://arxiv.org/abs/2602.17493"
ZO_REF = (
    "From gradient descent to neural adaptation (García Fernández, Ahmad, van Gerven): https://arxiv.org/abs/2510.18812"
)
XOR_IN = torch.tensor([[-1.0, -1.0], [-1.0, 1.0], [1.0, -1.0], [1.0, 1.0]])

ui.header("learning_rules")
ui.presets(
    {
        "NoProp on digits (quick)": {"epochs": 3, "T": 10, "hidden": 3},
        "XOR on 2-3-1": {"epochs": 3, "T": 10, "hidden": 3},
        "XOR on 2-1-1 (no solution)": {"epochs": 3, "T": 10, "hidden": 1},
    }
)
epochs = int(ui.slider("NoProp epochs", 1, 60, 3, "epochs"))
T = int(ui.slider("Blocks T", 2, 20, 10, "T"))
hidden = int(ui.slider("RRR hidden gates (XOR)", 1, 6, 3, "hidden"))
method = ui.select("Zeroth-order estimator", list(ESTIMATORS), "weight", "estimator")
seed = ui.seed()


@st.cache_data(max_entries=8, show_spinner="Training NoProp, backprop through the chain and an MLP…")
def train_all(epochs: int, T: int, seed: int) -> dict[str, list]:
    data = load_digits_split(0.2)
    return {
        m: list(noprop_run(data, method=m, T=T, steps=epochs, seed=seed)) for m in ("noprop", "backprop_chain", "mlp")
    }


@st.cache_data(max_entries=8, show_spinner="Running RRR…")
def solve_xor(hidden: int, seed: int):
    states = list(
        rrr_run(XOR_IN, -(XOR_IN[:, :1] * XOR_IN[:, 1:]), hidden=(hidden,), steps=1000, every=10, n_runs=20, seed=seed)
    )
    return states[-1], [float(s.gap.min()) for s in states]


@st.cache_data(max_entries=8)
def estimator_errors(method: str, seed: int) -> pd.DataFrame:
    return pd.DataFrame(error_vs_dimension(method, seed=seed))


noprop_tab, rrr_tab, zo_tab = st.tabs(["NoProp", "Boolean nets (RRR)", "Zeroth-order"])
with noprop_tab, ui.errors("NoProp training"):
    runs = train_all(epochs, T, seed)
    last = {m: states[-1] for m, states in runs.items()}
    ui.metrics(
        {
            "NoProp accuracy": f"{last['noprop'].accuracy_noise_free:.3f}",
            "Backprop (same chain)": f"{last['backprop_chain'].accuracy_noise_free:.3f}",
            "MLP": f"{last['mlp'].accuracy:.3f}",
        }
    )
    probs = last["noprop"].chain_probs.numpy()  # (T, 10): one test digit's label embedding, block by block
    fig = go.Figure(go.Bar(x=list(range(10)), y=probs[0]))
    fig.update_layout(title="Denoised label embedding of one test digit, block by block", yaxis_range=[0, 1])
    frames = [go.Frame(data=[go.Bar(x=list(range(10)), y=p)], name=f"{t + 1}") for t, p in enumerate(probs)]
    ui.chart(
        ui.animate(fig, frames, duration_ms=400, prefix="block "),
        "noprop-chain",
        data={"probs": probs},
        name="noprop_chain",
    )
    acc = pd.DataFrame({"block": np.arange(1, T + 1), "accuracy alone": last["noprop"].block_accuracy.numpy()})
    ui.chart(
        go.Figure(go.Bar(x=acc["block"], y=acc["accuracy alone"])).update_layout(
            title="Each block alone (argmax of its logits)"
        ),
        "noprop-blocks",
        data=acc,
    )
    st.caption(
        "Honest reading: block 1 alone already classifies digits at about 97 %: every block sees the image, so on easy data the chain adds little."
    )
    ui.explainer(
        "the NoProp-DT loss",
        [
            r"\mathcal L_t=\tfrac{T}{2}\eta\,(\mathrm{SNR}(t)-\mathrm{SNR}(t-1))\,\|\hat u_{\theta_t}(z_{t-1},x)-u_y\|^2",
            r"z_t=a_t\hat u_{\theta_t}(z_{t-1},x)+b_t z_{t-1}+\sqrt{c_t}\,\epsilon",
        ],
        {"T": T, "epochs": epochs},
        NOPROP_REF,
    )
with rrr_tab, ui.errors("RRR on XOR"):
    state, gaps = solve_xor(hidden, seed)
    n_solved = int(state.solved.sum())
    best = int(state.solved.double().argmax())  # a solved run if there is one
    ui.metrics(
        {
            "solved runs (of 20 seeds)": n_solved if n_solved else f"no solution within {state.step} iterations",
            "truth-table accuracy (shown run)": f"{float(state.accuracy[best]):.2f}",
        }
    )
    ui.chart(
        go.Figure(go.Scatter(y=gaps)).update_layout(title="Smallest RRR gap over the 20 runs", yaxis_type="log"),
        "rrr-gap",
        data={"gap": gaps},
    )
    if n_solved:
        st.caption("Concur weights of a solved run, rounded: w/√(m/3) ≈ {0, ±1} reads as And/Or/Maj gates.")
        st.dataframe(pd.DataFrame(state.weights[0][best].numpy().round(2), columns=["w_x1", "w_x2", "w_bias"]))
    ui.explainer("RRR", r"z\leftarrow z+\beta\,(P_B(2P_Az-z)-P_Az)", {"hidden gates": hidden}, RRR_REF)
with zo_tab, ui.errors("the estimators"):
    table = estimator_errors(method, seed)
    fig = go.Figure(
        [
            go.Scatter(x=table["d"], y=table["rel_mse"], name="measured", mode="markers"),
            go.Scatter(x=table["d"], y=table["theory_rel_mse"], name="theory (d+1)/K"),
        ]
    )
    ui.chart(
        fig.update_layout(xaxis_type="log", yaxis_type="log", title="Relative error E‖ĝ−g‖²/‖g‖², K = 10"),
        "zo-error",
        data=table,
    )
    ui.explainer(
        "the estimators",
        r"\hat g=\tfrac1K\sum_k \tfrac{L(\theta+\sigma u_k)-L(\theta)}{\sigma}u_k",
        {"estimator": method},
        ZO_REF,
    )
