"""The standard black-box optimizers on the same problems, budgets and seeds: CMA-ES, CBO, and NOMAD's MADS.

CMA-ES (``cma``, https://arxiv.org/abs/1604.00772) and CBO (``core.cbo``) yield the same
:class:`~core.blackbox.search.SearchState` records as the lab's own methods, one per generation or swarm step,
so one plotting and profiling path serves all of them. NOMAD (``PyNomadBBO``, MADS) is driven by callbacks, so
it returns its whole history; at ~10 ms of overhead per evaluation it is an offline reference, not a live view.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from core import cbo
from core.blackbox.search import SearchState, check_run
from core.errors import OptiscopeError, check_int, check_range

CMA_SIGMA = 0.3  # initial step size as a fraction of the box (cma's advice: about a quarter to a third of it)
CBO_PARTICLES = 50
CBO_CONFIG = cbo.CBOConfig(alpha=1e5, lam=1.0, sigma=0.8, dt=0.1)  # a sharp consensus: the swarm's best leads


def _state(problem, step, u_best, value, evaluations, success, points_u, values) -> SearchState:
    return SearchState(
        step=step,
        x=problem.to_box(u_best).detach(),
        value=value,
        evaluations=evaluations,
        gradients=0,
        poll_size=float("nan"),
        mesh_size=float("nan"),
        attack_radius=float("nan"),
        success=success,
        points=problem.to_box(points_u).detach(),
        values=values.detach(),
        arrow=torch.zeros_like(u_best),
    )


def cma_es(
    problem,
    *,
    x0: torch.Tensor | None = None,
    budget: int = 2000,
    goal: float | None = None,
    sigma: float = CMA_SIGMA,
    seed: int = 0,
) -> Iterator[SearchState]:
    r"""CMA-ES (CMA): https://arxiv.org/abs/1604.00772

    ``cma.CMAEvolutionStrategy`` (ask/tell) in the unit cube with its bounds handling, its default population
    ``4 + 3 ln d``, step size ``sigma`` (box-relative) and a private ``numpy.random.Generator`` from ``seed``
    (cma's own seeding would reseed numpy's global RNG). One state per generation; the last generation is cut
    to what the budget has left.

    Shapes:
        x0: (d,) -> state.x: (d,), state.points: (popsize, d)

    >>> from core.blackbox.problems import landscape
    >>> last = list(cma_es(landscape("Quadratic", 2), budget=400))[-1]
    >>> last.value < 1e-6, last.evaluations <= 400
    (True, True)
    """
    u0, budget, seed, goal = check_run(problem, x0, budget, seed, goal)
    sigma = check_range("sigma", sigma, 1e-6, 1.0)
    return _cma_loop(problem, u0, budget, goal, sigma, seed)


def _cma_loop(problem, u0, budget, goal, sigma, seed) -> Iterator[SearchState]:
    import cma  # the anchor library, imported only when used

    rng = np.random.default_rng(seed)
    options = {
        "bounds": [0.0, 1.0],
        "seed": float("nan"),
        "verbose": -9,
        "verb_log": 0,
        "verb_disp": 0,
        "randn": lambda *shape: rng.standard_normal(shape),
    }
    es = cma.CMAEvolutionStrategy(u0.cpu().double().numpy(), sigma, options)
    with torch.no_grad():
        best_u, best = u0, float(problem(problem.to_box(u0)[None])[0])
    evaluations, step = 1, 0
    yield _state(problem, 0, best_u, best, evaluations, "start", u0[None][:0], u0[:0])
    while evaluations < budget and best > goal:
        asked = es.ask()
        points = torch.as_tensor(np.array(asked), dtype=u0.dtype, device=u0.device)[: budget - evaluations]
        with torch.no_grad():
            values = problem(problem.to_box(points))
        evaluations, step = evaluations + len(points), step + 1
        i = int(values.argmin())
        improved = float(values[i]) < best
        if improved:
            best_u, best = points[i], float(values[i])
        yield _state(problem, step, best_u, best, evaluations, "cma" if improved else "none", points, values)
        if len(points) < len(asked):
            return
        es.tell(asked, values.double().cpu().numpy().tolist())


def cbo_search(
    problem,
    *,
    x0: torch.Tensor | None = None,
    budget: int = 2000,
    goal: float | None = None,
    n_particles: int = CBO_PARTICLES,
    seed: int = 0,
) -> Iterator[SearchState]:
    r"""Consensus-based optimization (CBO): https://arxiv.org/abs/1604.05648

    ``core.cbo.run`` with ``n_particles`` drawn uniformly in the box from ``seed`` (``x0`` is one of them) and
    ``CBO_CONFIG``; particles are clamped to the box before each evaluation. Each swarm step costs
    ``n_particles`` evaluations; the state's best is the best particle seen so far.

    >>> from core.blackbox.problems import landscape
    >>> last = list(cbo_search(landscape("Quadratic", 2), budget=1000))[-1]
    >>> last.value < 1e-3, last.evaluations
    (True, 1000)
    """
    u0, budget, seed, goal = check_run(problem, x0, budget, seed, goal)
    n_particles = check_int("n_particles", n_particles, 2, budget)
    g = torch.Generator().manual_seed(seed)  # drawn on the CPU: one seed, one start on every device
    u = torch.rand(n_particles, u0.shape[0], generator=g, dtype=u0.dtype).to(u0.device)
    u[0] = u0
    steps = budget // n_particles - 1
    if steps < 1:
        raise OptiscopeError(f"Expected a `budget` of at least 2 swarms ({2 * n_particles} evaluations), got {budget}")
    objective = _Clamped(problem)
    return _cbo_loop(problem, objective, u, steps, goal, seed)


class _Clamped:
    """The problem seen from the unit cube, clamped to it (CBO's particles are unconstrained)."""

    def __init__(self, problem) -> None:
        self.problem = problem

    def __call__(self, u: torch.Tensor) -> torch.Tensor:
        return self.problem(self.problem.to_box(u.clamp(0.0, 1.0)))


def _cbo_loop(problem, objective, u, steps, goal, seed) -> Iterator[SearchState]:
    best_u, best, evaluations = u[0], float("inf"), 0
    with torch.no_grad():
        for s in cbo.run(objective, u, config=CBO_CONFIG, steps=steps, seed=seed):
            if s.step == 0:  # particle 0 is x0: its value is the start, as for every other method
                yield _state(problem, 0, u[0], float(s.energy[0]), 1, "start", u[:0], s.energy[:0])
            i = int(s.energy.argmin())
            improved = float(s.energy[i]) < best
            if improved:
                best_u, best = s.x[i].clamp(0.0, 1.0), float(s.energy[i])
            evaluations += len(s.energy)
            yield _state(
                problem,
                s.step + 1,
                best_u,
                best,
                evaluations,
                "cbo" if improved else "none",
                s.x.clamp(0.0, 1.0),
                s.energy,
            )
            if best <= goal:
                return


@dataclass(frozen=True)
class History:
    """Every evaluation of a callback-driven solver, in order.

    Shapes:
        values: (E,) the value of each evaluation; best: (E,) the best so far; x: (d,) the final best point
    """

    values: np.ndarray
    best: np.ndarray
    x: np.ndarray
    stop_reason: str


def nomad(problem, *, x0: torch.Tensor | None = None, budget: int = 500, seed: int = 0) -> History:
    r"""NOMAD's mesh-adaptive direct search (MADS): https://arxiv.org/abs/2104.11627

    ``PyNomad.optimize`` in the unit cube with ``MAX_BB_EVAL budget``, ``SEED seed``, ``DISPLAY_DEGREE 0``
    and NOMAD's default search steps; the problem is evaluated one point per callback.

    >>> from core.blackbox.problems import landscape
    >>> h = nomad(landscape("Quadratic", 2), budget=40)
    >>> len(h.values), bool(h.best[-1] < h.values[0] / 100)
    (40, True)
    """
    import PyNomad  # the anchor library (requirements-dev.txt), imported only when used

    u0, budget, seed, _ = check_run(problem, x0, budget, seed, None)
    values: list[float] = []

    def blackbox(point) -> int:
        u = torch.tensor([point.get_coord(i) for i in range(point.size())], dtype=u0.dtype, device=u0.device)
        with torch.no_grad():
            value = float(problem(problem.to_box(u)[None])[0])
        values.append(value)
        point.setBBO(repr(value).encode("UTF-8"))
        return 1

    d = u0.shape[0]
    params = ["BB_OUTPUT_TYPE OBJ", f"MAX_BB_EVAL {budget}", "DISPLAY_DEGREE 0", f"SEED {seed % 2**31}"]
    result = PyNomad.optimize(blackbox, u0.cpu().double().tolist(), [0.0] * d, [1.0] * d, params)
    if not values:
        raise OptiscopeError(f"NOMAD evaluated nothing: {result.get('stop_reason')}")
    best_u = torch.tensor(result["x_single_best"])
    x = problem.to_box(best_u.to(u0)).cpu().numpy()
    v = np.asarray(values)
    return History(v, np.minimum.accumulate(v), x, str(result["stop_reason"]))
