"""CF-CAM lab: Grad-CAM, Grad-CAM++, Score-CAM and CF-CAM side by side, CF-CAM's clusters laid open, and scores."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
import streamlit as st
import torch

from core import cam
from core.data.shapes import CLASSES, make_shapes
from pages import _ui as ui

GALLERY = 24
PRESETS = {
    "Authors' defaults": dict(dominant=0.25, eps=25, min_samples=0.05, filter="gaussian", combine="softmax"),
    "Grad-CAM limit": dict(dominant=1.0, combine="linear"),
    "One cluster: class-agnostic": dict(dominant=0.0, eps=100, min_samples=0.0, filter="none", combine="softmax"),
}
COLOURS = {"dominant": "black", "noise (dropped)": "lightgrey"}
gallery = st.cache_data(max_entries=4)(make_shapes)
HEAT = {"zmin": 0, "zmax": 1, "colorscale": "Jet", "opacity": 0.5, "hovertemplate": "%{z:.2f}<extra></extra>"}
MAP_TEXT = (
    "✓/✗: the map's peak inside / outside the object's ground-truth mask (pointing game). Under a GAP head each "
    "channel's gradient is constant, W[c,k]/(hw), so the softmax over α ≈ 1e-3 is almost uniform: CF-CAM then shows "
    "the mean kept activation, nearly class-agnostic."
)
CLUSTER_TEXT = (
    "Dominant channels (top activation norms) keep their own mean gradient; DBSCAN groups the rest by their "
    "activations, grey ones are noise and drop out. Filtered cluster gradients are shown at layer resolution."
)
SCORE_TEXT = (
    "Deletion: pixels replaced in map order (lower is better); insertion: revealed on a blurred image (higher is "
    "better); pointing game and EBPG use the shapes' ground-truth masks; *random* is the floor. Try *zero*: black "
    "speckles fool the CNN, so a random map 'wins' deletion against the true mask."
)

ui.header("cam")
ui.presets(PRESETS)
source = ui.radio("Image", {"gallery": "Gallery", "upload": "Upload"}, "gallery", "source", horizontal=True)
index = ui.slider("Gallery image", 0, GALLERY - 1, 0, "image") if source == "gallery" else 0
upload = ui.upload("PNG or JPEG", ["png", "jpg", "jpeg"], "upload", max_mb=10) if source == "upload" else None
target_name = ui.select("Target class", ["predicted", *CLASSES], "predicted", "target")
with st.sidebar.expander("CF-CAM settings", expanded=True):
    cf = {
        "dominant_frac": ui.slider("Dominant fraction", 0.0, 1.0, 0.25, "dominant", step=0.05, where=st),
        "eps_percentile": float(ui.slider("eps percentile", 1, 100, 25, "eps", where=st)),
        "min_samples_frac": ui.slider("min-samples fraction", 0.0, 0.3, 0.05, "min_samples", step=0.01, where=st),
        "filter": ui.select("Cluster filter", cam.FILTERS, "gaussian", "filter", where=st),
        "sigma": ui.slider("σ (layer pixels)", 0.5, 10.0, 5.0, "sigma", step=0.5, where=st),
        "combine": ui.radio("Combine", cam.COMBINES, "softmax", "combine", horizontal=True, where=st),
    }
seed, device, net = ui.seed(), ui.device(), ui.zoo_model("shapes-cnn")
layer = ui.select("Layer", list(net.cam_layers), net.cam_layer, "layer")


@st.cache_data(max_entries=64, show_spinner="Computing the maps…")
def explain(image: np.ndarray, mask: np.ndarray | None, target: int | None, layer: str, cf: dict):
    x, masks = (None if a is None else torch.from_numpy(a)[None].to(device) for a in (image, mask))
    return cam.explain(net, x, target, layer=layer, masks=masks, config=cam.CFCAMConfig(**cf))


def overlay(image: np.ndarray, panels: dict[str, np.ndarray]) -> go.Figure:
    rgb = (np.transpose(image, (1, 2, 0)) * 255).astype(np.uint8)
    fig = ui.image_grid([rgb] * (len(panels) + 1), ["image", *panels], height=260)
    for col, (name, heat) in enumerate(panels.items(), start=2):
        fig.add_trace(go.Heatmap(z=heat, name=name, showscale=col == 2, **HEAT), 1, col)
    return fig


out = None
with ui.errors("the maps"):
    if source == "upload":
        if upload is None:
            st.info("Upload a PNG or JPEG in the sidebar; the shapes CNN will classify it as one of its six shapes.")
            st.stop()
        image, mask = cam.decode_image(upload, size=64)[0].numpy(), None
    else:
        images, labels, masks = gallery(GALLERY, seed=10_000 + seed)
        image, mask = images[index].numpy(), masks[index].numpy()
        st.caption(f"Gallery image {index}: true class **{CLASSES[int(labels[index])]}**.")
    out = explain(image, mask, None if target_name == "predicted" else CLASSES.index(target_name), layer, cf)
    t, probs, res = int(out.targets[0]), out.probs[0].cpu().numpy(), out.cf
    k, h, w = res.activations.shape[1:]
    st.markdown(
        f"Explaining **{CLASSES[t]}** (p = {probs[t]:.2f}; prediction **{CLASSES[int(probs.argmax())]}**) "
        f"at `{layer}` ({k} channels, {h}×{w})."
    )
    marks = {name: f" {'✓' if hit else '✗'}" for name, hit in out.hits.items()} if mask is not None else {}
    panels = {name + marks.get(name, ""): maps[0].cpu().numpy() for name, maps in out.maps.items()}
    ui.chart(overlay(image, panels), "maps", data=panels, name="cam-maps")
    ui.explainer("the maps", cam.FORMULAS["maps"], res.summary(), "arXiv:2504.00060, 1610.02391", text=MAP_TEXT)

    st.subheader("Inside CF-CAM: channel clusters")
    channels = cam.channel_table(res)
    left, right = st.columns(2)
    scatter = px.scatter(channels, "pc1", "pc2", color="group", hover_name="channel", color_discrete_map=COLOURS)
    ui.chart(scatter.update_layout(height=360, margin={"t": 10}), "clusters", where=left, data=channels)
    bars = px.bar(channels, "channel", "beta", color="group", color_discrete_map=COLOURS, labels={"beta": "β"})
    bars.update_xaxes(type="category", categoryorder="total descending")
    ui.chart(bars.update_layout(height=360, margin={"t": 10}), "weights", where=right, data=channels)
    filtered = res.filtered_grads[0][:8].cpu().numpy()
    if len(filtered):
        peak, names = float(np.abs(filtered).max()) or 1.0, [f"cluster {m}" for m in range(len(filtered))]
        grid = ui.image_grid(list(filtered), names, colorscale="RdBu", zmin=-peak, zmax=peak, height=200)
        ui.chart(grid, "cluster-grads", data=dict(zip(names, filtered, strict=True)))
    else:
        st.caption("No clusters: every non-dominant channel is noise (or dominant).")
    ui.explainer("the clusters", cam.FORMULAS["clusters"], text=CLUSTER_TEXT)

if out is None:  # the error boundary above has said what is wrong
    st.stop()

with st.expander("Other explanations (captum: Occlusion, Integrated Gradients, SmoothGrad)"), ui.errors("other maps"):
    if ui.toggle("Compute", False, "other", where=st):
        x = torch.from_numpy(image)[None].to(device)
        ui.chart(overlay(image, {k: fn(net, x, t)[0].cpu().numpy() for k, fn in cam.OTHER.items()}), "other-maps")

st.subheader("Faithfulness and localisation over many images")
col_n, col_s = st.columns(2)
n_images = ui.slider("Images", 8, 200, 32, "n_metrics", step=8, where=col_n)
substrate = ui.select("Deleted pixels become", cam.SUBSTRATES, "blur", "substrate", where=col_s)


def progress(state) -> tuple[float, str]:
    return state.step / state.total, f"{state.method}: {state.step}/{state.total} batches"


def start_metrics():
    x, y, m = (v.to(device) for v in make_shapes(n_images, seed=20_000 + seed))
    return cam.run(net, x, y, masks=m, layer=layer, config=cam.CFCAMConfig(**cf), substrate=substrate, seed=seed)


with ui.errors("the metrics"):
    key = (n_images, layer, tuple(sorted(cf.items())), seed, substrate, str(device))
    done = ui.background("cam-metrics", key, start_metrics, progress, label="Score the methods")
    if done is not None:
        table = pd.DataFrame(done.table).T.rename_axis("method").reset_index()
        st.dataframe(table, hide_index=True, width="stretch")
        long = table.rename(columns={k: f"{k} {'↑' if up else '↓'}" for k, up in cam.METRICS.items()}).melt("method")
        fig = px.bar(long, "method", "value", facet_col="variable", height=300).update_yaxes(matches=None)
        fig.for_each_annotation(lambda a: a.update(text=a.text.split("=")[-1]))
        ui.chart(fig, "metrics", data=table, name="cam-metrics")
        ui.explainer("the scores", cam.FORMULAS["scores"], text=SCORE_TEXT)
