"""Loss landscapes: the surface along random or Hessian axes, the Hessian spectrum and LLA's criteria."""

from __future__ import annotations

import hashlib

import numpy as np
import plotly.graph_objects as go
import streamlit as st
import torch.nn.functional as F
from plotly.subplots import make_subplots

from core import landscape as ll
from core import zoo
from core.landscape.models import CHECKPOINTS, digits_batch, training_trajectory
from pages import _ui as ui

ui.header("landscape")
MODELS = [*CHECKPOINTS, "digits-mlp-sharp", "digits-mlp-flat"] + (["shapes-cnn"] if (zoo.ASSETS / "shapes-cnn.json").exists() else [])
AXES = ["random (filter-normalized)", "Hessian (λmax, λmin)", "Hessian pair (i, j)"]
ui.presets({
    "Sharp vs flat": {"model": "digits-mlp-sharp", "compare": "digits-mlp-flat", "axes": AXES[0]},
    "Saddles early in training": {"model": "digits-mlp-early", "compare": "none", "axes": AXES[1]},
    "Init vs converged": {"model": "digits-mlp-init", "compare": "digits-mlp-converged", "axes": AXES[0]},
})
name = ui.select("Model", MODELS, "digits-mlp-converged", key="model")
compare = ui.select("Compare with (same axes recipe, same z scale)", ["none", *MODELS], "none", key="compare")
axes = ui.select("Axes", AXES, AXES[0], key="axes")
i, j = (ui.number("i (1 = largest λ)", 1, 10, 1, key="i"), ui.number("j", 1, 10, 2, key="j")) if axes == AXES[2] else (1, 2)
view = ui.radio("View", ["2-D surface", "1-D slices"], "2-D surface", key="view")
n = ui.slider("Resolution (points per side)", 11, 101, 41, key="n", step=2)
extent = ui.slider("Extent (a, b ∈ [−extent, extent])", 0.1, 5.0, 1.0, key="extent", step=0.1)
bn = ui.radio("BatchNorm statistics", ["eval", "batch"], "eval", key="bn", help="running statistics, or this batch's")
log_z = ui.toggle("Log scale (log₁₀ loss)", False, key="log")
k = ui.slider("Top-k eigenvalues", 1, 20, 5, key="k")
up_bytes = ui.upload(f"Your weights for `{name}` (.safetensors)", ["safetensors"], "weights", max_mb=50) or b""
seed = ui.seed()
up_key = hashlib.sha256(up_bytes).hexdigest()[:16] if up_bytes else ""


@st.cache_resource(max_entries=8)
def setup(model_name: str, upload_key: str, bn: str, _upload: bytes = b""):
    model = zoo.load_state_dict_bytes(model_name, _upload) if _upload else zoo.load(model_name)
    if model_name.startswith("digits"):
        batch = digits_batch("train")
    else:  # the CF-CAM lab's shapes; a fixed held-out batch (seeds ≥ 1e6 are never trained on)
        from core.data.shapes import make_shapes

        batch = make_shapes(16, seed=1_000_000)[:2]  # 16 images: a 41×41 grid of CNN forwards takes ~20 s on a CPU
    return ll.loss_fn_for(model, batch, F.cross_entropy, bn=bn), ll.params_of(model)


@st.cache_data(max_entries=16, show_spinner="Finding the axes…")
def directions(model_name: str, upload_key: str, bn: str, axes: str, i: int, j: int, seed: int, _upload: bytes = b""):
    loss_fn, params = setup(model_name, upload_key, bn, _upload)
    if axes == AXES[0]:
        return (*ll.random_directions(params, "filter", seed), "filter-normalized random (Gaussian, Gram–Schmidt)")
    if axes == AXES[1]:
        top, low = (ll.eigenpairs(loss_fn, params, 1, w, seed=seed) for w in ("LA", "SA"))
        label = f"unit eigenvectors of λmax = {float(top.eigenvalues[0]):.4g}, λmin = {float(low.eigenvalues[0]):.4g}"
        return top.eigenvectors[0], low.eigenvectors[0], label
    pairs = ll.eigenpairs(loss_fn, params, max(i, j), "LA", seed=seed)
    lam = pairs.eigenvalues.tolist()
    return pairs.eigenvectors[i - 1], pairs.eigenvectors[j - 1], f"unit eigenvectors λ{i} = {lam[i - 1]:.4g}, λ{j} = {lam[j - 1]:.4g}"


