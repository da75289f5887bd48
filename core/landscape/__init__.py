"""Loss landscapes and Hessian analysis (LLA): https://arxiv.org/abs/2412.10146

Loss surfaces on exact grids along filter-normalized random axes (Li et al., https://arxiv.org/abs/1712.09913)
or Hessian eigenvector axes; the Hessian's extreme eigenpairs (Lanczos), density (SLQ) and trace
(Hutchinson, Hutch++); and LLA's generalization criteria. Everything takes a loss closure
``loss_fn(params)`` and a dict of parameters; :func:`loss_fn_for` makes one from a model, safe to share
between threads. Models shared by an app are only read.

>>> import torch
>>> model = torch.nn.Sequential(torch.nn.Linear(4, 3))
>>> loss_fn, params = loss_fn_for(model, torch.ones(8, 4), torch.zeros(8, dtype=torch.long)), params_of(model)
>>> surface(loss_fn, params, random_directions(params, seed=0), n=5).loss.shape
torch.Size([5, 5])
"""

from core.landscape.criteria import criteria
from core.landscape.directions import random_directions
from core.landscape.exact import exact_spectrum
from core.landscape.functional import loss_fn_for, params_of
from core.landscape.lanczos import eigenpairs, spectral_density
from core.landscape.plane import plane
from core.landscape.summary import spectrum_summary
from core.landscape.surface import refine, refine_sizes, surface
from core.landscape.trace import hessian_trace, layer_spectra
from core.landscape.trajectory import project

__all__ = [
    "criteria",
    "eigenpairs",
    "exact_spectrum",
    "hessian_trace",
    "layer_spectra",
    "loss_fn_for",
    "params_of",
    "plane",
    "project",
    "random_directions",
    "refine",
    "refine_sizes",
    "spectral_density",
    "spectrum_summary",
    "surface",
]
