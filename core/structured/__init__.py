"""Structured first-order methods: greedy coordinate choice, sketched constrained Newton, gradient sliding.

- Greedy block coordinate descent (GS, GSL, GSD, GSQ, GS-q): https://arxiv.org/abs/1712.08859
- Adaptive sketched Newton on the exact augmented Lagrangian (AdaSketch-Newton): https://arxiv.org/abs/2305.18379
- Gradient sliding, restarted (the restart-free schedule of https://arxiv.org/abs/2602.04161 could not be read)

Each section is a module with its own ``run(problem, x0=None, *, config=...)`` iterator and problem registry:

>>> from core.structured import coordinate, coordinate_problems
>>> from core.runs import last_state
>>> last = last_state(coordinate.run(coordinate_problems.make_problem("quadratic-2d")))
>>> last.relative_gap <= 1e-6
True
"""

from core.structured import (
    constrained,
    constrained_problems,
    coordinate,
    coordinate_problems,
    sliding,
    sliding_problems,
)

__all__ = ["constrained", "constrained_problems", "coordinate", "coordinate_problems", "sliding", "sliding_problems"]