@st.cache_data(max_entries=32, show_spinner=False)
def grid(model_name, upload_key, bn, axes, i, j, seed, n, extent, one_d, _upload: bytes = b""):
    loss_fn, params = setup(model_name, upload_key, bn, _upload)
    d1, d2, _ = directions(model_name, upload_key, bn, axes, i, j, seed, _upload)
    if one_d:
        return [ll.surface(loss_fn, params, d, None, extent, n).loss.double().numpy() for d in (d1, d2)]
    return ll.surface(loss_fn, params, d1, d2, extent, n).loss.double().numpy()


@st.cache_data(max_entries=16, show_spinner="Lanczos, SLQ and Hutch++ on the Hessian…")
def spectrum(model_name: str, upload_key: str, bn: str, k: int, seed: int, _upload: bytes = b""):
    loss_fn, params = setup(model_name, upload_key, bn, _upload)
    top = ll.eigenpairs(loss_fn, params, k, "LA", seed=seed)
    size = sum(v.numel() for v in params.values())
    runs, m = (4, min(80, size)) if size < 20_000 else (2, 40)  # the 98k-parameter CNN: ~2 s instead of ~15 s
    slq = ll.spectral_density(loss_fn, params, n_runs=runs, m=m, seed=seed)
    trace = ll.hessian_trace(loss_fn, params, 60, seed, method="hutch++")
    layers = ll.layer_spectra(loss_fn, params, n_probes=20, seed=seed)
    return {"top": top.eigenvalues.tolist(), "hvps": top.num_hvps, "grid": slq.grid.numpy(), "density": slq.density.numpy(),
            "criteria": ll.criteria(slq.nodes, slq.weights), "trace": trace, "layers": layers, "slq": f"{runs} runs × {m}"}


@st.cache_resource(show_spinner="Replaying the SGD run…")
def sgd_path():
    return training_trajectory(every=20)  # the init/early/converged run, replayed bit-exactly in ~2 s


@st.cache_data(show_spinner=False)
def path_coords(model_name: str, bn: str, axes: str, i: int, j: int, seed: int):
    _, params = setup(model_name, "", bn)
    d1, d2, _ = directions(model_name, "", bn, axes, i, j, seed)
    return ll.project(sgd_path(), params, d1, d2).numpy()


def z(loss):
    return np.log10(np.maximum(loss, 1e-12)) if log_z else loss


names = [name] + ([compare] if compare != "none" else [])
show_path = name in CHECKPOINTS and not up_key and view == "2-D surface"
with ui.errors("the loss surface"):
    plot = st.empty()
    coords = np.linspace(-extent, extent, n)
    for res in dict.fromkeys((min(11, n), n)):  # coarse first, then refined (each cached)
        data = {m: grid(m, up_key if m == name else "", bn, axes, i, j, seed, res, extent, view != "2-D surface",
                        up_bytes if m == name else b"") for m in names}
        c = np.linspace(-extent, extent, res)
        label = directions(name, up_key, bn, axes, i, j, seed, up_bytes)[2]
        title = f"{' vs '.join(names)} · axes: {label} · {res}×{res if view == '2-D surface' else 1} grid · z: {'log₁₀ ' if log_z else ''}loss"
        if view == "2-D surface":
            lo, hi = min(z(v).min() for v in data.values()), max(z(v).max() for v in data.values())
            fig = make_subplots(rows=len(names), cols=2, specs=[[{"type": "scene"}, {"type": "xy"}]] * len(names),
                                subplot_titles=[t for m in names for t in (f"{m}: surface", f"{m}: contour (a → x, b → y)")])
            for r, m in enumerate(names, start=1):
                zz = z(data[m]).T  # plotly wants z[y][x]; ours is loss[a][b]
                fig.add_trace(go.Surface(x=c, y=c, z=zz, cmin=lo, cmax=hi, colorscale="Viridis", showscale=r == 1), r, 1)
                fig.add_trace(go.Contour(x=c, y=c, z=zz, zmin=lo, zmax=hi, colorscale="Viridis", showscale=False, ncontours=30), r, 2)
                fig.add_trace(go.Scatter(x=[0], y=[0], mode="markers", marker={"symbol": "x", "color": "red"}, name=f"θ {m}"), r, 2)
            if show_path:
                p = path_coords(name, bn, axes, i, j, seed)
                fig.add_trace(go.Scatter(x=p[:, 0], y=p[:, 1], mode="lines+markers", marker={"size": 3}, name="SGD path (projected)"), 1, 2)
                fig.update_xaxes(range=[-extent, extent], row=1, col=2)
                fig.update_yaxes(range=[-extent, extent], row=1, col=2)
            fig.update_layout(height=480 * len(names), title=title, margin={"t": 80, "b": 60},
                              legend={"orientation": "h", "y": -0.08, "x": 0.5, "xanchor": "center"})
        else:
            fig = go.Figure([go.Scatter(x=c, y=z(v[t]), name=f"{m} along d{t + 1}") for m, v in data.items() for t in (0, 1)])
            fig.update_layout(title=title, xaxis_title="step along the direction", yaxis_title=("log₁₀ " if log_z else "") + "loss")
        with plot.container():
            ui.chart(fig, f"surface-{res}", data={"coordinate": coords.tolist(), "name": name}, name="landscape-surface")
    ui.explainer(
        "the loss surface",
        r"L(a, b) = L(\theta + a\,d_1 + b\,d_2),\quad a, b \in \mathrm{linspace}(-r, r, n)",
        {"extent r": extent, "resolution n": n, "directions": label, "BatchNorm": bn},
        "Li et al., Visualizing the Loss Landscape of Neural Nets, arXiv:1712.09913; LLA, arXiv:2412.10146",
        text="Every point is the exact loss at those coordinates (no in-place walk). Filter-normalized axes make "
        "surfaces of different networks comparable; Hessian axes show the sharpest curvature (λmax) against "
        "the most negative one (λmin): a saddle is a surface that curves down along λmin. The red line is "
        "SGD's path from initialization, projected onto this plane.",
    )

