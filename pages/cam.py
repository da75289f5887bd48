"""CF-CAM lab: Grad-CAM, Grad-CAM++, Score-CAM and CF-CAM side by side, CF-CAM's clusters laid open, and scores."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.express as px
import streamlit as st
import torch

from core import cam
from core.cam.groups import group_maps
from core.data.shapes import CLASSES, make_shapes
from pages import _cam_charts as charts
from pages import _ui as ui

GALLERY = 24
PRESETS = {
    "Authors' defaults": dict(dominant=0.25, eps=25, min_samples=0.05, filter="gaussian", combine="softmax"),
    "Grad-CAM limit": dict(dominant=1.0, combine="linear"),
    "One cluster: class-agnostic": dict(dominant=0.0, eps=100, min_samples=0.0, filter="none", combine="softmax"),
}
COLOURS = {"dominant": "black", "noise (dropped)": "lightgrey"}
gallery = st.cache_data(max_entries=4)(make_shapes)
MAP_TEXT = (
    "Peak inside / outside the mask: the pointing game on the object's ground-truth mask. Under a GAP head each "
    "channel's gradient is constant, W[c,k]/(hw), so the softmax over α ≈ 1e-3 is almost uniform: CF-CAM then shows "
    "the mean kept activation, nearly class-agnostic."
)
CLUSTER_TEXT = (
    "Dominant channels (top activation norms) keep their own mean gradient; DBSCAN groups the rest by their "
    "activations, grey ones are noise and drop out. The row above the maps' explainer shows how much of Grad-CAM "
    "each group makes: what CF-CAM drops is the *noise* panel."
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
    hits = {name: bool(hit) for name, hit in out.hits.items()} if mask is not None else {}
    marks = {name: " ✓" if hit else " ✗" for name, hit in hits.items()}  # in the trace names, for the downloads
    panels = {name + marks.get(name, ""): maps[0].cpu().numpy() for name, maps in out.maps.items()}
    titles = [charts.hit_title(name, hits.get(name)) for name in out.maps]
    fig = charts.overlay(image, panels, titles, "Where each method says the CNN looks (1 = the map's peak)")
    ui.chart(fig, "maps", data=panels, name="cam-maps")
    groups = {k: v.cpu().numpy() for k, v in group_maps(res, image.shape[-2:]).items()}
    kept, dropped = res.summary()["dominant channels"], res.summary()["noise channels (dropped)"]
    counts = {"all channels": k, "clusters": k - kept - dropped, "dominant": kept, "noise (dropped)": dropped}
    group_titles = [f"{g}<br>{counts[g]} channels, peak {groups[g].max():.2f}" for g in groups]
    title = "Grad-CAM from the channels CF-CAM keeps and drops (on Grad-CAM's scale: 1 = its peak)"
    ui.chart(charts.overlay(image, groups, group_titles, title), "groups", data=groups, name="cam-groups")
    ui.explainer("the maps", cam.FORMULAS["maps"], res.summary(), "arXiv:2504.00060, 1610.02391", text=MAP_TEXT)

    st.subheader("Inside CF-CAM: channel clusters")
    channels = cam.channel_table(res)
    scatter = px.scatter(channels, "pc1", "pc2", color="group", hover_name="channel", color_discrete_map=COLOURS)
    scatter.update_layout(height=380, title=f"The {k} channels of `{layer}` by their activations (PCA), as grouped")
    scatter.update_xaxes(title="1st principal component").update_yaxes(title="2nd principal component")
    ui.chart(scatter, "clusters", data=channels)
    ui.explainer("the clusters", cam.FORMULAS["clusters"], text=CLUSTER_TEXT)

if out is None:  # the error boundary above has said what is wrong
    st.stop()

with st.expander("Other explanations (captum: Occlusion, Integrated Gradients, SmoothGrad)"), ui.errors("other maps"):
    if ui.toggle("Compute", False, "other", where=st):
        x = torch.from_numpy(image)[None].to(device)
        ui.chart(
            charts.overlay(image, {k: fn(net, x, t)[0].cpu().numpy() for k, fn in cam.OTHER.items()}), "other-maps"
        )

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
