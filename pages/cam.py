"""CF-CAM lab: Grad-CAM, Grad-CAM++, Score-CAM and CF-CAM side by side, CF-CAM's clusters laid open, and scores."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st
import torch
from plotly.subplots import make_subplots

from core.cam import cf_cam, grad_cam, grad_cam_pp, score_cam
from core.cam import metrics as M
from core.cam.attributions import OTHER
from core.cam.images import decode_image
from core.data.shapes import CLASSES, make_shapes
from pages import _ui as ui

GALLERY = 24
FILTERS = {"gaussian": "gaussian", "bilateral": "bilateral", "none": None}

ui.header("cam")
ui.presets({
    "Reference (authors' defaults)": {"dominant": 0.25, "eps": 25, "min_samples": 0.05, "filter": "gaussian", "combine": "softmax"},
    "Grad-CAM limit": {"dominant": 1.0, "combine": "linear"},
    "One cluster: class-agnostic": {"dominant": 0.0, "eps": 100, "min_samples": 0.0, "filter": "none", "combine": "linear"},
})  # fmt: skip
source = ui.radio("Image", ["Gallery", "Upload"], "Gallery", "source", horizontal=True)
index = ui.slider("Gallery image", 0, GALLERY - 1, 0, "image") if source == "Gallery" else 0
upload = ui.upload("PNG or JPEG", ["png", "jpg", "jpeg"], "upload", max_mb=10) if source == "Upload" else None
target_name = ui.select("Target class", ["predicted", *CLASSES], "predicted", "target")
with st.sidebar.expander("CF-CAM settings", expanded=True):
    dominant = ui.slider("Dominant fraction", 0.0, 1.0, 0.25, "dominant", step=0.05, where=st)
    eps = ui.slider("eps percentile", 1, 100, 25, "eps", where=st)
    min_samples = ui.slider("min-samples fraction", 0.0, 0.3, 0.05, "min_samples", step=0.01, where=st)
    filt = ui.select("Cluster filter", list(FILTERS), "gaussian", "filter", where=st)
    sigma = ui.slider("σ (layer pixels)", 0.5, 10.0, 5.0, "sigma", step=0.5, where=st)
    combine = ui.radio("Combine", ["softmax", "linear"], "softmax", "combine", horizontal=True, where=st)
seed = ui.seed()


@st.cache_resource(show_spinner="Loading the CNN…")
def model():
    from core import zoo

    return zoo.load("shapes-cnn")


net = model()
layer = ui.select("Layer", list(net.cam_layers), net.cam_layer, "layer")


@st.cache_data(max_entries=4)
def gallery(seed: int):
    return make_shapes(GALLERY, seed=10_000 + seed)


@st.cache_data(max_entries=64, show_spinner="Computing the maps…")
def maps(image: np.ndarray, target: int | None, layer: str, cf: dict):
    x = torch.from_numpy(image)[None]
    t = int(net(x).argmax(1)) if target is None else target
    out = {name: fn(net, layer, x, t)[0].numpy() for name, fn in
           (("Grad-CAM", grad_cam), ("Grad-CAM++", grad_cam_pp), ("Score-CAM", score_cam))}  # fmt: skip
    res = cf_cam(net, layer, x, t, **cf)
    out["CF-CAM"] = res.map[0].numpy()
    return t, torch.softmax(net(x), 1)[0].detach().numpy(), out, res


def overlay(image: np.ndarray, panels: dict[str, np.ndarray], opacity: float = 0.5) -> go.Figure:
    fig = make_subplots(1, len(panels) + 1, subplot_titles=["image", *panels], horizontal_spacing=0.01)
    rgb = (np.transpose(image, (1, 2, 0)) * 255).astype(np.uint8)
    for col, (name, heat) in enumerate([("image", None), *panels.items()], start=1):
        fig.add_trace(go.Image(z=rgb, hoverinfo="skip"), 1, col)
        if heat is not None:
            fig.add_trace(go.Heatmap(z=heat, zmin=0, zmax=1, colorscale="Jet", opacity=opacity, showscale=col == 2,
                                     name=name, hovertemplate="%{z:.2f}<extra></extra>"), 1, col)  # fmt: skip
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False, autorange="reversed")
    fig.update_layout(height=260, margin=dict(l=0, r=0, t=30, b=0))
    return fig


image = t = None
with ui.errors("the maps"):
    if source == "Upload":
        if upload is None:
            st.info("Upload a PNG or JPEG in the sidebar; the shapes CNN will classify it as one of its six shapes.")
            st.stop()
        image, mask = decode_image(upload, 64)[0].numpy(), None
    else:
        images, labels, masks = gallery(seed)
        image, mask = images[index].numpy(), masks[index].numpy()
        st.caption(f"Gallery image {index}: true class **{CLASSES[int(labels[index])]}**.")
    cf = dict(dominant_frac=dominant, eps_percentile=float(eps), min_samples_frac=min_samples, filter=FILTERS[filt],
              sigma=sigma, combine=combine)  # fmt: skip
    target = None if target_name == "predicted" else CLASSES.index(target_name)
    t, probs, panels, res = maps(image, target, layer, cf)
    st.markdown(f"Explaining **{CLASSES[t]}** (p = {probs[t]:.2f}; prediction **{CLASSES[int(probs.argmax())]}**) "
                f"at `{layer}` ({res.activations.shape[1]} channels, {res.activations.shape[2]}×{res.activations.shape[3]}).")
    if mask is not None:
        hits = {k: bool(M.pointing_game(torch.from_numpy(v)[None], torch.from_numpy(mask)[None])[0]) for k, v in panels.items()}
        panels = {f"{k} {'✓' if hits[k] else '✗'}": v for k, v in panels.items()}
    ui.chart(overlay(image, panels), "maps", data={k: v for k, v in panels.items()}, name="cam-maps")
    ui.explainer("the maps", [r"\text{Grad-CAM: } M=\mathrm{ReLU}\big(\textstyle\sum_k \bar g_k A_k\big),\ \bar g_k=\frac{1}{hw}\sum_{ij}\frac{\partial y_c}{\partial A_k^{ij}}",
                              r"\text{CF-CAM: } M=\mathrm{ReLU}\big(\textstyle\sum_{k\in V}\beta_k A_k\big),\ \beta=\mathrm{softmax}(\alpha_V)"],
                 {"dominant channels": int(res.dominant.sum()), "clusters": int(res.labels.max()) + 1,
                  "noise channels (dropped)": int((res.labels == -1).sum()), "DBSCAN eps": float(res.eps[0]),
                  "min_samples": int(res.min_samples[0])},
                 "He, Pan, Yao (2025), arXiv:2504.00060; Selvaraju et al. (2017), arXiv:1610.02391",
                 text="✓/✗: the map's peak inside / outside the object's ground-truth mask (pointing game). "
                      "Under a GAP head the gradient of each channel is constant, W[c,k]/(hw), so the softmax over "
                      "α ≈ 1e-3 is almost uniform: CF-CAM then shows the mean kept activation, nearly class-agnostic.")  # fmt: skip

    st.subheader("Inside CF-CAM: channel clusters")
    acts = res.activations[0].flatten(1).double()  # (K, h*w)
    centred = acts - acts.mean(0)
    u, s, _ = torch.linalg.svd(centred, full_matrices=False)
    xy = (u[:, :2] * s[:2]).numpy()  # PCA of the channels' activations
    lab, dom, beta = res.labels[0].numpy(), res.dominant[0].numpy(), res.coefficients[0].numpy()
    group = np.where(dom, "dominant", np.where(lab == -1, "noise (dropped)", np.char.add("cluster ", lab.astype(str))))
    left, right = st.columns(2)
    fig = go.Figure()
    for g in sorted(set(group), key=lambda v: (v.startswith("cluster"), v)):
        sel = group == g
        fig.add_trace(go.Scattergl(x=xy[sel, 0], y=xy[sel, 1], mode="markers", name=f"{g} ({sel.sum()})",
                                   marker=dict(size=9, symbol="star" if g == "dominant" else "circle",
                                               color="lightgrey" if g.startswith("noise") else None),
                                   text=[f"channel {k}, β={beta[k]:.4g}" for k in np.flatnonzero(sel)]))  # fmt: skip
    fig.update_layout(height=360, xaxis_title="PC 1", yaxis_title="PC 2", margin=dict(t=10))
    ui.chart(fig, "clusters", where=left, data=pd.DataFrame({"channel": range(len(lab)), "pc1": xy[:, 0],
             "pc2": xy[:, 1], "label": lab, "dominant": dom, "beta": beta}))  # fmt: skip
    order = np.argsort(-beta)
    bars = go.Figure(go.Bar(x=[f"c{k}" for k in order], y=beta[order], marker_color=[
        "black" if dom[k] else ("lightgrey" if lab[k] == -1 else "steelblue") for k in order]))
    bars.update_layout(height=360, yaxis_title="β (combination weight)", margin=dict(t=10))
    ui.chart(bars, "weights", where=right, data=pd.DataFrame({"channel": order, "beta": beta[order]}))
    filtered = res.filtered_grads[0][:8].numpy()
    if len(filtered):
        grid = make_subplots(1, len(filtered), subplot_titles=[f"cluster {m}" for m in range(len(filtered))])
        for m, g in enumerate(filtered):
            grid.add_trace(go.Heatmap(z=g, colorscale="RdBu", zmid=0, showscale=m == 0), 1, m + 1)
        grid.update_yaxes(autorange="reversed", visible=False)
        grid.update_xaxes(visible=False)
        grid.update_layout(height=200, margin=dict(t=30, b=0))
        ui.chart(grid, "cluster-grads", data={f"cluster {m}": g for m, g in enumerate(filtered)})
    else:
        st.caption("No clusters: every non-dominant channel is noise (or dominant).")
    ui.explainer("the clusters", r"\alpha_k=\operatorname{mean}\big(\mathrm{filter}(\tfrac{1}{|C_m|}\textstyle\sum_{j\in C_m} G_j)\big),\ k\in C_m",
                 text="Dominant channels (top activation norms, ★) keep their own mean gradient; DBSCAN groups the rest by "
                      "their activations, grey ones are noise and drop out. Filtered cluster gradients are shown at layer resolution.")  # fmt: skip

if t is None:  # the error boundary above has said what is wrong
    st.stop()

with st.expander("Other explanations (captum: Occlusion, Integrated Gradients, SmoothGrad)"), ui.errors("the captum maps"):
    if ui.toggle("Compute", False, "other", where=st):
        x = torch.from_numpy(image)[None]
        ui.chart(overlay(image, {k: fn(net, x, t)[0].numpy() for k, fn in OTHER.items()}), "other-maps")

st.subheader("Faithfulness and localisation over many images")
col_n, col_s = st.columns(2)
n_images = ui.slider("Images", 8, 200, 32, "n_metrics", step=8, where=col_n)
substrate = ui.select("Deleted pixels become", list(M.SUBSTRATES), "blur", "substrate", where=col_s,
                      help="RISE uses zeros; on these shapes a black silhouette still shows the shape.")


def run_metrics(n: int, layer: str, cf: dict, seed: int, substrate: str):
    x, y, m = make_shapes(n, seed=20_000 + seed)
    methods = {name: (lambda a, b, fn=fn: fn(net, layer, a, b)) for name, fn in
               (("Grad-CAM", grad_cam), ("Grad-CAM++", grad_cam_pp), ("Score-CAM", score_cam))}  # fmt: skip
    methods["CF-CAM"] = lambda a, b: cf_cam(net, layer, a, b, **cf).map
    methods["random"] = lambda a, b: torch.rand(a.shape[0], *a.shape[2:], generator=torch.Generator().manual_seed(seed))
    return M.metrics_table(net, x, y, m, methods, substrate_kind=substrate)


with ui.errors("the metrics"):
    key = (n_images, layer, tuple(sorted(cf.items())), seed, substrate)
    done = ui.background("cam-metrics", key, lambda: run_metrics(n_images, layer, cf, seed, substrate),
                         lambda s: (s.done / s.total, f"{s.method}: {s.done}/{s.total} batches"), label="Score the methods")
    if done is not None:
        table = pd.DataFrame(done.table).T.rename_axis("method").reset_index()
        st.dataframe(table, hide_index=True, width="stretch")
        fig = make_subplots(1, len(M.METRICS), subplot_titles=[f"{k} {'↑' if up else '↓'}" for k, up in M.METRICS.items()])
        for col, k in enumerate(M.METRICS, start=1):
            fig.add_trace(go.Bar(x=table["method"], y=table[k], showlegend=False), 1, col)
        fig.update_layout(height=300, margin=dict(t=30))
        ui.chart(fig, "metrics", data=table, name="cam-metrics")
        ui.explainer("the scores", [r"\text{AUC}=\tfrac1n\big(\textstyle\sum_i s_i-\tfrac{s_0+s_n}{2}\big)",
                                    r"\text{AD}=\tfrac{100}{N}\textstyle\sum\frac{\max(0,Y_c-O_c)}{Y_c},\ \text{EBPG}=\frac{\sum_{p\in\text{mask}}L_p}{\sum_p L_p}"],
                     text="Deletion: pixels replaced in map order (lower is better); insertion: revealed on a blurred image "
                          "(higher is better); pointing game and EBPG use the shapes' ground-truth masks; *random* is the floor. "
                          "Try *zero*: black speckles fool the CNN, so a random map 'wins' deletion against the true mask.")  # fmt: skip
