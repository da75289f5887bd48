"""Grad-CAM split by CF-CAM's channel groups: the parts add up to Grad-CAM and match it where they must."""

from __future__ import annotations

import torch

from core.cam import CFCAMConfig, cf_cam
from core.cam.gradcam import grad_cam, min_max
from core.cam.groups import group_maps
from core.zoo import load

SIZE = (64, 64)


def _inputs() -> torch.Tensor:
    from core.data.shapes import make_shapes

    return make_shapes(2, seed=31)[0]


def test_all_channel_map_is_grad_cam_scaled_to_its_peak():
    model, x = load("shapes-cnn"), _inputs()
    maps = group_maps(cf_cam(model, x, None, layer="block4"), SIZE, image=1)
    reference = grad_cam(model, x, None, layer="block4")[1]
    assert float(maps["all channels"].max()) == 1.0
    assert torch.allclose(min_max(maps["all channels"][None])[0], reference, atol=1e-5)


def test_with_every_channel_dominant_nothing_is_dropped():
    model, x = load("shapes-cnn"), _inputs()
    maps = group_maps(cf_cam(model, x, None, layer="block4", config=CFCAMConfig(dominant_frac=1.0)), SIZE)
    assert torch.allclose(maps["dominant"], maps["all channels"], atol=1e-6)
    assert float(maps["noise (dropped)"].abs().max()) == 0.0 and float(maps["clusters"].abs().max()) == 0.0


def test_default_clustering_drops_channels_that_carry_part_of_grad_cam():
    model, x = load("shapes-cnn"), _inputs()
    result = cf_cam(model, x, None, layer="block4")
    maps = group_maps(result, SIZE)
    assert int((result.labels[0] == -1).sum()) > 0
    assert 0.0 < float(maps["noise (dropped)"].max()) < 1.0  # some of Grad-CAM, not all of it
