"""Cluster Filter Class Activation Mapping (CF-CAM): https://arxiv.org/abs/2504.00060

Beside it, the Grad-CAM family (Grad-CAM https://arxiv.org/abs/1610.02391, Grad-CAM++
https://arxiv.org/abs/1710.11063, Score-CAM https://arxiv.org/abs/1910.01279, in ``METHODS``), other
explanations (``OTHER``) and faithfulness metrics.

    from core.cam import METHODS, CFCAMConfig, cf_cam, explain, run
"""

from core.cam.attributions import OTHER
from core.cam.cfcam import COMBINES, FILTERS, CFCAMConfig, cf_cam, channel_table
from core.cam.compare import FORMULAS, explain, run
from core.cam.gradcam import METHODS
from core.cam.images import decode_image
from core.cam.metrics import METRICS, SUBSTRATES

__all__ = [
    "COMBINES",
    "FILTERS",
    "FORMULAS",
    "METHODS",
    "METRICS",
    "OTHER",
    "SUBSTRATES",
    "CFCAMConfig",
    "cf_cam",
    "channel_table",
    "decode_image",
    "explain",
    "run",
]
