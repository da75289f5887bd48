"""The hyper-parameters of the CBO dynamics, one flat validated config, and the lab's work budget."""

from __future__ import annotations

from dataclasses import dataclass

from core.errors import check_choice, check_int, check_positive, check_range

# Noise models D(x - v), by registry key (the URL value) -> display label.
NOISES = {"anisotropic": "anisotropic: D = diag(x − v)", "isotropic": "isotropic: D = ‖x − v‖ I"}

MAX_ALPHA = (
    1e15  # alpha * (f - min f) stays finite for energy gaps up to ~1e290; the Laplace limit is reached long before
)

MAX_RATE = 1e6  # lam and sigma: far past any stable step, still finite in float32 arithmetic
MAX_COORDINATES = 1e8  # particle coordinates M·N·d one start may hold (400 MB in float32)

MAX_STEPS = 10_000  # steps of one run: the paper's longest (GD and Langevin); each step costs ~1 ms of Python at least

# Work budget of one call, in coordinate updates M·N·d·steps (runs × particles × dimensions × steps):
# about a minute on one CPU core, a few seconds on a GPU; every CBO-family iterator refuses more.
PARTICLE_STEP_BUDGET = 2e9


def check_alpha(name: str, alpha: float) -> float:
    """An inverse temperature in [0, MAX_ALPHA]."""
    return check_range(name, alpha, 0.0, MAX_ALPHA)


def check_steps(name: str, steps: int) -> int:
    """A number of steps (or of steps between yielded states) in [1, MAX_STEPS]."""
    return check_int(name, steps, 1, MAX_STEPS)


@dataclass(frozen=True)
class CBOConfig:
    r"""Consensus-based optimization (CBO): https://arxiv.org/abs/1604.05648

    The hyper-parameters of ``dX = -lam (X - v_alpha) dt + sigma D(X - v_alpha) dW``, checked when built.

    >>> CBOConfig(sigma=-1.0)
    Traceback (most recent call last):
    core.errors.OptiscopeError: Expected `sigma` between 0 and 1e+06, but got -1.0
    """

    alpha: float = 30.0  # inverse temperature of the consensus weights; 1e15 picks the best particle
    lam: float = 1.0  # drift toward the consensus point
    sigma: float = 1.0  # noise strength
    dt: float = 0.01  # Euler-Maruyama time step
    noise: str = "anisotropic"  # a key of NOISES; anisotropic (Carrillo et al. 2021) does not pay a factor d
    alpha_growth: float = 1.0  # CBXpy's schedule alpha <- min(alpha * growth, alpha_max); 1 keeps alpha fixed
    alpha_max: float = 1e5  # cap of the schedule (CBXpy's optimize() grows alpha by 1.05 up to 1e5)

    def __post_init__(self) -> None:
        checked = {
            "alpha": check_alpha("alpha", self.alpha),
            "lam": check_range("lam", self.lam, 0.0, MAX_RATE),
            "sigma": check_range("sigma", self.sigma, 0.0, MAX_RATE),
            "dt": check_range("dt", check_positive("dt", self.dt), 0.0, 1.0),
            "noise": check_choice("noise", self.noise, NOISES),
            "alpha_growth": check_range("alpha_growth", self.alpha_growth, 1.0, 10.0),
            "alpha_max": check_alpha("alpha_max", self.alpha_max),
        }
        for name, value in checked.items():  # as floats: a config read from a URL may hold "3"
            object.__setattr__(self, name, value)


DEFAULT_CONFIG = CBOConfig()

# The page's formulas (LaTeX), next to the code that computes them.
FORMULAS = {
    "swarm": (
        r"v_\alpha = \frac{\sum_i x_i e^{-\alpha f(x_i)}}{\sum_i e^{-\alpha f(x_i)}}",
        r"x_i \leftarrow x_i - \lambda\,dt\,(x_i - v_\alpha) + \sigma\sqrt{dt}\,D(x_i - v_\alpha)\,\xi_i",
    ),
    "decay": (
        r"\tfrac12\mathbb E\|X_t - x^*\|^2 \sim e^{-(2\lambda - d\sigma^2)t}\ \text{(isotropic)}",
        r"\tfrac12\mathbb E\|X_t - x^*\|^2 \sim e^{-(2\lambda - \sigma^2)t}\ \text{(anisotropic)}",
    ),
    "weights": (
        r"w_i = \frac{e^{-\alpha (f_i - \min f)}}{\sum_j e^{-\alpha (f_j - \min f)}}",
        r"\mathrm{ESS} = 1 / \textstyle\sum_i w_i^2",
    ),
    "phase": (r"\text{success} \iff \|v_\alpha - x^*\|_\infty < 0.25",),
}
