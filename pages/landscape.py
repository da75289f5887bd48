"""Loss landscapes: the surface along random or Hessian axes, the Hessian spectrum and LLA's criteria."""

from __future__ import annotations

import numpy as np
import streamlit as st

from core import landscape as ll
from core.landscape import models as lab
from pages import _landscape_charts as charts
from pages import _landscape_shipped as shipped
from pages import _ui as ui

ui.header("landscape")
AXES = {"random": "random (filter-normalized)", "hessian": "Hessian (λmax, λmin)", "pair": "Hessian pair (i, j)"}
VIEWS = {"surface": "2-D surface", "slices": "1-D slices"}
PRESETS = {  # (model, compare, axes)
    "Sharp vs flat": ("digits-mlp-sharp", "digits-mlp-flat", "random"),
    "Saddles early in training": ("digits-mlp-early", "none", "hessian"),
    "Init vs converged": ("digits-mlp-init", "digits-mlp-converged", "random"),
}
ui.presets({label: dict(zip(("model", "compare", "axes"), values, strict=True)) for label, values in PRESETS.items()})
name = ui.select("Model", lab.MODELS, "digits-mlp-converged", key="model")
compare = ui.select("Compare with (same axes recipe, same z scale)", ["none", *lab.MODELS], "none", key="compare")
axes = ui.select("Axes", AXES, "random", key="axes")
i = ui.number("i (1 = largest λ)", 1, 10, 1, key="i") if axes == "pair" else 1
j = ui.number("j", 1, 10, 2, key="j") if axes == "pair" else 2
view = ui.radio("View", VIEWS, "surface", key="view")
n = ui.slider("Resolution (points per side)", 11, 101, 41, key="n", step=2)
extent = ui.slider("Extent (a, b ∈ [−extent, extent])", 0.1, 5.0, 1.0, key="extent", step=0.1)
bn = ui.radio("BatchNorm statistics", ["eval", "batch"], "eval", key="bn", help="running statistics, or this batch's")
log_z = ui.toggle("Log scale (log₁₀ loss)", False, key="log")
ZLABEL = "log₁₀ " if log_z else ""
k = ui.slider("Top-k eigenvalues", 1, 20, 5, key="k")
limit_mb = lab.upload_limit(name) / 2**20  # 1.1 × the model's weights
upload = ui.upload(f"Your weights for `{name}` (.safetensors)", ["safetensors"], "weights", max_mb=limit_mb)
seed, DEVICE = ui.seed(), ui.device()
# A cache key per uploaded file (its random id, never re-hashed on a rerun): (model, upload id, BatchNorm policy).
source = (name, st.session_state["weights"].file_id if upload else "", bn)
shown = {"model": name, "axes": axes, "i": i, "j": j, "seed": seed, "n": n, "extent": extent, "bn": bn, "k": k}
SHIPPED = shipped.load() if not upload and view == "surface" and shipped.serves(shown) else None


@st.cache_resource(max_entries=8)  # shared by every session: core's loss closure is thread-safe
def setup(source: tuple, _upload: bytes | None = None):
    model = lab.load_upload(source[0], _upload, device=DEVICE) if _upload else ui.zoo_model(source[0])
    inputs, target = lab.batch_for(source[0])
    return ll.loss_fn_for(model, inputs.to(DEVICE), target.to(DEVICE), bn=source[2]), ll.params_of(model)


@st.cache_data(max_entries=16, show_spinner="Finding the axes…")
def plane(source: tuple, axes: str, i: int, j: int, seed: int, _upload: bytes | None = None):
    return ll.plane(*setup(source, _upload), axes=axes, i=i, j=j, seed=seed)


@st.cache_data(max_entries=32, show_spinner=False)
def grid(source: tuple, axes: str, i: int, j: int, seed: int, res: int, extent: float, one_d: bool, _upload=None):
    (loss_fn, params), p = setup(source, _upload), plane(source, axes, i, j, seed, _upload)
    planes = [(p.d1,), (p.d2,)] if one_d else [(p.d1, p.d2)]
    losses = [ll.surface(loss_fn, params, d, extent=extent, n=res).loss.double().cpu().numpy() for d in planes]
    return losses if one_d else losses[0]


@st.cache_data(max_entries=16, show_spinner="Lanczos, SLQ and Hutch++ on the Hessian…")
def spectrum(source: tuple, k: int, seed: int, _upload: bytes | None = None):
    return ll.spectrum_summary(*setup(source, _upload), k=k, seed=seed)


sgd_path = st.cache_resource(show_spinner="Replaying the SGD run…")(lab.training_trajectory)  # ~2 s, bit-exact


@st.cache_data(show_spinner=False)
def path_coords(source: tuple, axes: str, i: int, j: int, seed: int):
    p = plane(source, axes, i, j, seed)
    return ll.project(sgd_path(every=shipped.EVERY), setup(source)[1], (p.d1, p.d2)).cpu().numpy()


