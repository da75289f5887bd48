"""The CF-CAM lab's image rows: maps laid over the image (UI only: every map comes from `core.cam`)."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from pages import _ui as ui

HEAT = {"zmin": 0, "zmax": 1, "colorscale": "Jet", "opacity": 0.5, "hovertemplate": "%{z:.2f}<extra></extra>"}


def overlay(
    image: np.ndarray, panels: dict[str, np.ndarray], titles: list[str] | None = None, title: str = ""
) -> go.Figure:
    """The image, then each map of ``panels`` over it on one [0, 1] colour scale; ``titles`` replace the keys."""
    rgb = (np.transpose(image, (1, 2, 0)) * 255).astype(np.uint8)
    fig = ui.image_grid([rgb] * (len(panels) + 1), ["image", *(titles or panels)], height=260)
    for col, (name, heat) in enumerate(panels.items(), start=2):
        fig.add_trace(go.Heatmap(z=heat, name=name, showscale=col == 2, **HEAT), 1, col)
    return fig.update_layout(title=title, margin_t=100 if title else 30, title_y=0.97)


def hit_title(name: str, hit: bool | None) -> str:
    """A map's title, with the pointing game's verdict in words where there is a ground-truth mask."""
    return name if hit is None else f"{name}<br>peak {'inside' if hit else 'outside'} the mask"
