"""CBO lab: a gradient-free swarm on a rugged landscape, its decay rates, its weights, and the σ threshold."""

from __future__ import annotations

import numpy as np
import streamlit as st
import torch

from core import cbo, sweep
from core.cbo import figures
from core.cbo.phase import PhaseProgress
from pages import _ui as ui

PHASE_SIGMAS, PHASE_NS, PHASE = (2.0, 4.0, 6.0, 7.0, 8.0, 9.0, 10.0, 12.0), (20, 40, 80), {"runs": 10, "steps": 3000}
LIVE_STATES = 200  # states a live run holds, each cut to 300 particles × 2 coordinates (CBOState.preview): ~0.5 MB
PRESET_KEYS = ("objective", "d", "n", "sigma", "alpha", "lam", "dt", "steps", "noise")
PRESETS = {
    "CBO vs GD on GrandCanyon3noisy": ("GrandCanyon3noisy", 2, 200, 1.6, 100.0, 1.0, 0.01, 250, "isotropic"),
    "the σ threshold in d=20": ("Rastrigin", 20, 40, 5.1, 30.0, 1.0, 0.01, 3000, "anisotropic"),
    "isotropic vs anisotropic": ("Rastrigin", 16, 2000, 0.32, 1e15, 1.0, 0.01, 100, "isotropic"),
}
SWARM_TEXT = (
    "Grey lines pull each particle toward the consensus point v (red). Gradient descent (GD) and consensus hopping "
    "(CH: v of N samples around the last point, σ = 0.7) start from the first v."
)
PHASE_REF = "Anisotropic CBO, x0 ~ U[−3, 3]^d; CBXpy's success_evaluation (d = 20, N = 40: σ = 10.1 works, 5.1 fails)."

ui.header("cbo")
ui.presets({label: dict(zip(PRESET_KEYS, values, strict=True)) for label, values in PRESETS.items()})
name = ui.select("Objective", list(cbo.OBJECTIVES), "Rastrigin", "objective")
d = int(ui.number("Dimension d", 2, 1000, 2, "d", help="The swarm is drawn in (x0, x1), so d ≥ 2."))
n = int(ui.number("Particles N", 2, 2000, 200, "n"))
noise = ui.radio("Noise D(x − v)", cbo.NOISES, "anisotropic", "noise")
sigma = ui.slider("σ (noise)", 0.0, 12.0, 1.0, "sigma", step=0.01)
alpha = ui.number("α (inverse temperature)", 0.0, 1e15, 30.0, "alpha", format="%g")
lam = ui.slider("λ (drift)", 0.0, 5.0, 1.0, "lam", step=0.1)
dt = ui.select("dt", [0.001, 0.005, 0.01, 0.02, 0.05], 0.01, "dt")
steps = int(ui.slider("Steps", 10, 5000, 300, "steps"))
mode = ui.radio("Mode", {"replay": "Replay", "live": "Live"}, "replay", "mode", help="Replay in the browser, or step")
seed, device, objective = ui.seed(), ui.device(), cbo.OBJECTIVES[name]


@st.cache_data(max_entries=16, show_spinner="Running the swarm, GD and consensus hopping…")
def simulate(name: str, d: int, n: int, config: cbo.CBOConfig, steps: int, seed: int, device: str):
    f = cbo.OBJECTIVES[name]
    states = cbo.run(f, f.sample(n, d, seed=seed), config=config, steps=steps, seed=seed, device=device)
    tr = cbo.trace(states, f, f.minimiser(d), total_steps=steps, frames=60)
    if d != 2:
        return tr, {}, {}
    start = torch.as_tensor(tr.path[0], device=device)  # GD and CH start from the swarm's first consensus point
    paths = cbo.comparison_paths(f, start, alpha=config.alpha, n_particles=n, seed=seed)
    return tr, {k: p.points.cpu().numpy() for k, p in paths.items()}, {k: p.error for k, p in paths.items()}


@st.cache_data(max_entries=8)
def landscape_png(name: str) -> str:
    _, z = cbo.OBJECTIVES[name].grid(140)
    return ui.heatmap_png((z - z.min()).log1p().numpy())


def swarm_figure(x, v, path):
    background = landscape_png(name) if d == 2 else None
    x_star = objective.minimiser(d)[:2].numpy()
    return figures.swarm_figure(x, v, path, box=box, x_star=x_star, paths=paths, background=background)


def divergence_note(step: int) -> str:
    k, rate = ("d" if noise == "isotropic" else ""), cbo.decay_rate(lam, sigma, d=d, noise=noise)
    return (
        f"The swarm diverged at step {step}: with {noise} noise the spread changes like e^(−(2λ − {k}σ²)t), and "
        f"2λ − {k}σ² = {rate:.3g} < 0. Isotropic noise scales with ‖x − v‖ in every one of the d coordinates, so it "
        "diverges when 2λ < dσ²; anisotropic noise (per coordinate) does not pay the factor d."
    )


def render(states: list) -> None:
    """The live run so far (states reduced by CBOState.preview)."""
    if not states:
        return st.info("Press Play or Step to start the swarm.")
    path = np.stack([s.consensus.numpy() for s in states])
    data = {"step": [s.step for s in states], "consensus": path}
    ui.chart(swarm_figure(states[-1].x.numpy(), path[-1], path), "cbo-live", data=data)
    if states[-1].diverged:
        st.error(divergence_note(states[-1].step))