def z(loss):
    return np.log10(np.maximum(loss, 1e-12)) if log_z else loss


sources = {name: (source, upload)} | ({compare: ((compare, "", bn), None)} if compare != "none" else {})
live = {m: src for m, src in sources.items() if not (SHIPPED and m == name)}  # the shipped view is not recomputed
surface_at = None  # (column, z values, grid) of the 3-D scene: drawn after the first paint (it holds the browser ~3 s)
with ui.errors("the loss surface"):
    plot, label = st.empty(), SHIPPED.label if SHIPPED else plane(source, axes, i, j, seed, upload).label
    for res in (n,) if SHIPPED else ll.refine_sizes(n):  # core's coarse-to-fine schedule, each size cached on its own
        data = {name: SHIPPED.loss} if SHIPPED else {}
        data |= {m: grid(src, axes, i, j, seed, res, extent, view == "slices", up) for m, (src, up) in live.items()}
        c = np.linspace(-extent, extent, res)
        shape = f"{res}×{res}" if view == "surface" else f"{res}-point"
        title = f"{' vs '.join(sources)}<br>axes: {label}<br>{shape} grid · z: {ZLABEL}loss"
        downloads = {"a": c, "b": c if view == "surface" else None, "loss": data}
        with plot.container():
            if view == "surface":
                zs = {m: z(loss) for m, loss in data.items()}
                trained_here = name in lab.CHECKPOINTS and not upload and res == n  # coarse passes skip the replay
                path = (SHIPPED.path if SHIPPED else path_coords(source, axes, i, j, seed)) if trained_here else None
                left, right = st.columns(2)
                fig = charts.contour_figure(zs, c, title, path=path, extent=extent)
                ui.chart(fig, f"contour-{res}", data=downloads, name="landscape", where=left)
                surface_at = right, zs, c
            else:
                fig = charts.slices_figure(data, c, title.replace("<br>", " · "), z, ZLABEL)
                ui.chart(fig, f"slices-{res}", data=downloads, name="landscape-slices")
    ui.explainer(
        "the loss surface",
        r"L(a, b) = L(\theta + a\,d_1 + b\,d_2),\quad a, b \in \mathrm{linspace}(-r, r, n)",
        {"extent r": extent, "resolution n": n, "directions": label, "BatchNorm": bn, "device": str(DEVICE)},
        "Li et al., Visualizing the Loss Landscape of Neural Nets, arXiv:1712.09913; LLA, arXiv:2412.10146",
        text="Every point is the exact loss there. Filter-normalized axes make networks comparable; Hessian axes show "
        "λmax against λmin (a saddle curves down along λmin). Red: SGD's path from initialization, projected.",
    )

RE = r"re = \left|\min_k \theta_k / \max_k \theta_k\right|"
with ui.errors("the Hessian spectrum"):
    spec = {name: SHIPPED.spectrum} if SHIPPED else {}
    spec |= {m: spectrum(src, k, seed, up) for m, (src, up) in live.items()}
    left, right = st.columns(2)
    density = {m: {"grid": s.grid, "density": s.density} for m, s in spec.items()}
    ui.chart(charts.density_figure(spec), "density", data=density, where=left)
    ui.chart(charts.top_figure(spec, k), "top-k", data={m: s.top for m, s in spec.items()}, where=right)
    layers = {m: [vars(s) for s in v.layers] for m, v in spec.items()}
    ui.chart(charts.layers_figure(spec), "layers", data=layers, where=left)
    for m, s in spec.items():
        values = {f"λmax ({m})": s.top[0], f"tr H ({m})": s.trace.trace, f"re ({m})": s.criteria["re"]}
        helps = {f"tr H ({m})": f"Hutch++, standard error ± {s.trace.stderr:.2g}", f"re ({m})": "|λmin/λmax|"}
        ui.metrics({**values, f"Kh₀.₅ ({m})": s.criteria["kh"]}, where=right, help=helps)
    ui.explainer(
        "the spectrum and LLA's criteria",
        [RE, r"Kh_n = \frac{\sum_{\theta_k<0}(|\theta_k|\tau_k)^n}{\sum_{\theta_k>0}(\theta_k\tau_k)^n}"],
        {f"{m} {q}": v for m, s in spec.items() for q, v in s.criteria.items()},
        "Gabdullin et al., arXiv:2412.10146; caveat: arXiv:2504.17618",
        text="In a basin almost all curvature is positive, so re and Kh are near 0; large values mean a saddle or an "
        "unconverged model (worse generalization, says the paper). A larger λmax or tr H means a sharper minimum.",
    )

if surface_at is not None:
    column, zs, c = surface_at
    ui.after_first_paint(
        "landscape-surface",
        lambda: ui.chart(charts.surface_figure(zs, c, ZLABEL), "surface", name="landscape-surface", where=column),
        where=column,
        note="Drawing the 3-D surface after the contours…",
    )
