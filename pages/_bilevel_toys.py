"""The bilevel lab's two toy views (UI only): LV-HBA on a constrained toy and BO-REP vs AID on an unbounded-curvature toy."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import streamlit as st
import torch
from plotly.subplots import make_subplots

from core import bilevel as bl
from pages import _ui as ui

LVHBA_PAPER = "Yao et al. 2024, [arXiv:2401.16164](https://arxiv.org/abs/2401.16164)"
BOREP_PAPER = "Hao, Gong, Liu 2024, [arXiv:2401.09587](https://arxiv.org/abs/2401.09587)"
STARTS = {"6,8": "(6, 8): ‖∇Φ‖ = 212", "15,20": "(15, 20): ‖∇Φ‖ = 3.4e3", "30,40": "(30, 40): ‖∇Φ‖ = 2.7e4"}
WALL_LRS = (0.05, 0.02, 0.005, 0.001)
FORK = {"lv_alpha": 0.005, "lv_beta": 0.002, "lv_eta": 0.03, "lv_bound": 1.0, "lv_c0": 1.0}
AUTHORS = {"lv_alpha": 0.008, "lv_beta": 0.02, "lv_eta": 0.01, "lv_bound": 1000.0, "lv_c0": 0.025}
PRESETS = {
    "LV-HBA: fork settings converge": {"part": "lvhba", "lv_steps": 2000, **FORK},
    "LV-HBA: authors' toy defaults fail": {"part": "lvhba", "lv_steps": 1500, **AUTHORS},
    "BO-REP vs AID from (30, 40)": {"part": "borep", "x0": "30,40", "bo_eta": 0.05, "aid_lr": 0.005, "bo_steps": 1200},
}
LVHBA = [
    r"v_\gamma = \min_\theta \max_\lambda f(x,\theta) + \lambda^\top g(x,\theta) + \tfrac{\|\theta - y\|^2}{2\gamma_1}"
    r" - \tfrac{\|\lambda - z\|^2}{2\gamma_2}",
    r"(x, y) \leftarrow \mathrm{Proj}_C\big[(x,y) - \alpha\,\nabla(F/c_k + f - v_\gamma)\big],\quad c_k = c_0 (k+1)^{0.3}",
]
BOREP = [
    r"\hat g = \nabla_x f - \nabla^2_{xy} g\, z,\quad z \leftarrow z - \nu(\nabla^2_{yy} g\, z - \nabla_y f)",
    r"m \leftarrow \beta m + (1-\beta)\hat g,\qquad x \leftarrow x - \eta\, m / \|m\|",
]


@st.cache_data(max_entries=8, show_spinner="Running LV-HBA…")
def lvhba(steps: int, alpha: float, beta: float, eta: float, bound: float, c0: float) -> list[bl.LVHBAState]:
    config = bl.LVHBAConfig(alpha=alpha, beta=beta, eta=eta, bound=bound, c0=c0)
    start = 10 * torch.ones(300, dtype=torch.float64)
    return list(bl.lv_hba(bl.coupled_toy(), start[:100], start[100:], config=config, steps=steps, every=steps // 100))


def lvhba_view() -> None:
    steps = int(ui.slider("Iterations", 100, 5000, 2000, "lv_steps", step=100))
    alpha = ui.number("α (x, y step)", 1e-4, 0.1, 0.005, "lv_alpha", format="%g")
    beta = ui.number("β (z step)", 1e-4, 0.1, 0.002, "lv_beta", format="%g")
    eta = ui.number("η (θ, λ step)", 1e-4, 0.1, 0.03, "lv_eta", format="%g")
    bound = ui.number("u (λ ∈ [−u, u])", 0.1, 1000.0, 1.0, "lv_bound")
    c0 = ui.number("c₀ (c_k = c₀(k+1)^0.3)", 0.001, 10.0, 1.0, "lv_c0", format="%g")
    states = lvhba(steps, alpha, beta, eta, bound, c0)
    k, s = [t.step for t in states], states[-1]
    series = {
        "error_x": [t.error_x for t in states],
        "error_y": [t.error_y for t in states],
        "violation": [max(t.violation, 1e-17) for t in states],
        "lambda": [float(t.multiplier) for t in states],
        "z": [float(t.z) for t in states],
    }
    titles = ("distance to the solution", "constraint residual |1ᵀx + 1ᵀy|", "multiplier λ (λ* = −1)")
    fig = make_subplots(1, 3, subplot_titles=titles)
    names = {"error_x": "‖x − x*‖/‖x*‖", "error_y": "‖y − y*‖/‖y*‖", "violation": "residual", "lambda": "λ", "z": "z"}
    for key, col in (("error_x", 1), ("error_y", 1), ("violation", 2), ("lambda", 3), ("z", 3)):
        fig.add_trace(go.Scatter(x=k, y=series[key], name=names[key]), 1, col)
    fig.update_yaxes(type="log", exponentformat="power", col=1)
    fig.update_yaxes(type="log", exponentformat="power", col=2)
    fig.update_layout(height=360, xaxis2_title="iteration k", legend={"orientation": "h", "y": -0.2})
    ui.chart(fig, "bilevel-lvhba", data={"k": k, **series})
    ui.metrics(
        {
            "‖x − x*‖/‖x*‖": s.error_x,
            "λ": float(s.multiplier),
            "F(x, y) (F* = 5)": s.upper_value,
            "gradient calls": s.gradient_calls,
        }
    )
    ui.explainer(
        "LV-HBA",
        LVHBA,
        {"1/c_k": s.penalty, "z": float(s.z), "‖(d_x, d_y)‖": s.direction_norm},
        f"Toy (n = 100): x* = −0.3, y₁* = 0.7, y₂* = −0.4, λ* = −1. {LVHBA_PAPER}.",
        text="Defaults: the converging fork settings (PerryChuh/LV-HBA `LV-HBA-new.py`): α = 0.005, β = 0.002, "
        "η = 0.03, u = 1, c_k = (k+1)^0.3. The authors' toy defaults (second preset) do not converge.",
    )


# cache_resource, not cache_data: unpickling thousands of states cost seconds; frozen states are safe to share
@st.cache_resource(max_entries=8, show_spinner="Running BO-REP and AID…")
def borep(x0: str, eta: float, aid_lr: float, steps: int, noise: float, seed: int):
    start = torch.tensor([[float(v) for v in x0.split(",")]], dtype=torch.float64)
    configs = {
        "BO-REP": bl.BOREPConfig(lr=eta, noise=noise),
        f"AID η={aid_lr}": bl.BOREPConfig.aid(aid_lr, noise=noise),
    }
    return {
        name: list(bl.bo_rep(bl.quartic_toy(), start, config=c, steps=steps, seed=seed)) for name, c in configs.items()
    }


@st.cache_data(max_entries=4)
def contours(hi: float) -> tuple[np.ndarray, np.ndarray]:
    grid = np.linspace(-5, hi, 120)
    points = torch.tensor(np.stack(np.meshgrid(grid, grid), -1).reshape(-1, 2))
    return grid, np.log10(bl.quartic_toy().phi(points).numpy().reshape(120, 120) + 0.5 + 1e-3)  # Φ ≥ −0.5


def wall_view(noise: float, seed: int) -> None:
    starts = torch.tensor([[float(v) for v in key.split(",")] for key in STARTS], dtype=torch.float64)
    wall = ui.background(
        "bilevel-wall",
        (noise, seed),
        lambda: bl.step_size_wall(bl.quartic_toy(), starts, WALL_LRS, steps=1000, seed=seed),
        lambda p: (p.done / len(WALL_LRS), f"{p.done} of {len(WALL_LRS)} step sizes"),
        label="Compute AID's step-size wall (~10 s)",
    )
    if wall is None:
        return
    text = np.where(wall.diverged, "diverged", np.where(wall.first_hit > 0, wall.first_hit.astype(str), "not in 1000"))
    z = np.where(wall.diverged, 0, 1 + (wall.first_hit > 0))
    colors = [[0, "#d62728"], [0.5, "#ffbf00"], [1, "#2ca02c"]]
    fig = go.Figure(
        go.Heatmap(
            x=list(STARTS.values()),
            y=[str(v) for v in WALL_LRS],
            z=z,
            text=text,
            texttemplate="%{text}",
            colorscale=colors,
            zmin=0,
            zmax=2,
            showscale=False,
        )
    )
    fig.update_layout(
        xaxis_title="start",
        yaxis_title="AID step size η",
        height=300,
        title="Un-normalized AID: iterations to ‖∇Φ‖ < 0.1",
    )
    ui.chart(fig, "bilevel-wall", data={"lr": WALL_LRS, "first_hit": wall.first_hit, "diverged": wall.diverged})


def borep_view() -> None:
    x0 = ui.select("Start x₀", STARTS, "30,40", "x0")
    eta = ui.number("BO-REP η (normalized step)", 0.005, 0.5, 0.05, "bo_eta", format="%g")
    aid_lr = ui.select("AID step size", list(WALL_LRS), 0.005, "aid_lr")
    steps = int(ui.slider("Iterations", 100, 3000, 1200, "bo_steps", step=100))
    noise, seed = ui.slider("Oracle noise σ", 0.0, 0.5, 0.1, "noise"), ui.seed()
    runs = borep(x0, eta, aid_lr, steps, noise, seed)
    grid, log_phi = contours(max(float(v) for v in x0.split(",")) + 5)
    paths = {name: torch.stack([s.x[0] for s in states]).numpy() for name, states in runs.items()}
    norms = {name: torch.stack([s.grad_phi_norm[0] for s in states]).numpy() for name, states in runs.items()}
    fig = go.Figure(go.Contour(x=grid, y=grid, z=log_phi, colorscale="Viridis", showscale=False, name="log₁₀ Φ"))
    for name, path in paths.items():
        fig.add_trace(go.Scatter(x=path[:, 0], y=path[:, 1], mode="lines+markers", marker={"size": 3}, name=name))
    box = [grid[0], grid[-1]]
    fig.update_layout(height=480, xaxis={"range": box, "title": "x₁"}, yaxis={"range": box, "title": "x₂"})
    left, right = st.columns(2)
    with left:
        ui.chart(fig, "bilevel-borep-paths", data=paths)
    fig = go.Figure([go.Scatter(x=np.arange(len(v)), y=v, name=name) for name, v in norms.items()])
    fig.update_yaxes(type="log", title="‖∇Φ(x)‖", exponentformat="power")
    fig.update_layout(xaxis_title="iteration", height=480, legend={"orientation": "h", "y": 1.08})
    with right:
        ui.chart(fig, "bilevel-borep-grad", data=norms)
    bo, aid = runs.values()
    hit = next((s.step for s in bo if float(s.grad_phi_norm[0]) < 0.1), "never")
    calls = f"{bo[-1].grad_g_calls} / {bo[-1].hvp_calls} / {bo[-1].grad_f_calls}"
    outcome = "diverged" if bool(aid[-1].diverged[0]) else f"‖∇Φ‖ = {float(aid[-1].grad_phi_norm[0]):.3g}"
    ui.metrics({"BO-REP: first ‖∇Φ‖ < 0.1": hit, "AID": outcome, "∇g / HVP / ∇f calls (BO-REP)": calls})
    wall_view(noise, seed)
    ui.explainer(
        "BO-REP",
        BOREP,
        {"η": eta, "β": 0.9, "I (refresh interval)": 2, "N (LL steps)": 5, "N₀": 50},
        f"Toy: g = ½yᵀdiag(1,2)y − xᵀy, f = Σ y⁴/4 − y²/2, so Φ is not L-smooth. {BOREP_PAPER}.",
    )