with ui.errors("the CBO run"):
    config = cbo.CBOConfig(alpha=alpha, lam=lam, sigma=sigma, dt=dt, noise=noise)
    tr, paths, path_errors = simulate(name, d, n, config, steps, seed, str(device))
    if tr.diverged:
        st.error(divergence_note(int(tr.step[-1])), icon=":material/warning:")
    box = list(objective.box) if d == 2 else [float(np.nanmin(tr.frame_x)), float(np.nanmax(tr.frame_x))]
    st.subheader("The swarm on the landscape" if d == 2 else f"2-D projection (x0, x1) of the swarm in d = {d}")
    if mode == "replay":
        fig = ui.animate(swarm_figure(tr.frame_x[-1], tr.path[-1], tr.path), figures.replay_frames(tr))
        ui.chart(fig, "cbo-swarm", data={"frame_step": tr.frame_step, "path": tr.path})
    else:
        x0, every = objective.sample(n, d, seed=seed), max(1, steps // LIVE_STATES)
        live = {"config": config, "steps": steps, "every": every, "seed": seed, "device": device}
        held = {"max_states": LIVE_STATES + 2, "keep": lambda state: state.preview(figures.MAX_LINES)}
        ui.Player(
            "cbo-live", lambda: cbo.run(objective, x0, **live), (name, d, n, config, steps, seed), render, **held
        ).show()
    errors = {"CBO ‖v − x*‖∞": float(tr.error[-1])} | {f"{k} ‖x − x*‖∞": e for k, e in path_errors.items()}
    ui.metrics(errors | {"f(v) final": float(tr.f_consensus[-1])})
    refs = "Pinnau et al. 2017 (arXiv:1604.05648); GD and CH paths: Riedl et al. 2023, Fig. 2."
    ui.explainer("the swarm", cbo.FORMULAS["swarm"], errors | {"diverged": tr.diverged}, refs, text=SWARM_TEXT)

    left, right = st.columns(2)
    with left:
        st.subheader("Decay of V(t)")
        rates = {kind: cbo.decay_rate(lam, sigma, d=d, noise=kind) for kind in cbo.NOISES}
        ui.chart(figures.decay_figure(tr, rates), "cbo-decay", data={"t": tr.time, "V": tr.V, "error_inf": tr.error})
        refs = "Fornasier, Klock, Riedl 2021 (arXiv:2103.15130); mean-field rates hold for large N and α."
        values = {"2λ − dσ²": rates["isotropic"], "2λ − σ²": rates["anisotropic"]}
        ui.explainer("the decay rates", cbo.FORMULAS["decay"], values, refs)
        if d > 2:
            data = {"step": tr.step, "error_inf": tr.error, "f_v": tr.f_consensus}
            ui.chart(figures.error_figure(tr), "cbo-error", data=data)
    with right:
        st.subheader("What α does: the weights")
        k = ui.slider("Inspect frame", 0, len(tr.frame_step) - 1, 0, "frame", where=st)
        w = cbo.consensus_weights(torch.tensor(tr.frame_energy[k], dtype=torch.float64), float(tr.frame_alpha[k]))
        ess = float(cbo.effective_sample_size(w))
        st.metric(f"Effective sample size at step {tr.frame_step[k]}", f"{ess:.1f} of {len(w)}")
        ui.chart(figures.weights_figure(w.numpy()), "cbo-weights", data={"weight": w.numpy()})
        refs = "Laplace principle: α → ∞ puts all weight on the best particle."
        ui.explainer("the weights", cbo.FORMULAS["weights"], {"α": float(tr.frame_alpha[k]), "ESS": ess}, refs)

st.subheader("The σ threshold: success rate over (σ, N) on Rastrigin")
phase_d = int(ui.number("Phase diagram: d", 2, 40, 20, "phase_d"))
with ui.errors("the phase diagram"):
    fixed = {"objective": cbo.OBJECTIVES["Rastrigin"], "d": phase_d, "seed": seed, "device": device} | PHASE
    axes = {"config": [cbo.CBOConfig(alpha=30.0, sigma=s) for s in PHASE_SIGMAS], "n_particles": PHASE_NS}
    progress = lambda p: (p.fraction, f"{p.step} of {p.total} cells ({PHASE['runs']} runs each)")  # noqa: E731
    grid = lambda: sweep.grid(cbo.success_rates, axes, fixed=fixed)  # noqa: E731
    label, view = "Compute the phase diagram (about 30 s)", {"phase_d": phase_d, "seed": seed, "device": str(device)}
    done = ui.stored("cbo-phase", "cbo", view, grid, progress, sweep.SweepProgress, label=label)
    if done is not None:
        success, diverged = (torch.from_numpy(done.table(i)).float() for i in (0, 1))
        phase = PhaseProgress(done.step, done.total, PHASE_SIGMAS, PHASE_NS, success, diverged)
        data = {"sigma": phase.sigmas, "N": phase.ns, "success": phase.success.numpy()}
        ui.chart(figures.phase_figure(phase), "cbo-phase", data=data)
ui.explainer("the phase diagram", cbo.FORMULAS["phase"], PHASE | {"α": 30.0}, PHASE_REF)
