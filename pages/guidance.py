"""Classifier-free guidance lab: CFG vs APG side by side, a step scrubber over Δ∥ / Δ⊥, and a w sweep."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st
import torch

from core import guidance as G
from pages import _ui as ui

MODELS = {"2-D mixture (exact)": "mixture", "Digits, smoothed empirical (exact)": "empirical",
          "Digits, tiny UNet (trained)": "unet", "Local diffusers pipeline": "pipeline"}  # fmt: skip
NAMES = {label: key for key, (label, _) in G.GUIDERS.items()}  # label -> key
LABELS = {key: label for label, key in NAMES.items()}
PER_CLASS = {"mixture": 32, "empirical": 4, "unet": 4, "pipeline": 1}

ui.header("guidance")
ui.presets({
    "CFG burns at w = 15": {"w": 15.0, "eta": 0.0, "r": 0.0, "beta": 0.0, "left": "CFG", "right": LABELS["apg"]},
    "APG with r and β (paper)": {"w": 15.0, "eta": 0.0, "r": 2.0, "beta": -0.5, "model": "Digits, tiny UNet (trained)"},
    "Adaptive guidance": {"w": 7.5, "left": "CFG", "right": LABELS["adaptive"], "model": "Digits, tiny UNet (trained)"},
})  # fmt: skip
model_label = ui.select("Model", list(MODELS), "2-D mixture (exact)", "model")
kind = MODELS[model_label]
path = ui.text("Pipeline folder", "", "path") if kind == "pipeline" else ""
left = ui.select("Left guider", list(NAMES), "CFG", "left")
right = ui.select("Right guider", list(NAMES), LABELS["apg"], "right")
w = ui.slider("Guidance scale w (paper: D_c + (w−1)·update)", 0.0, 20.0, 15.0, "w", step=0.5,
              help="The paper's w; diffusers' APG gets guidance_scale = w − 1 with use_original_formulation=True.")
eta = ui.slider("η (parallel weight)", 0.0, 1.0, 0.0, "eta", step=0.05)
r = ui.slider("Rescale r (0 = off)", 0.0, 20.0, 0.0, "r", step=0.5)
beta = ui.slider("Momentum β", -0.9, 0.9, 0.0, "beta", step=0.05)
steps = ui.slider("Steps", 4, 128, 64 if kind == "mixture" else 25, "steps")
with st.sidebar.expander("More guider settings"):
    phi = ui.slider("CFG rescale φ", 0.0, 1.0, 0.7, "phi", step=0.05, where=st)
    gamma = ui.slider("Adaptive γ̄ (cos threshold)", 0.9, 1.01, 0.999, "gamma", step=0.001, format="%.3f", where=st)
    warmup = ui.slider("Adaptive warm-up steps", 1, 20, 8, "warmup", where=st)
seed = ui.seed()


@st.cache_resource(show_spinner="Loading the model…")
def denoiser(kind: str, path: str):
    if kind == "mixture":
        return G.GaussianMixtureDenoiser()
    if kind == "empirical":
        return G.EmpiricalDigitsDenoiser()
    if kind == "unet":
        return G.digits_unet()
    if not path:
        raise ValueError("Enter the folder of a class-conditional diffusers pipeline saved with `save_pretrained`.")
    return G.load_pipeline(path)


@st.cache_resource
def classifier():
    from core import zoo

    return zoo.load("digits-classifier")


def settings(label: str) -> dict:
    return dict(name=NAMES[label], eta=eta, rescale=r, momentum=beta, guidance_rescale=phi, gamma=gamma,
                warmup_steps=warmup)  # fmt: skip


@st.cache_data(max_entries=32, show_spinner="Sampling…")
def trajectory(kind: str, path: str, guider: dict, w: float, steps: int, seed: int) -> dict:
    D = denoiser(kind, path)
    labels = G.balanced_labels(D.num_classes, PER_CLASS[kind] * min(D.num_classes, 10))
    states = list(G.sample(D, G.make_guider(w=w, **guider), labels, steps=steps, seed=seed))

    def stack(field):  # (steps, N, ...) float32 numpy; NaN where the guider skipped the uncond branch
        ref = states[0].x0_cond
        return np.stack([(getattr(s, field) if getattr(s, field) is not None else torch.full_like(ref, torch.nan))
                         .float().numpy() for s in states])  # fmt: skip

    out = {f: stack(f) for f in ("x", "x0_cond", "x0_uncond", "x0_guided", "delta_parallel", "delta_orthogonal")}
    out.update({f: np.stack([getattr(s, f).numpy() for s in states]) for f in ("norm_parallel", "norm_orthogonal", "cos")})
    out["evals"] = np.array([s.model_evals for s in states])
    out["labels"] = labels.numpy()
    clf = classifier() if kind in ("empirical", "unet") else None
    real = G.reference_samples(D, 200, seed=1)[0] if kind != "pipeline" else None  # for k-NN precision/recall
    out["metrics"] = G.evaluate(D, states[-1].x, labels, clf, real) | {"model calls": states[-1].model_evals}
    return out


def scatter_2d(run: dict, t: int, title: str) -> go.Figure:
    fig = go.Figure()
    angle = np.linspace(0, 2 * np.pi, 200)
    fig.add_scatter(x=2 * np.cos(angle), y=2 * np.sin(angle), mode="lines", line=dict(color="#bbb", dash="dot"), name="modes (r = 2)")
    for field, color, name in (("x", "#999", "sample x"), ("x0_uncond", "#1f77b4", "D_uncond"),
                               ("x0_cond", "#2ca02c", "D_cond"), ("x0_guided", "#d62728", "guided D̂")):  # fmt: skip
        p = run[field][t]
        fig.add_trace(go.Scattergl(x=p[:, 0], y=p[:, 1], mode="markers", marker=dict(size=4, color=color), name=name))
    pick = slice(0, 24)  # labels cycle through the classes: 3 arrows per mode, drawn from D_cond
    for field, color in (("delta_parallel", "#ff7f0e"), ("delta_orthogonal", "#9467bd")):
        base = run["x0_cond"][t][pick]
        tip = base + run[field][t][pick]
        xs = np.stack([base[:, 0], tip[:, 0], np.full(len(base), np.nan)], 1).ravel()
        ys = np.stack([base[:, 1], tip[:, 1], np.full(len(base), np.nan)], 1).ravel()
        fig.add_scatter(x=xs, y=ys, mode="lines", line=dict(color=color, width=2), name=field.replace("delta_", "Δ "))
    return fig.update_layout(title=title, height=430, xaxis=dict(range=[-4, 4]), yaxis=dict(range=[-4, 4], scaleanchor="x"),
                             margin=dict(l=10, r=10, t=40, b=10))  # fmt: skip


def montage(run: dict, t: int, title: str) -> go.Figure:
    cols = ["x0_cond", "x0_uncond", "x0_guided", "delta_parallel", "delta_orthogonal"]
    pick = np.unique(run["labels"], return_index=True)[1][:10]  # one sample per class, one row each
    gain = [1, 1, 1, w - 1, w - 1]  # the Δ columns show what CFG adds: (w − 1)·Δ∥ and (w − 1)·Δ⊥
    pad = lambda a: np.pad(a, 1, constant_values=np.nan)  # noqa: E731
    tile = lambda f, i: pad(run[f][t][i].reshape(-1, *run[f].shape[-2:])[0])  # first channel  # noqa: E731
    grid = np.vstack([np.hstack([k * tile(f, i) for f, k in zip(cols, gain, strict=True)]) for i in pick])
    fig = go.Figure(go.Heatmap(z=grid, zmin=-1.5, zmax=1.5, colorscale="RdBu_r", colorbar=dict(title="value")))
    fig.update_xaxes(tickvals=[5 + 10 * j for j in range(5)], ticktext=["D_cond", "D_uncond", "guided", "(w−1)Δ∥", "(w−1)Δ⊥"])
    fig.update_yaxes(autorange="reversed", showticklabels=False, scaleanchor="x")
    return fig.update_layout(title=title, height=640, margin=dict(l=10, r=10, t=40, b=10))


with ui.errors("the guided samples"):
    runs = {label: trajectory(kind, path, settings(label), w, steps, seed) for label in (left, right)}
    st.caption(f"Same seed, same start. Sampler: {denoiser(kind, path).sampler_name}. Guidance acts on the x0 prediction.")
    t = min(ui.slider("Step t (scrubber)", 0, 127, steps // 4, "t", where=st), steps - 1)
    for j, (col, (label, run)) in enumerate(zip(st.columns(2), runs.items(), strict=True)):
        with col:
            view = scatter_2d if kind == "mixture" else montage
            ui.chart(view(run, t, f"{label}, step {t}"), key=f"view-{j}", name=f"guidance-{NAMES[label]}-step{t}",
                     data={k: run[k][t] for k in ("x0_cond", "x0_guided")})  # fmt: skip
            st.dataframe(pd.DataFrame([run["metrics"]]).round(3), hide_index=True, width="stretch")
    norms = pd.DataFrame([{"guider": label, "step": i, "‖Δ∥‖": run["norm_parallel"][i].mean(), "‖Δ⊥‖": run["norm_orthogonal"][i].mean(),
                           "cos(D_c, D_u)": run["cos"][i].mean(), "model calls": run["evals"][i]}
                          for label, run in runs.items() for i in range(steps)])  # fmt: skip
    fig = go.Figure()
    for label, dash in zip(runs, ("solid", "dash"), strict=True):
        part = norms[norms.guider == label]
        for col, color in (("‖Δ∥‖", "#ff7f0e"), ("‖Δ⊥‖", "#9467bd")):
            fig.add_scatter(x=part.step, y=part[col], name=f"{col} {label}", line=dict(color=color, dash=dash))
    fig.add_vline(x=t, line_color="#888").update_layout(height=320, xaxis_title="step", yaxis_title="mean norm (x0 space)")
    ui.chart(fig, key="norms", data=norms, name="guidance-norms")
    ui.explainer("the split of the CFG update", [r"\Delta = D_c - D_u,\quad \Delta_\parallel = \frac{\langle \Delta, D_c\rangle}{\|D_c\|^2} D_c,\quad \Delta_\perp = \Delta - \Delta_\parallel",
                 r"\hat D_{\mathrm{CFG}} = D_c + (w-1)\Delta,\qquad \hat D_{\mathrm{APG}} = D_c + (w-1)(\Delta_\perp + \eta\,\Delta_\parallel)"],
                 {"w": w, "η": eta, "r": r, "β": beta, "‖Δ∥‖ at t (left)": float(runs[left]["norm_parallel"][t].mean()),
                  "‖Δ⊥‖ at t (left)": float(runs[left]["norm_orthogonal"][t].mean())},
                 "Sadat, Hilliges, Weber 2024 (arXiv:2410.02416), Algorithm 1; Δ∥ only rescales D_c about 0 (mid-grey), "
                 "which is what saturates; Δ⊥ carries class and detail. In 2-D: Δ∥ is radial, Δ⊥ tangential. APG at w=15 "
                 "with few steps can overshoot: the ODE gets stiff; add steps.")  # fmt: skip
    cos = go.Figure([go.Scatter(x=norms[norms.guider == g].step, y=norms[norms.guider == g]["cos(D_c, D_u)"], name=g) for g in runs])
    cos.add_hline(y=gamma, line_dash="dot", annotation_text="γ̄").update_layout(height=260, xaxis_title="step", yaxis_title="cos")
    ui.chart(cos, key="cos", name="guidance-cos")
    ui.explainer("adaptive guidance", r"\gamma_t = \cos(D_c, D_u);\ \text{once } \gamma_t > \bar\gamma \text{ (after the warm-up)}: \hat D = D_c",
                 {"model calls (left)": int(runs[left]["evals"][-1]), "model calls (right)": int(runs[right]["evals"][-1])},
                 "Castillo et al. 2023 (arXiv:2312.12487). At high noise D_c ≈ D_u, so a warm-up keeps AG from firing at step 0.")  # fmt: skip

st.subheader("Sweep over w: saturation and class accuracy, CFG vs APG")


def sweep_rows():
    rows = []
    apg = dict(name="apg", eta=eta, rescale=r, momentum=beta)
    for row in G.sweep(denoiser(kind, path), [1, 3, 5, 7.5, 10, 15], {"CFG": {"name": "cfg"}, "APG": apg}, n=60 if kind != "mixture" else 128,
                       steps=steps, seed=seed, classifier=classifier() if kind in ("empirical", "unet") else None):  # fmt: skip
        rows.append(row)
        yield list(rows)


with ui.errors("the w sweep"):
    rows = ui.background("guidance-sweep", (kind, path, eta, r, beta, steps, seed), sweep_rows,
                         lambda rows: (rows[-1]["progress"], f"{len(rows)} runs done"), label="Run the w sweep")  # fmt: skip
    if rows:
        table = pd.DataFrame(rows)
        metric = "mean_radius" if kind == "mixture" else "saturation"
        for y in (metric, "accuracy"):
            fig = go.Figure([go.Scatter(x=p.w, y=p[y], name=g, mode="lines+markers") for g, p in table.groupby("guider")])
            ui.chart(fig.update_layout(height=300, xaxis_title="w", yaxis_title=y), key=f"sweep-{y}", data=table, name=f"guidance-sweep-{y}")
        ui.explainer("the sweep", r"\text{saturation} = \Pr(|x| > 1.1)", None,
                     "Saturation: share of final pixel values beyond ±1.1 (data in [−1, 1], no clipping; backgrounds sit at −1). Accuracy: the "
                     "shipped digits classifier (digits) or nearest mode (2-D).")  # fmt: skip
