"""Loss landscapes along random and Hessian axes, the Hessian spectrum and LLA's criteria (arXiv 2412.10146)."""

from core.landscape.criteria import criteria
from core.landscape.directions import NORMS, normalize, random_direction, random_directions
from core.landscape.exact import ExactSpectrum, exact_spectrum, hessian_matrix
from core.landscape.functional import ModelLoss, flatten, loss_fn_for, params_of, unflatten
from core.landscape.hvp import HessianOperator, hvp
from core.landscape.lanczos import EigenPairs, SpectralDensity, eigenpairs, spectral_density
from core.landscape.surface import Surface, refine, surface
from core.landscape.trace import LayerSpectrum, TraceEstimate, hessian_trace, layer_spectra
from core.landscape.trajectory import project

__all__ = [
    "NORMS",
    "EigenPairs",
    "ExactSpectrum",
    "HessianOperator",
    "LayerSpectrum",
    "ModelLoss",
    "SpectralDensity",
    "Surface",
    "TraceEstimate",
    "criteria",
    "eigenpairs",
    "exact_spectrum",
    "flatten",
    "hessian_matrix",
    "hessian_trace",
    "hvp",
    "layer_spectra",
    "loss_fn_for",
    "normalize",
    "params_of",
    "project",
    "random_direction",
    "random_directions",
    "refine",
    "spectral_density",
    "surface",
    "unflatten",
]
