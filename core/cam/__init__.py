"""Cluster Filter Class Activation Mapping (CF-CAM): https://arxiv.org/abs/2504.00060

Beside it, the Grad-CAM family (Grad-CAM https://arxiv.org/abs/1610.02391, Grad-CAM++
https://arxiv.org/abs/1710.11063, Score-CAM https://arxiv.org/abs/1910.01279) and faithfulness metrics.

    from core.cam import METHODS, CFCAMConfig, cf_cam, explain, run
"""

from core.cam.attributions import OTHER
from core.cam.cfcam import COMBINES, FILTERS, CFCAMConfig, CFCAMResult, cf_cam, channel_embedding, channel_table
from core.cam.compare import FORMULAS, Explanation, explain, run
from core.cam.gradcam import METHODS, grad_cam, grad_cam_pp, score_cam
from core.cam.images import decode_image
from core.cam.metrics import METRICS, SUBSTRATES, MetricsProgress

__all__ = [
    "COMBINES",
    "FILTERS",
    "FORMULAS",
    "METHODS",
    "METRICS",
    "OTHER",
    "SUBSTRATES",
    "CFCAMConfig",
    "CFCAMResult",
    "Explanation",
    "MetricsProgress",
    "cf_cam",
    "channel_embedding",
    "channel_table",
    "decode_image",
    "explain",
    "grad_cam",
    "grad_cam_pp",
    "run",
    "score_cam",
]
