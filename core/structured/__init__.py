"""Structured first-order methods: greedy coordinate choice, sketched constrained Newton, gradient sliding.

- Greedy block coordinate descent (GS, GSL, GSD, GSQ, GS-q): https://arxiv.org/abs/1712.08859
- Adaptive sketched Newton on the exact augmented Lagrangian (AdaSketch-Newton): https://arxiv.org/abs/2305.18379
- Gradient sliding, restarted (the restart-free schedule of https://arxiv.org/abs/2602.04161 could not be read)

Each method is a ``run(problem, *, x0=None, config=...)`` iterator in its own module, exported under the
method's name, beside a problem registry:

>>> from core.structured import coordinate_descent, coordinate_problem
>>> from core.runs import last_state
>>> last = last_state(coordinate_descent(coordinate_problem("quadratic-2d")))
>>> last.relative_gap <= 1e-6
True
"""

from core.structured.constrained import SketchConfig
from core.structured.constrained import run as sketched_newton
from core.structured.constrained_problems import make_problem as constrained_problem
from core.structured.coordinate import CoordinateConfig
from core.structured.coordinate import run as coordinate_descent
from core.structured.coordinate_problems import make_problem as coordinate_problem
from core.structured.sliding import SlidingConfig
from core.structured.sliding import run as gradient_sliding
from core.structured.sliding_problems import make_problem as composite_problem

__all__ = [
    "CoordinateConfig",
    "SketchConfig",
    "SlidingConfig",
    "composite_problem",
    "constrained_problem",
    "coordinate_descent",
    "coordinate_problem",
    "gradient_sliding",
    "sketched_newton",
]
