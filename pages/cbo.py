"""CBO lab: a gradient-free swarm on a rugged landscape, its decay rates, its weights, and the σ threshold."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import streamlit as st
import torch

from core import cbo
from pages import _ui as ui

PHASE_SIGMAS, PHASE_NS = (2.0, 4.0, 6.0, 7.0, 8.0, 9.0, 10.0, 12.0), (20, 40, 80)
MAX_LINES = 300  # particle-to-consensus lines drawn (all particles are drawn as points)

ui.header("cbo")
ui.presets({
    "CBO vs GD on GrandCanyon3noisy": {"objective": "GrandCanyon3noisy", "d": 2, "n": 200, "sigma": 1.6, "alpha": 100.0,
                                       "lam": 1.0, "dt": 0.01, "steps": 250, "noise": "isotropic"},
    "the σ threshold in d=20": {"objective": "Rastrigin", "d": 20, "n": 40, "sigma": 5.1, "alpha": 30.0, "lam": 1.0,
                               "dt": 0.01, "steps": 3000, "noise": "anisotropic"},
    "isotropic vs anisotropic": {"objective": "Rastrigin", "d": 16, "n": 2000, "sigma": 0.32, "alpha": 1e15, "lam": 1.0,
                                 "dt": 0.01, "steps": 100, "noise": "isotropic"},
})  # fmt: skip
name = ui.select("Objective", list(cbo.OBJECTIVES), "Rastrigin", "objective")
d = int(ui.number("Dimension d", 1, 1000, 2, "d"))
n = int(ui.number("Particles N", 2, 5000, 200, "n"))
noise = ui.radio("Noise D(x − v)", ["anisotropic", "isotropic"], "anisotropic", "noise")
sigma = ui.slider("σ (noise)", 0.0, 12.0, 1.0, "sigma", step=0.01)
alpha = ui.number("α (inverse temperature)", 0.0, 1e15, 30.0, "alpha", format="%g")
lam = ui.slider("λ (drift)", 0.0, 5.0, 1.0, "lam", step=0.1)
dt = ui.select("dt", [0.001, 0.005, 0.01, 0.02, 0.05], 0.01, "dt")
steps = int(ui.slider("Steps", 10, 5000, 300, "steps"))
mode = ui.radio("Mode", ["Replay", "Live"], "Replay", "mode", help="Replay: the browser plays precomputed frames. Live: step the run on the server.")
seed = ui.seed()
objective = cbo.OBJECTIVES[name]


@st.cache_data(max_entries=16, show_spinner="Running the swarm, GD and consensus hopping…")
def simulate(name: str, d: int, n: int, sigma: float, alpha: float, lam: float, dt: float, steps: int, noise: str, seed: int):
    f = cbo.OBJECTIVES[name]
    x0 = f.sample(n, d, seed=seed)
    states = cbo.run(f, x0, alpha=alpha, lam=lam, sigma=sigma, dt=dt, steps=steps, noise=noise, seed=seed)
    tr = cbo.trace(states, f, f.minimiser(d), total_steps=steps, frames=60)
    paths = {}
    if d == 2:  # GD and CH from the swarm's first consensus point (dt = 2e-3 keeps GD stable on Rastrigin)
        start = cbo.consensus(x0, f(x0), alpha).double()
        gd = cbo.gradient_descent(f, start[None], dt=2e-3, steps=1000, every=5)
        paths["GD"] = np.stack([s.x[0].numpy() for s in gd])
        ch = cbo.consensus_hopping(f, start, alpha=alpha, sigma=0.7, n_particles=n, steps=100, seed=seed)
        paths["CH"] = np.stack([s.consensus.numpy() for s in ch])
    return tr, paths


@st.cache_data(max_entries=8)
def landscape(name: str):
    lo, hi = cbo.OBJECTIVES[name].box
    g = np.linspace(lo, hi, 140)
    xx, yy = np.meshgrid(g, g)
    z = cbo.OBJECTIVES[name](torch.tensor(np.stack([xx, yy], -1), dtype=torch.float64)).numpy()
    return g, z


@st.cache_data(max_entries=8)
def landscape_png(name: str) -> str:
    _, z = landscape(name)
    return ui.heatmap_png(np.log1p(z - z.min()))


def swarm_traces(x, v, path):
    """Lines to the consensus point, the particles, the consensus path so far, the consensus point."""
    m = min(len(x), MAX_LINES)
    lines = np.full((3 * m, 2), np.nan)
    lines[0::3], lines[1::3] = x[:m], v
    return [
        go.Scattergl(x=lines[:, 0], y=lines[:, 1], mode="lines", line={"width": 0.5, "color": "rgba(80,80,80,0.35)"}, name="to consensus"),
        go.Scattergl(x=x[:, 0], y=x[:, 1], mode="markers", marker={"size": 4, "color": "#1f77b4"}, name="particles"),
        go.Scatter(x=path[:, 0], y=path[:, 1], mode="lines", line={"color": "#d62728", "width": 2}, name="consensus path"),
        go.Scatter(x=[v[0]], y=[v[1]], mode="markers", marker={"size": 12, "color": "#d62728", "symbol": "x"}, name="consensus v"),
    ]


def swarm_figure(x, v, path, paths, box, dims):
    fig = go.Figure(go.Scatter(x=[], y=[], showlegend=False))  # trace 0: keeps frame trace indices fixed
    if d == 2:
        # the landscape as a picture, not a trace: every replay frame redraws all traces (a heatmap cost ~25% fps)
        fig.add_layout_image(source=landscape_png(name), xref="x", yref="y", x=box[0], y=box[1], sizex=box[1] - box[0],
                             sizey=box[1] - box[0], sizing="stretch", layer="below")  # fmt: skip
    fig.add_traces(swarm_traces(x, v, path))
    for label, p in paths.items():
        fig.add_trace(go.Scatter(x=p[:, 0], y=p[:, 1], mode="lines+markers", marker={"size": 3}, name=f"{label} path"))
    xs = objective.minimiser(2 if d == 2 else d).numpy()[list(dims)]
    fig.add_trace(go.Scatter(x=[xs[0]], y=[xs[1]], mode="markers", marker={"symbol": "star", "size": 14, "color": "gold"}, name="x*"))
    fig.update_xaxes(range=box, title=f"x{dims[0]}")
    fig.update_yaxes(range=box, title=f"x{dims[1]}", scaleanchor="x")
    fig.update_layout(height=560, margin={"t": 30}, legend={"orientation": "h", "y": 1.08})
    return fig


with ui.errors("the CBO run"):
    tr, paths = simulate(name, d, n, float(sigma), float(alpha), float(lam), float(dt), steps, noise, seed)
    rate = cbo.decay_rate(lam, sigma, d, noise)
    if tr.diverged:
        st.error(f"The swarm diverged at step {tr.step[-1]}: with {noise} noise the spread changes like "
                 f"e^(−(2λ − {'d' if noise == 'isotropic' else ''}σ²)t) and 2λ − {'dσ²' if noise == 'isotropic' else 'σ²'} = {rate:.3g} < 0. "
                 "Isotropic noise scales with ‖x − v‖ in every one of the d coordinates, so it diverges when 2λ < dσ²; "
                 "anisotropic noise (per coordinate) does not pay the factor d.", icon=":material/warning:")  # fmt: skip
    box = list(objective.box) if d == 2 else [float(np.nanmin(tr.frame_x)), float(np.nanmax(tr.frame_x))]
    title = "The swarm on the landscape" if d == 2 else f"2-D projection (x0, x1) of the swarm in d = {d}"
    st.subheader(title)
    if mode == "Replay":
        fig = swarm_figure(tr.frame_x[0], tr.path[0], tr.path[:1], paths, box, tr.dims)
        frames = [go.Frame(data=swarm_traces(x, tr.path[s], tr.path[: s + 1]), traces=[1, 2, 3, 4], name=str(s))
                  for x, s in zip(tr.frame_x, tr.frame_step, strict=True)]  # fmt: skip
        ui.chart(ui.animate(fig, frames, duration_ms=50), "cbo-swarm", data={"frame_step": tr.frame_step, "path": tr.path}, name="cbo-swarm")
    else:
        x0 = objective.sample(n, d, seed=seed)

        def render(states):
            if not states:
                st.info("Press Play or Step to start the swarm.")
                return
            s = states[-1]
            path = np.stack([t.consensus[:2].numpy() for t in states])
            st.plotly_chart(swarm_figure(s.x[:, :2].numpy(), s.consensus[:2].numpy(), path, paths, box, (0, 1)), key="cbo-live-fig")
            if s.diverged:
                st.error(f"Diverged at step {s.step} (2λ − {'d' if noise == 'isotropic' else ''}σ² = {rate:.3g}).")

        every = max(1, steps // 200)  # at most ~200 live states held in the session
        ui.Player("cbo-live", lambda: cbo.run(objective, x0, alpha=alpha, lam=lam, sigma=sigma, dt=dt, steps=steps, noise=noise,
                                              seed=seed, every=every),
                  (name, d, n, sigma, alpha, lam, dt, steps, noise, seed), render, max_states=202).show()  # fmt: skip
    ui.explainer("the swarm", [r"v_\alpha = \frac{\sum_i x_i e^{-\alpha f(x_i)}}{\sum_i e^{-\alpha f(x_i)}}",
                 r"x_i \leftarrow x_i - \lambda\,dt\,(x_i - v_\alpha) + \sigma\sqrt{dt}\,D(x_i - v_\alpha)\,\xi_i"],
                 {"final ‖v − x*‖∞": float(tr.error[-1]), "f(v) final": float(tr.f_consensus[-1]), "diverged": tr.diverged},
                 "Pinnau et al. 2017 (arXiv:1604.05648); GD and CH paths: Riedl et al. 2023, Fig. 2.",
                 text="Grey lines pull each particle toward the consensus point v (red). Gradient descent (GD) and consensus "
                      "hopping (CH: v of N samples around the last point, σ = 0.7) start from the first consensus point.")  # fmt: skip

    left, right = st.columns(2)
    with left:
        st.subheader("Decay of V(t)")
        fig = go.Figure(go.Scatter(x=tr.time, y=tr.V, name="V(t) = ½ mean‖xᵢ − x*‖²"))
        for kind in ("anisotropic", "isotropic"):
            r = cbo.decay_rate(lam, sigma, d, kind)
            growth = np.exp(np.minimum(-r * tr.time, 600.0))  # a diverging rate would overflow; the y range clips it
            fig.add_trace(go.Scatter(x=tr.time, y=tr.V[0] * growth, line={"dash": "dash"}, name=f"theory {kind}: rate {r:.3g}"))
        fig.update_yaxes(type="log", range=[np.log10(max(tr.V.min(), 1e-12)) - 0.5, np.log10(tr.V.max()) + 0.5])
        fig.update_layout(xaxis_title="t", height=380, legend={"orientation": "h", "y": -0.25})
        ui.chart(fig, "cbo-decay", data={"t": tr.time, "V": tr.V, "error_inf": tr.error}, name="cbo-decay")
        ui.explainer("the decay rates", [r"\tfrac12\mathbb E\|X_t - x^*\|^2 \sim e^{-(2\lambda - d\sigma^2)t}\ \text{(isotropic)}",
                     r"\tfrac12\mathbb E\|X_t - x^*\|^2 \sim e^{-(2\lambda - \sigma^2)t}\ \text{(anisotropic)}"],
                     {"2λ − dσ²": cbo.decay_rate(lam, sigma, d, "isotropic"), "2λ − σ²": cbo.decay_rate(lam, sigma, d, "anisotropic")},
                     "Fornasier, Klock, Riedl 2021 (arXiv:2103.15130); mean-field rates hold for large N and α.")  # fmt: skip
        if d > 2:
            fig = go.Figure(go.Scatter(x=tr.step, y=tr.error, name="‖v − x*‖∞"))
            fig.add_hline(y=0.25, line_dash="dot", annotation_text="success threshold 0.25")
            fig.update_yaxes(type="log")
            fig.update_layout(xaxis_title="step", height=300, title="Error of the consensus point")
            ui.chart(fig, "cbo-error", data={"step": tr.step, "error_inf": tr.error, "f_v": tr.f_consensus})
    with right:
        st.subheader("What α does: the weights")
        k = ui.slider("Inspect frame", 0, len(tr.frame_step) - 1, 0, "frame", where=st)
        w = cbo.consensus_weights(torch.tensor(tr.frame_energy[k], dtype=torch.float64), float(tr.frame_alpha[k]))
        ess = float(cbo.effective_sample_size(w))
        st.metric(f"Effective sample size at step {tr.frame_step[k]}", f"{ess:.1f} of {len(w)}")
        fig = go.Figure(go.Histogram(x=np.log10(w.clamp_min(1e-300).numpy()), nbinsx=60))
        fig.update_layout(xaxis_title="log10 weight", yaxis_title="particles", height=300)
        ui.chart(fig, "cbo-weights", data={"weight": w.numpy()})
        ui.explainer("the weights", [r"w_i = \frac{e^{-\alpha (f_i - \min f)}}{\sum_j e^{-\alpha (f_j - \min f)}}", r"\mathrm{ESS} = 1 / \textstyle\sum_i w_i^2"],
                     {"α": float(tr.frame_alpha[k]), "ESS": ess}, "Laplace principle: α → ∞ puts all weight on the best particle.")  # fmt: skip

st.subheader("The σ threshold: success rate over (σ, N) on Rastrigin")
phase_d = int(ui.number("Phase diagram: d", 2, 40, 20, "phase_d"))
cfg = {"d": phase_d, "runs": 10, "steps": 3000, "alpha": 30.0, "dt": 0.01, "noise": "anisotropic", "seed": seed}
with ui.errors("the phase diagram"):
    phase = ui.background("cbo-phase", tuple(cfg.items()), lambda: cbo.success_rate_grid(PHASE_SIGMAS, PHASE_NS, **cfg),
                          lambda p: (p.fraction, f"{p.done} of {p.total} cells ({cfg['runs']} runs each)"),
                          label="Compute the phase diagram (about 30 s)")  # fmt: skip
    if phase is not None:
        fig = go.Figure(go.Heatmap(x=[str(v) for v in phase.ns], y=[str(s) for s in phase.sigmas], z=phase.success.numpy(),
                                   zmin=0, zmax=1, colorscale="RdYlGn", text=np.round(phase.success.numpy(), 2), texttemplate="%{text}"))  # fmt: skip
        fig.update_layout(xaxis_title="N particles", yaxis_title="σ", height=380)
        ui.chart(fig, "cbo-phase", data={"sigma": phase.sigmas, "N": phase.ns, "success": phase.success.numpy()})
ui.explainer("the phase diagram", r"\text{success} \iff \|v_\alpha - x^*\|_\infty < 0.25",
             {"runs per cell": cfg["runs"], "steps": cfg["steps"], "α": cfg["alpha"]},
             "Anisotropic CBO, x0 ~ U[−3, 3]^d; CBXpy success_evaluation setup (Rastrigin d = 20, N = 40: σ = 10.1 succeeds, σ = 5.1 fails).")  # fmt: skip
