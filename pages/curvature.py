"""Curvature lab: M-FAC inverse-Hessian products and pruning saliency; gradient-regularized Newton (GNS)."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
import streamlit as st
import torch

from core import curvature
from core.curvature import compare, pruning
from core.landscape.models import digits_batch
from pages import _ui as ui

MFAC_REF = "Frantar, Kurtic, Alistarh, M-FAC, https://arxiv.org/abs/2107.03356 (static algorithm, §3)."
GNS_REF = "Semenov, Jaggi, Doikov, Gradient-Normalized Smoothness, https://arxiv.org/abs/2506.13710 (Algorithm 1)."
PROBLEMS = {"logistic": "Logistic: even vs odd digits (d = 65)", "softmax": "Softmax: 10 classes (d = 650)"}
LAST_LAYER = 650  # the output layer's 640 weights + 10 biases: a dense solve there takes milliseconds

ui.header("curvature")
ui.presets(
    {
        "M-FAC vs the exact inverse": {"view": "mfac", "damp": 1e-4},
        "GNS on logistic regression": {"view": "gns", "problem": "logistic", "steps": 60},
        "Böhning bound slower than GD": {"view": "gns", "problem": "softmax", "steps": 200},
    }
)
view = ui.radio("View", {"mfac": "M-FAC products and pruning", "gns": "GNS iterations"}, "mfac", "view")
damp = ui.select("M-FAC damping λ", [1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1], 1e-4, "damp")
problem_key = ui.radio("GNS problem", PROBLEMS, "logistic", "problem")
steps = int(ui.slider("GNS / GD iterations", 5, compare.MAX_ITERATIONS, 60, "steps"))


@st.cache_data(max_entries=2, show_spinner="Per-sample gradients of the digits MLP…")
def digits_gradients(n: int) -> torch.Tensor:
    x, y = digits_batch("train")
    return pruning.per_sample_grads(ui.zoo_model("digits-mlp-converged"), x[:n], y[:n]).cpu()


@st.cache_data(max_entries=8, show_spinner="M-FAC against torch.linalg.solve…")
def ihvp_table(damp: float) -> pd.DataFrame:
    grads = digits_gradients(128)[:, -LAST_LAYER:]
    x = torch.randn(LAST_LAYER, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    return pd.DataFrame(pruning.ihvp_errors(grads, x, ms=[4, 16, 64, 128], damps=[damp]))


@st.cache_data(max_entries=8, show_spinner="Pruning the digits MLP…")
def pruning_curves(damp: float) -> pd.DataFrame:
    x, y = digits_batch("test")
    sparsities = (0.0, 0.5, 0.7, 0.8, 0.85, 0.9, 0.95)
    model = ui.zoo_model("digits-mlp-converged")
    curves = pruning.prune_accuracy(model, digits_gradients(128), x, y, damp=damp, sparsities=sparsities)
    return pd.DataFrame({"sparsity": sparsities, **curves})


@st.cache_resource(max_entries=2)
def problem(key: str) -> curvature.Problem:
    return compare.PROBLEMS[key]()


def line_chart(data: pd.DataFrame, x: str, y: str, group: str, key: str, title: str, log_y: bool = True) -> None:
    fig = go.Figure(
        [
            go.Scatter(x=part[x], y=part[y], name=str(name), mode="lines+markers")
            for name, part in data.groupby(group, sort=False)
        ]
    )
    fig.update_layout(title=title, xaxis_title=x, yaxis_title=y, yaxis_type="log" if log_y else "linear", height=360)
    ui.chart(fig, key, data=data, name=f"curvature-{key}")


def mfac_view() -> None:
    with ui.errors("the M-FAC products"):
        table = ihvp_table(damp)
        line_chart(table.assign(what="relative error"), "m", "rel_error", "what", "ihvp", "M-FAC vs exact solve")
        cost = table.melt("m", ["mfac_s", "dense_s"], var_name="method", value_name="seconds")
        line_chart(cost, "m", "seconds", "method", "ihvp-cost", "Cost: M-FAC setup + product vs a dense solve")
        ui.metrics(
            {
                "worst relative error": f"{table.rel_error.max():.2e}",
                "M-FAC time at m = 128 (ms)": f"{1e3 * table.mfac_s.iloc[-1]:.1f}",
            }
        )
        formulas = [
            r"\hat F = \lambda I + \tfrac1m\sum_i g_i g_i^\top",
            r"\hat F^{-1}x = \lambda^{-1}x - \sum_i \frac{v_i^\top x}{m + g_i^\top v_i} v_i",
        ]
        ui.explainer("M-FAC", formulas, {"λ": damp, "d (output layer)": LAST_LAYER}, MFAC_REF)
        curves = pruning_curves(damp)
        long = curves.melt("sparsity", var_name="saliency", value_name="test accuracy")
        line_chart(long, "sparsity", "test accuracy", "saliency", "prune", "Pruning the digits MLP", log_y=False)
        ui.explainer(
            "OBS saliency",
            r"\rho_i = \frac{w_i^2}{2\,[\hat F^{-1}]_{ii}}",
            {"m": 128, "λ": damp},
            MFAC_REF,
            text="Weights with the smallest saliency are zeroed first.",
        )


def gns_view() -> None:
    with ui.errors("the GNS runs"):
        shipped = compare.load_comparison(problem_key, steps=steps)
        runs, f_star = pd.DataFrame(shipped["rows"]), shipped["f_star"]
        line_chart(runs, "iteration", "gap", "method", "gap", "f − f* per iteration")
        line_chart(runs[runs.method != "gradient descent"], "iteration", "gamma", "method", "gamma", "γ_k")
        line_chart(runs, "iteration", "solves", "method", "solves", "Solves (or GD trials) per iteration")
        last = runs.groupby("method", sort=False).gap.last()
        ui.metrics({"f*": f"{f_star:.10f}", **{f"f − f* ({name})": f"{gap:.2e}" for name, gap in last.items()}})
        ui.explainer(
            "GNS",
            [
                r"\lambda_k = \|\nabla f(x_k)\| / \gamma_k",
                r"x_{k+1} = x_k - (H_k + \lambda_k I)^{-1}\nabla f(x_k)",
                r"\text{accept iff } f(x_k) - f(x_{k+1}) \ge \|\nabla f(x_{k+1})\|^2 / (8\lambda_k)",
            ],
            {"problem": PROBLEMS[problem_key], "iterations": steps},
            GNS_REF,
            text="Precomputed (`python -m core.curvature.compare`); a fixed bound (Gauss–Newton / Böhning) is cheap "
            "per iteration but can be slower than gradient descent. Rerun one approximation live below.",
        )
    st.subheader("Live: one GNS run, iteration by iteration")
    with ui.errors("the live GNS run"):
        subject = problem(problem_key)
        hessian = ui.select("Live GNS: Hessian", list(subject.hessians), "exact", "hessian")
        x0 = torch.zeros(subject.d, dtype=torch.float64)

        def render(states: list) -> None:
            if not states:
                return st.info("Press Play (or Step) to run GNS live; f* is the shipped exact-Hessian optimum.")
            live = pd.DataFrame(states, columns=["iteration", "f", "gamma", "solves", "accepted"])
            live["gap"] = (live.f - f_star).clip(lower=1e-16)
            tall = live.melt("iteration", ["gap", "gamma"], var_name="series", value_name="value")
            line_chart(tall, "iteration", "value", "series", "gns-live", f"GNS ({hessian}): f − f* and γ_k")
            ui.metrics({"f − f* (live)": f"{live.gap.iloc[-1]:.2e}", "solves so far": int(live.solves.sum())})

        start = lambda: curvature.gns(subject, x0, hessian=hessian, steps=steps, tol=compare.CONVERGED)  # noqa: E731
        keep = lambda s: (s.step, s.f, s.gamma, s.solves, s.accepted)  # noqa: E731
        ui.Player("gns-live", start, (problem_key, hessian, steps), render, max_states=steps, keep=keep).show()


mfac_view() if view == "mfac" else gns_view()
