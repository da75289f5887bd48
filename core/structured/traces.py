"""Compact records of runs for plotting: numpy curves, paths and the coordinate-pick heat strip."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, fields

import numpy as np
import torch

from core.structured import constrained, constrained_problems, coordinate_problems, sliding, sliding_problems
from core.structured.coordinate import CoordinateConfig, run
from core.structured.coordinate_problems import CoordinateProblem


@dataclass(frozen=True)
class RuleTrace:
    """One selection rule's run on one problem.

    Shapes (T yielded steps, B bins of steps, d coordinates):
        step, relative_gap, reads: (T,); path: (T, 2) (the first two coordinates); strip: (B, d)
    """

    step: np.ndarray
    relative_gap: np.ndarray
    reads: np.ndarray  # partial derivatives read so far
    path: np.ndarray
    strip: np.ndarray  # how often each coordinate (columns sorted by L_i, ascending) was updated per bin
    order: np.ndarray  # (d,) the coordinate of each strip column


def trace_rule(problem: CoordinateProblem, config: CoordinateConfig, *, seed: int = 0, bins: int = 60) -> RuleTrace:
    """Run one rule with ``every = 1`` and keep the curves, the path and the heat strip.

    >>> from core.structured.coordinate_problems import make_problem
    >>> t = trace_rule(make_problem("quadratic-2d"), CoordinateConfig(rule="cyclic", steps=10), bins=5)
    >>> t.strip.shape, int(t.strip.sum())
    ((5, 2), 10)
    """
    config = CoordinateConfig(**{**_as_dict(config), "every": 1})
    order = torch.argsort(problem.curvature.diagonal().cpu(), stable=True)
    rank = torch.empty_like(order).scatter_(0, order, torch.arange(order.numel()))
    strip = np.zeros((bins, problem.d))
    rows: dict[str, list] = {"step": [], "gap": [], "reads": [], "path": []}
    for s in run(problem, config=config, seed=seed):
        rows["step"].append(s.step)
        rows["gap"].append(s.relative_gap)
        rows["reads"].append(s.coordinate_gradients)
        rows["path"].append(s.x[:2].cpu().numpy())
        if s.block.numel():
            np.add.at(strip[min((s.step - 1) * bins // config.steps, bins - 1)], rank[s.block.cpu()].numpy(), 1)
    return RuleTrace(
        np.array(rows["step"]),
        np.array(rows["gap"]),
        np.array(rows["reads"]),
        np.stack(rows["path"]),
        strip,
        order.numpy(),
    )


def _as_dict(config) -> dict:
    return {f.name: getattr(config, f.name) for f in fields(config)}


def table(states: Iterable, names: Iterable[str]) -> dict[str, np.ndarray]:
    """``{name: array over states}`` for the scalar fields ``names`` of a run's states."""
    states = list(states)
    return {name: np.array([getattr(s, name) for s in states]) for name in names}


def contour_grid(fn: Callable[[torch.Tensor], torch.Tensor], box: tuple[float, float, float, float], n: int = 80):
    """``fn`` on an n x n grid of ``box = (x0, x1, y0, y1)``: (xs (n,), ys (n,), values (n, n), rows = y).

    >>> xs, ys, z = contour_grid(lambda p: p @ p, (-1, 1, -1, 1), 3)
    >>> z.tolist()
    [[2.0, 1.0, 2.0], [1.0, 0.0, 1.0], [2.0, 1.0, 2.0]]
    """
    xs = torch.linspace(box[0], box[1], n, dtype=torch.float64)
    ys = torch.linspace(box[2], box[3], n, dtype=torch.float64)
    points = torch.stack(torch.meshgrid(xs, ys, indexing="xy"), -1).reshape(-1, 2)  # (n*n, 2)
    values = torch.func.vmap(fn)(points).reshape(n, n)
    return xs.numpy(), ys.numpy(), values.numpy()


def compare_rules(
    name: str,
    *,
    rules: Iterable[str] | None = None,
    block_size: int = 1,
    partition: str = "variable",
    update: str = "Lb",
    steps: int = 1000,
    seed: int = 0,
    device=None,
) -> dict[str, RuleTrace]:
    """:func:`trace_rule` for each rule on a registry problem; by default the rules that fit it (GS-q only with l1,
    GSQ only for blocks).

    >>> sorted(compare_rules("quadratic-2d", rules=["gs", "gsl"], steps=5))
    ['gs', 'gsl']
    """
    problem = coordinate_problems.make_problem(name, device=device)
    smooth_rules = ("random", "cyclic", "gs", "gsl", "gsd") + (
        ("gsq",) if block_size > 1 else ()
    )  # GSQ = GSL for τ = 1
    rules = rules or (("random", "gs", "gsl", "gs-q") if problem.l1 > 0 else smooth_rules)
    config = {"block_size": block_size, "partition": partition, "update": update, "steps": steps}
    return {r: trace_rule(problem, CoordinateConfig(rule=r, **config), seed=seed) for r in rules}


def newton_trace(
    name: str, *, solver: str = "kaczmarz", theta: str = "constant", radius: float = 1.0, seed: int = 0, device=None
) -> tuple[dict[str, np.ndarray], np.ndarray, str]:
    """AdaSketch-Newton on a registry problem: ({field: per-iteration values}, the iterates' first two coordinates, status)."""
    problem = constrained_problems.make_problem(name, radius=radius, device=device)
    config = constrained.SketchConfig(solver=solver, theta=theta)
    states = list(constrained.run(problem, config=config, seed=seed))
    names = ("step", "objective", "kkt", "violation", "error", "alpha", "sweeps", "accuracy", "eta1", "eta2")
    return table(states, names), np.stack([s.x[:2].cpu().numpy() for s in states]), states[-1].status


def sliding_traces(*, tol: float, restart: str = "halving", steps: int = 20_000, device=None) -> dict[str, dict]:
    """Gradient sliding and the proximal subgradient method on the TV problem: {method: {field: values}}."""
    problem = sliding_problems.make_problem("tv-denoising", device=device)
    names = ("gradients", "subgradients", "relative_gap", "phase")
    return {
        m: table(
            sliding.run(problem, config=sliding.SlidingConfig(method=m, tol=tol, steps=steps, restart=restart)), names
        )
        for m in sliding.METHODS
    }
