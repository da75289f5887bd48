"""Class activation maps: the Grad-CAM family, CF-CAM with its cluster internals, and faithfulness metrics.

    from core.cam import cf_cam, grad_cam, grad_cam_pp, score_cam, metrics
"""

from core.cam import metrics
from core.cam.cfcam import CFCAMConfig, CFCAMResult, cf_cam
from core.cam.gradcam import grad_cam, grad_cam_pp, resolve_layer, score_cam
from core.cam.images import decode_image

__all__ = [
    "CFCAMConfig",
    "CFCAMResult",
    "cf_cam",
    "decode_image",
    "grad_cam",
    "grad_cam_pp",
    "metrics",
    "resolve_layer",
    "score_cam",
]