with ui.errors("the Hessian spectrum"):
    spec = {m: spectrum(m, up_key if m == name else "", bn, k, seed, up_bytes if m == name else b"") for m in names}
    left, right = st.columns(2)
    dens = go.Figure([go.Scatter(x=s["grid"], y=np.maximum(s["density"], 1e-12), name=m) for m, s in spec.items()])
    dens.update_layout(title=f"Eigenvalue density (SLQ, {spec[name]['slq']} Lanczos steps)", yaxis_type="log", xaxis_title="λ")
    ui.chart(dens, "density", data={m: {"grid": s["grid"], "density": s["density"]} for m, s in spec.items()}, where=left)
    tops = go.Figure([go.Bar(x=list(range(1, k + 1)), y=s["top"], name=m) for m, s in spec.items()])
    tops.update_layout(title=f"Top-{k} eigenvalues (Lanczos, {spec[name]['hvps']} HVPs)", xaxis_title="i", yaxis_title="λᵢ")
    ui.chart(tops, "top-k", data={m: s["top"] for m, s in spec.items()}, where=right)
    layers = go.Figure([go.Bar(x=[s.name for s in v["layers"]], y=[s.lambda_max for s in v["layers"]], name=f"{m} λmax") for m, v in spec.items()])
    layers.update_layout(title="Per-layer λmax (diagonal Hessian blocks)", yaxis_type="log")
    ui.chart(layers, "layers", data={m: [vars(s) for s in v["layers"]] for m, v in spec.items()}, where=left)
    with right:
        for m, s in spec.items():
            a, b, cc = st.columns(3)
            a.metric(f"tr H ({m})", f"{s['trace'].trace:.4g}", f"± {s['trace'].stderr:.2g} (Hutch++)", delta_color="off")
            b.metric("re = |λmin/λmax|", f"{s['criteria']['re']:.3g}")
            cc.metric("Kh₀.₅", f"{s['criteria']['kh']:.3g}")
    ui.explainer(
        "the spectrum and LLA's criteria",
        [r"re = \left|\min_k \theta_k / \max_k \theta_k\right|", r"Kh_n = \frac{\sum_{\theta_k<0}(|\theta_k|\tau_k)^n}{\sum_{\theta_k>0}(\theta_k\tau_k)^n}"],
        {f"{m} {q}": v for m, s in spec.items() for q, v in s["criteria"].items()},
        "Gabdullin et al., arXiv:2412.10146; caveat: arXiv:2504.17618",
        text="A well-trained network sits in a basin: almost all curvature is positive, so re and Kh are near 0. "
        "Large values mean strong negative curvature (a saddle or an unconverged model); the paper links them "
        "to worse generalization. A larger λmax or trace means a sharper minimum. The criteria only make sense "
        "for mainly positive spectra.",
    )
