"""Bilevel lab: implicit vs unrolled hypergradients and dataset distillation here; LV-HBA and BO-REP in _bilevel_toys."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import streamlit as st

from core import bilevel as bl
from core.data.digits import load_digits_split
from pages import _bilevel_toys as toys
from pages import _ui as ui

PARTS = {
    "tuning": "Hyperparameter tuning",
    "distill": "Dataset distillation",
    "lvhba": "LV-HBA (constrained lower level)",
    "borep": "BO-REP (unbounded smoothness)",
}
METHODS = {
    "implicit": "implicit (IFT at w_k)",
    "unrolled": "unrolled (backprop through k steps)",
    "finite_difference": "finite difference of the k-step solver",
}
IMPLICIT = "Blondel et al. 2021, [arXiv:2105.15183](https://arxiv.org/abs/2105.15183)"
IFT = [
    r"F(w, \theta) = \nabla_w \big[\ell_{train}(w) + \tfrac12 e^{\theta}\|w\|^2\big] = 0",
    r"\partial_1 F^\top u = -\nabla_w L_{val}, \qquad \frac{dL_{val}}{d\theta} = \partial_2 F^\top u",
]
DISTILL = [
    r"W^*(X_{syn}) = \arg\min_W \mathrm{CE}(X_{syn} W, \{0..9\}) + \tfrac{\lambda}{2}\|W\|^2",
    r"\min_{X_{syn}} \mathrm{CE}(X_{train} W^*(X_{syn}), y_{train})",
]

ui.header("bilevel")
st.caption(f"Papers: {IMPLICIT}; {toys.LVHBA_PAPER}; {toys.BOREP_PAPER}.")
ui.presets(
    {
        "Ridge: implicit vs unrolled": {"part": "tuning", "task": "ridge", "theta": -4.0, "kmax": 1000},
        "Logistic regularization": {"part": "tuning", "task": "logistic", "theta": -3.0, "kmax": 1000},
        "Distill digits into 10 images": {"part": "distill", "di_lr": 0.05, "di_l2": 0.1, "di_steps": 100},
        **toys.PRESETS,
    }
)
part = ui.radio("Part", PARTS, "tuning", "part")
seed = ui.seed()


@st.cache_data(max_entries=16, show_spinner="Differentiating through the inner solver…")
def tuning(task: str, theta: float, solve: str, kmax: int):
    problem = bl.load_task(task)
    thetas = np.linspace(-8.0, 4.0, 49)
    ks = tuple(k for k in (3, 10, 30, 100, 300, 1000, 3000) if k <= kmax)
    errors = bl.hypergradient_errors(problem, theta, ks, spec=bl.RootSpec(solve=solve))
    return thetas, bl.validation_curve(problem, thetas), errors


def tuning_view() -> None:
    task = ui.select("Task", bl.TASKS, "ridge", "task")
    theta = float(ui.slider("θ = log λ", -8.0, 4.0, -4.0, "theta", step=0.1))
    solve = ui.select("Linear solve", bl.RootSpec.SOLVERS, "cg", "solve")
    kmax = ui.select("Largest inner iteration count k", [300, 1000, 3000], 1000, "kmax")
    thetas, curve, err = tuning(task, theta, solve, kmax)
    span = np.array([theta - 1.5, theta + 1.5])
    tangent = np.interp(theta, thetas, curve) + err.exact * (span - theta)
    fig = go.Figure(
        [
            go.Scatter(x=thetas, y=curve, name="L_val(w*(θ))"),
            go.Scatter(x=span, y=tangent, name="tangent: exact dL/dθ", line={"dash": "dash"}),
        ]
    )
    fig.update_layout(xaxis_title="θ = log λ", yaxis_title="validation loss", height=380, legend={"y": -0.2})
    left, right = st.columns(2)
    with left:
        ui.chart(fig, "bilevel-curve", data={"theta": thetas, "validation_loss": curve}, name="validation-curve")
    lines = [go.Scatter(x=err.steps, y=err.errors[m], name=label, mode="lines+markers") for m, label in METHODS.items()]
    fig = go.Figure([*lines, go.Scatter(x=err.steps, y=err.distance, name="‖w_k − w*‖", line={"dash": "dot"})])
    fig.update_xaxes(type="log", title="inner GD iterations k")
    fig.update_yaxes(type="log", title="relative error of dL/dθ", exponentformat="power")
    fig.update_layout(height=380, legend={"orientation": "h", "y": -0.25})
    with right:
        ui.chart(fig, "bilevel-errors", data={"k": err.steps, "distance": err.distance, **err.errors})
    k = err.steps[-1]
    ratio = float(err.errors["implicit"][-1] / err.errors["unrolled"][-1])
    values = {
        "exact dL/dθ": err.exact,
        f"implicit (k={k})": float(err.values["implicit"][-1]),
        f"unrolled (k={k})": float(err.values["unrolled"][-1]),
        "implicit / unrolled error": ratio,
    }
    ui.metrics(values)
    ui.explainer(
        "implicit differentiation",
        IFT,
        {**values, "solve": solve},
        f"custom_root: {IMPLICIT}.",
        text="The implicit hypergradient is taken at the k-th GD iterate as if it were the solution; unrolling "
        "backpropagates through the same k iterations; the finite difference differentiates the same "
        "truncated solver, so it agrees with unrolling, not with the exact value.",
    )


def distill_view() -> None:
    lr = ui.number("Adam lr on the images", 0.001, 1.0, 0.05, "di_lr", format="%g")
    l2reg = ui.number("Inner L2 weight", 0.001, 10.0, 0.1, "di_l2", format="%g")
    steps = int(ui.slider("Outer steps", 10, 300, 100, "di_steps"))
    data = load_digits_split()

    def render(states: list) -> None:
        if not states:
            st.info("Press Play or Step: 10 images, one per digit, learned so that a classifier trained on them works.")
            return
        s, k = states[-1], [t.step for t in states]
        accuracy = [t.test_accuracy for t in states]
        ui.chart(
            ui.image_grid(s.images.numpy(), [str(c) for c in range(10)], height=150),
            "bilevel-images",
            data={"images": s.images.numpy()},
            name="distilled-images",
        )
        ui.metrics(
            {
                "outer step": s.step,
                "test accuracy": s.test_accuracy,
                "CG iterations": s.cg_iterations,
                "‖hypergradient‖": s.hypergradient_norm,
            }
        )
        fig = go.Figure(go.Scatter(x=k, y=accuracy, name="test accuracy"))
        fig.update_layout(xaxis_title="outer step", yaxis_title="test accuracy (trained on the 10 images)", height=260)
        ui.chart(fig, "bilevel-distill", data={"step": k, "accuracy": accuracy})

    ui.Player(
        "bilevel-distill-live",
        lambda: bl.distill(data, steps=steps, lr=lr, l2reg=l2reg, seed=seed),
        ("distill", lr, l2reg, steps, seed),
        render,
        max_states=steps + 1,
    ).show()
    ui.explainer(
        "dataset distillation",
        DISTILL,
        {"l2reg": l2reg, "lr": lr},
        f"Inner: Newton; hypergradient: CG on Hessian-vector products (custom_root). {IMPLICIT}.",
    )


with ui.errors(PARTS[part]):
    views = {"tuning": tuning_view, "distill": distill_view, "lvhba": toys.lvhba_view, "borep": toys.borep_view}
    views[part]()
