"""Explanation-choice lab: eight attribution methods as local function approximations, and no free lunch."""

from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from core import explanations as ex
from core.data.shapes import CLASSES
from core.explanations.data import DATASETS
from core.explanations.lfa import LOSS_FORMULAS
from core.explanations.models import KINDS, zoo_name
from pages import _explanations_charts as charts
from pages import _ui as ui

TABULAR = dict(source="tabular", n=300, sigma=0.1, kappa=1.0, a=0.95)
PRESETS = {
    "Linear model: additive methods return w": {**TABULAR, "dataset": "wine", "model": "linear", "question": "noise"},
    "No free lunch on the cancer MLP": {**TABULAR, "dataset": "cancer", "model": "mlp", "question": "remove-near"},
    "σ → 0: SmoothGrad becomes gradients": {
        **TABULAR,
        "dataset": "diabetes",
        "model": "mlp",
        "sigma": 0.01,
        "question": "tiny",
    },
    "Shapes CNN, 16 patches": dict(source="image", patch=16, n=40, sigma=0.1, kappa=40.0, question="remove-one"),
}

ui.header("explanations")
ui.presets(PRESETS)
source = ui.radio("Data", {"tabular": "Tabular", "image": "Shapes image"}, "tabular", "source", horizontal=True)
if source == "tabular":
    dataset = ui.select("Data set", DATASETS, "cancer", "dataset")
    kind = ui.radio("Model", KINDS, "mlp", "model")
    data = ex.tabular(dataset)
    index = int(ui.slider("Test point", 0, len(data.x_test) - 1, 0, "point"))
    names, classes, patch = list(data.feature_names), data.classes, None
else:
    index = int(ui.slider("Gallery image", 0, charts.GALLERY - 1, 0, "image"))
    patch = ui.select("Patch (features)", {16: "16 px (16 features)", 8: "8 px (64 features)"}, 16, "patch")
    names, classes = [f"patch {i}" for i in range((64 // patch) ** 2)], CLASSES
target_name = ui.select("Explained class", ["predicted", *classes], "predicted", "target") if classes else None
n_samples = int(
    ui.slider("Samples n", 20, 2000 if source == "tabular" else 200, 300 if source == "tabular" else 40, "n", step=10)
)
sigma = ui.slider("σ (Gaussian)", 0.005, 0.5, 0.1, "sigma", step=0.005)
kappa = ui.slider("LIME kernel width κ", 0.25, 100.0, 1.0 if source == "tabular" else 40.0, "kappa", step=0.25)
a = ui.slider("Gradient × input: a", 0.5, 0.99, 0.95, "a", step=0.01)
dim_x = ui.select("Cloud: horizontal feature", dict(enumerate(names)), 0, "dim_x")
dim_y = ui.select("Cloud: vertical feature", dict(enumerate(names)), 1, "dim_y")
question = ui.radio("What changes do you care about?", {k: v[0] for k, v in ex.QUESTIONS.items()}, "noise", "question")
seed, device = ui.seed(), ui.device()


out = None
with ui.errors("the explanations"):
    model_name = zoo_name(dataset, kind) if source == "tabular" else "shapes-cnn"
    out = charts.compute(
        source, model_name, index, target_name, patch, n_samples, (sigma, min(0.01, sigma), kappa, a), seed
    )
if out is None:
    st.stop()

t = out["target"]
shown = (
    {"explained output": f"{out['output'][0]:.3f}"}
    if t is None
    else {"explained class": str(classes[t]), "its logit": float(out["output"][t])}
)
ui.metrics({"features d": len(names), **shown})
st.subheader("Eight explanations of one input")
attr = out["attributions"]
if source == "tabular":
    ui.chart(
        charts.attribution_map(attr, names), "attributions", data=dict(features=names, **attr), name="explanations"
    )
else:
    feats = ex.patch_features(64, patch).numpy()
    ui.chart(charts.maps(out["x0"], attr, feats), "attributions", data=attr, name="explanations")
calls = {m.label: m.captum for m in ex.METHODS.values()}
ui.explainer("the methods as LFA", charts.LFA_FORMULA, calls, charts.REFERENCE, text=charts.LFA_TEXT)

if out["sweep"]:
    st.subheader("σ → 0: SmoothGrad's neighbourhood shrinks to gradients")
    ui.chart(
        charts.sigma_replay(charts.SWEEP, out["sweep"], attr["vanilla"], names),
        "sweep",
        name="smoothgrad-sigma",
        data={"sigma": charts.SWEEP, "smoothgrad": np.array(out["sweep"]), "vanilla": attr["vanilla"]},
    )

st.subheader("Where each method looks: its neighbourhood")
ui.chart(
    charts.clouds(out["clouds"], out["x0_features"], (dim_x, dim_y), (names[dim_x], names[dim_y])),
    "clouds",
    data=out["clouds"],
    name="neighbourhoods",
)
ui.explainer(
    "the neighbourhoods",
    [nb.formula for nb in ex.NEIGHBOURHOODS.values()],
    {nb.label: nb.kind for nb in ex.NEIGHBOURHOODS.values()},
    charts.REFERENCE,
)

st.subheader("No free lunch: every explanation on every neighbourhood")
label, recommended = ex.QUESTIONS[question]
table = charts.matrix_table(out["matrix"])
winner = " = ".join(charts.winners(table, ex.METHODS[recommended].label))
ui.metrics(
    {"you care about": label.split(" (")[0], "choose": ex.METHODS[recommended].label, "most faithful here": winner},
    help={"most faithful here": "the column's winners on this input, ties within 5% (SmoothGrad ≈ C-LIME)"},
)
ui.chart(charts.matrix(table, recommended), "matrix", data=table.reset_index(names="explanation"), name="loss-matrix")
ui.explainer(
    "the loss matrix",
    list(LOSS_FORMULAS.values()),
    {"columns won by their own method (≤ 1.05 × min)": charts.own_wins(table)},
    charts.REFERENCE,
    text=charts.MATRIX_TEXT,
)
with st.expander("Agreement between the methods (cosine distance; Spearman rank correlation in the chart)"):
    keys = [ex.METHODS[k].label for k in attr]
    st.dataframe(pd.DataFrame(out["agreement"]["cosine"], index=keys, columns=keys).round(4))
    ui.chart(charts.agreement(out["agreement"]["rank"], keys), "agreement", data=out["agreement"], name="agreement")
