"""Training the denoiser: guided distillation, Self-NPO, and denoising score matching as kernel regression.

On Distillation of Guided Diffusion Models: https://arxiv.org/abs/2210.03142 — a w-conditioned student, then
progressive distillation 32 → 16 → 8 → 4 steps. Self-NPO: https://arxiv.org/abs/2505.11777 — a negative
model fine-tuned on the model's own guided predictions. Neural-network score estimation (DSM as regression):
https://arxiv.org/abs/2401.15604 — a wide two-layer network tracks its neural tangent kernel regression.
Everything trains on the 2-D mixture of ``core.guidance``, whose exact denoiser is the truth.

    >>> from core.guidance import GaussianMixtureDenoiser
    >>> from core.runs import last_state
    >>> student = EDMMLP(width=16, w_range=(1.0, 5.0))
    >>> last = last_state(run(student, GaussianMixtureDenoiser(), steps=3, n_samples=8))
    >>> last.samples.shape
    torch.Size([8, 2])
"""

from .mlp import EDMMLP
from .regression import KERNELS, kernel_curve, make_problem, regress
from .sampling import scores
from .train import OBJECTIVES, TrainConfig, run, run_stages

__all__ = [
    "EDMMLP",
    "KERNELS",
    "OBJECTIVES",
    "TrainConfig",
    "kernel_curve",
    "make_problem",
    "regress",
    "run",
    "run_stages",
    "scores",
]
