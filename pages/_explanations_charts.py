"""Figures of the explanation-choice lab: attributions side by side, neighbourhood clouds, the loss matrix."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots

from core import explanations as ex
from core.data.shapes import CLASSES, make_shapes
from core.explanations import METHODS, NEIGHBOURHOODS
from core.explanations.neighbourhoods import feature_values
from pages import _shipped as shipped
from pages import _ui as ui

LFA_TEXT = (
    "Every method fits a linear g(ξ) = wᵀξ (+ b) to the model f around x₀: ξ is a mask (LIME, KernelSHAP, "
    "Occlusion), Gaussian noise (C-LIME, SmoothGrad, gradients σ → 0) or a point αx₀ on the path from 0 (IG, "
    "Gradient × input). The fit is weighted least squares or gradient matching; captum computes each with the "
    "options listed, checked against the direct solution in `tests/test_explanations.py`."
)
MATRIX_TEXT = (
    "Each cell is the LFA loss of the row's explanation on the column method's neighbourhood, on fresh draws "
    "(★ = column winner, colour = log10 of loss / column minimum). Each method wins its own column (C-LIME and "
    "SmoothGrad estimate the same w: Stein's lemma), and no row wins them all: no free lunch."
)
LFA_FORMULA = r"g^*=\arg\min_{g(\xi)=w^\top\xi+b}\ \mathbb E_{\xi\sim Z}\,\ell(f,g,x_0,\xi)"
REFERENCE = (
    "Han, Srinivas, Lakkaraju, arXiv:2206.01254; LIME 1602.04938, KernelSHAP 1705.07874, Occlusion 1311.2901, "
    "C-LIME 2102.06015, SmoothGrad 1706.03825, gradients 1312.6034, IG 1703.01365, Gradient × input 1605.01713."
)
GALLERY = 16
SWEEP = np.geomspace(0.3, 0.003, 12)  # σ of the SmoothGrad → gradients replay
FAMILY_COLOURS = {"multiplicative": "#1f77b4", "additive": "#d62728"}


def attribution_map(attributions: dict[str, np.ndarray], names: list[str]) -> go.Figure:
    """Features × methods, each method's attributions over its largest |w| (their units differ): one glance compares
    where they agree (additive methods on a linear model give the same column) and where they do not."""
    labels = [
        METHODS[k].label.replace(" ", "<br>", 1) if len(METHODS[k].label) > 10 else METHODS[k].label
        for k in attributions
    ]
    raw = np.stack([np.asarray(w, dtype=float) for w in attributions.values()], axis=1)  # (features, methods)
    peak = np.abs(raw).max(axis=0)
    scaled = raw / np.where(peak > 0, peak, 1.0)
    heat = go.Heatmap(
        z=scaled,
        x=labels,
        y=names,
        customdata=raw,
        colorscale="RdBu",
        zmid=0,
        zmin=-1,
        zmax=1,
        colorbar={"title": {"text": "w / max |w|", "side": "right"}, "thickness": 12},
        hovertemplate="%{y}<br>%{x}<br>attribution %{customdata:.4g}<br>scaled %{z:.2f}<extra></extra>",
    )
    return go.Figure(heat).update_layout(
        title={"text": "Attribution of each feature by each method, scaled to the method's largest |w|"},
        xaxis={"side": "top", "tickangle": 0},
        yaxis={"title": {"text": "feature"}, "autorange": "reversed", "dtick": 1},
        height=max(420, 22 * len(names) + 140),
        margin={"t": 110, "l": 0, "r": 0, "b": 10},
    )


def maps(image: np.ndarray, attributions: dict[str, np.ndarray], features: np.ndarray) -> go.Figure:
    """The image and each method's patch map (the feature's attribution on its pixels), symmetric colour scale."""
    panels = [attributions[k][features[0]] for k in attributions]
    fig = ui.image_grid(
        [(np.transpose(image, (1, 2, 0)) * 255).astype(np.uint8), *panels],
        ["image", *(METHODS[k].label for k in attributions)],
        columns=5,
        colorscale="RdBu",
        height=200,
    )
    for trace, panel in zip(fig.data[1:], panels, strict=True):
        peak = float(np.abs(panel).max()) or 1.0
        trace.update(zmin=-peak, zmax=peak)
    return fig


def clouds(samples: dict[str, np.ndarray], x0: np.ndarray, dims: tuple[int, int], labels: tuple[str, str]) -> go.Figure:
    """Each neighbourhood's draws x(ξ) in two features (marker opacity ∝ weight), x₀ as a star."""
    keys = list(samples)
    fig = make_subplots(
        2, 4, subplot_titles=[NEIGHBOURHOODS[k].label for k in keys], horizontal_spacing=0.05, vertical_spacing=0.12
    )
    for i, key in enumerate(keys):
        x, weights = samples[key][:, :-1], samples[key][:, -1]
        opacity = 0.15 + 0.85 * weights / (weights.max() or 1.0)
        at = (i // 4 + 1, i % 4 + 1)
        fig.add_trace(
            go.Scatter(
                x=x[:, dims[0]],
                y=x[:, dims[1]],
                mode="markers",
                showlegend=False,
                marker={"size": 6, "opacity": opacity, "color": "#555"},
            ),
            *at,
        )
        fig.add_trace(
            go.Scatter(
                x=[x0[dims[0]]],
                y=[x0[dims[1]]],
                mode="markers",
                showlegend=False,
                marker={"size": 13, "symbol": "star", "color": "#d62728"},
            ),
            *at,
        )
    fig.update_xaxes(title_text=labels[0], title_font_size=10)
    fig.update_yaxes(title_text=labels[1], title_font_size=10)
    return fig.update_layout(height=520, margin={"t": 30, "l": 0, "r": 0, "b": 0})


def matrix_table(matrix: dict[str, dict[str, float]]) -> pd.DataFrame:
    """Rows: explanations; columns: the neighbourhood + loss of each method; values: the LFA loss."""
    table = pd.DataFrame(matrix)  # index: explanation, columns: neighbourhood
    return table.rename(index=lambda k: METHODS[k].label, columns=lambda k: METHODS[k].label)


def matrix(table: pd.DataFrame, recommended: str) -> go.Figure:
    """log10(loss / column minimum): 0 is the column's winner (★); the recommended column is outlined."""
    ratio = np.log10(table.to_numpy() / np.maximum(table.min(axis=0).to_numpy(), 1e-300) + 1e-300).clip(0, 6)
    text = np.vectorize(lambda v: f"{v:.2g}")(table.to_numpy()).astype(object)
    text[table.to_numpy().argmin(0), np.arange(table.shape[1])] = "★"
    fig = go.Figure(
        go.Heatmap(
            z=ratio,
            x=list(table.columns),
            y=list(table.index),
            text=text,
            texttemplate="%{text}",
            colorscale="Blues_r",
            zmin=0,
            zmax=6,
            colorbar={"title": "log10 loss/min"},
        )
    )
    col = list(table.columns).index(METHODS[recommended].label)
    fig.add_shape(type="rect", x0=col - 0.5, x1=col + 0.5, y0=-0.5, y1=len(table) - 0.5, line={"width": 3})
    fig.update_xaxes(title_text="neighbourhood and loss of…", side="top")
    fig.update_yaxes(title_text="explanation", autorange="reversed")
    return fig.update_layout(height=420, margin={"t": 60, "l": 0, "r": 0, "b": 0})


def sigma_replay(sigmas: np.ndarray, sweep: list[np.ndarray], vanilla: np.ndarray, names: list[str]) -> go.Figure:
    """Client-side replay of SmoothGrad's w as σ shrinks, against the plain gradient (σ = 0)."""
    fig = go.Figure(
        [
            go.Bar(x=names, y=sweep[0], name="SmoothGrad (σ)", marker_color=FAMILY_COLOURS["additive"]),
            go.Scatter(
                x=names,
                y=vanilla,
                mode="markers",
                name="gradient (σ = 0)",
                marker={"symbol": "line-ew-open", "size": 18, "color": "black"},
            ),
        ]
    )
    peak = 1.1 * float(max(np.abs(np.array(sweep)).max(), np.abs(vanilla).max()))
    fig.update_layout(height=360, yaxis_range=[-peak, peak], margin={"t": 20, "l": 0, "r": 0, "b": 0})
    frames = [go.Frame(data=[go.Bar(y=w)], traces=[0], name=f"{s:.3g}") for s, w in zip(sigmas, sweep, strict=True)]
    return ui.animate(fig, frames, duration_ms=300, prefix="σ = ")


def own_wins(table: pd.DataFrame) -> int:
    """Columns whose own method's loss is within 5% of the column's minimum (the diagonal of the matrix)."""
    values = table.to_numpy()
    return int((values.diagonal() <= 1.05 * values.min(0)).sum())


def winners(table: pd.DataFrame, column: str) -> list[str]:
    """The explanations within 5% of the column's minimum loss (several when they estimate the same w)."""
    losses = table[column]
    return list(losses.index[losses <= 1.05 * losses.min() + 1e-12 * losses.max()])


def agreement(rank: np.ndarray, keys: list[str]) -> go.Figure:
    """Spearman rank correlation between the methods' attributions."""
    heat = go.Heatmap(z=rank, x=keys, y=keys, colorscale="RdBu", zmin=-1, zmax=1, texttemplate="%{z:.2f}")
    return go.Figure(heat).update_layout(height=380, margin={"t": 10, "l": 0, "r": 0, "b": 0})


def _compute(
    source: str, model_name: str, index: int, target: str | None, patch, n: int, cfg: tuple, seed: int
) -> dict:
    """Everything the page shows for one input: the eight attributions, the loss matrix, the clouds, the σ sweep."""
    model, config, device = ui.zoo_model(model_name), ex.LFAConfig(*cfg), ui.device()
    if source == "tabular":
        x0, features = ex.tabular(model_name.split("-")[0]).x_test[index : index + 1].to(device), None
    else:
        x0 = make_shapes(GALLERY, seed=30_000 + seed)[0][index : index + 1].to(device)
        features = ex.patch_features(64, patch, device=device)
    with torch.no_grad():
        logits = model(x0)[0]
    t = None if target is None else int(logits.argmax()) if target == "predicted" else CLASSES.index(target)
    opts = dict(target=t, features=features, n_samples=n, config=config)
    attributions = ex.explain_all(model, x0, seed=seed, **opts)
    matrix = ex.loss_matrix(model, x0, attributions, seed=seed + 1, **opts)
    feats = ex.patch_features(64, patch, device=device) if patch else torch.arange(x0.shape[1], device=device)
    clouds = {}
    for key in ex.NEIGHBOURHOODS:
        s = ex.neighbourhood_samples(x0, neighbourhood=key, features=features, n_samples=min(n, 200), config=config)
        clouds[key] = torch.cat([feature_values(s.x, feats), s.weights[:, None]], 1).cpu().numpy()
    sweep = [
        ex.lfa(
            model,
            x0,
            neighbourhood="gaussian",
            loss="gradient",
            n_samples=100,
            seed=seed,
            target=t,
            config=ex.LFAConfig(sigma=float(s)),
        )
        .cpu()
        .numpy()
        for s in (SWEEP if source == "tabular" else [])
    ]
    return dict(
        sweep=sweep,
        x0=x0[0].cpu().numpy(),
        x0_features=feature_values(x0, feats)[0].cpu().numpy(),
        target=t,
        output=logits.cpu().numpy(),
        attributions={k: v.cpu().numpy() for k, v in attributions.items()},
        matrix=matrix,
        clouds=clouds,
        agreement={k: v.cpu().numpy() for k, v in ex.agreement(attributions).items()},
    )


# The default link's first call costs ~1.5 s more than later ones (data, model and captum warm-up): it is shipped.
compute = shipped.cache_for("explanations", max_entries=32)(_compute, show_spinner="Explaining with the eight methods…")
