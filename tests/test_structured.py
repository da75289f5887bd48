"""Structured lab: the reference behaviours of Nutini et al. (greedy BCD), Hong et al. (AdaSketch-Newton) and
gradient sliding, against the numbers of the reference note (shared/notes/bilevel_and_constrained.md §4–6),
scipy and cvxpy."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch
from scipy.optimize import minimize

from core.errors import OptiscopeError
from core.runs import last_state
from core.structured import constrained, coordinate, sliding
from core.structured.constrained_problems import linear_qp
from core.structured.constrained_problems import make_problem as constrained_problem
from core.structured.coordinate_problems import make_problem as coordinate_problem
from core.structured.sketch import Sketch
from core.structured.sliding_problems import make_problem as sliding_problem

CD = coordinate.CoordinateConfig


def iterations(problem, seed: int = 0, **config) -> int:
    """Block updates to a relative gap of 1e-6 (the note's criterion)."""
    last = last_state(coordinate.run(problem, config=CD(steps=40_000, every=40_000, **config), seed=seed))
    assert last.relative_gap <= 1e-6, (config, last.relative_gap)
    return last.step


# --- Greedy block coordinate descent (Nutini et al.) --------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("dataset_seed", [1, 2])
def test_gsl_needs_at_most_a_fifth_of_random_iterations_on_dataset_a(dataset_seed):
    """Issue 17: GS-L <= 20% of uniform random selection's iterations (note: 8-14%); GS <= Random (note: 0.44-0.91)."""
    problem = coordinate_problem("least-squares", n=100, d=300, seed=dataset_seed)
    random = np.mean([iterations(problem, seed=s, rule="random") for s in range(3)])
    gsl, gs = iterations(problem, rule="gsl"), iterations(problem, rule="gs")
    assert gsl <= 0.20 * random
    assert gs <= random


def test_single_coordinate_counts_match_the_note_on_dataset_a_seed_1():
    """The note's table (exact coordinate minimisation, n = 100, p = 300, seed 1): GSL 390, GS 2736."""
    problem = coordinate_problem("least-squares", seed=1)
    assert iterations(problem, rule="gsl") == 390
    assert iterations(problem, rule="gs") == 2736


def test_variable_blocks_gsd_with_matrix_updates_halves_gs():
    """Note, tau = 5 VB with Hb: GSD (d_i = L_i, our `gsl` VB) 179 vs GS 772; GSD with row sums 310; GSQ ~ GSD."""
    problem = coordinate_problem("least-squares", seed=1)
    vb = {"block_size": 5, "partition": "variable", "update": "Hb"}
    gs, gsl, gsd, gsq = (iterations(problem, rule=r, **vb) for r in ("gs", "gsl", "gsd", "gsq"))
    assert (gs, gsl, gsd) == (772, 179, 310)
    assert gsl <= 0.5 * gs and gsq <= 0.5 * gs


def test_fixed_blocks_greedy_beats_cyclic_and_random():
    problem = coordinate_problem("least-squares", seed=1)
    fb = {"block_size": 5, "partition": "fixed", "update": "Hb"}
    greedy = iterations(problem, rule="gsl", **fb)
    assert greedy < iterations(problem, rule="cyclic", **fb) < iterations(problem, rule="random", **fb)


@pytest.mark.slow
def test_gs_q_solves_the_lasso_where_gs_stalls():
    """With an l1 term the greedy rule must score the prox step (GS-q); plain GS keeps picking zeros."""
    problem = coordinate_problem("lasso", seed=1)
    assert iterations(problem, rule="gs-q") < 0.1 * iterations(problem, rule="random")
    stalled = last_state(coordinate.run(problem, config=CD(rule="gs", steps=2000, every=2000)))
    assert stalled.relative_gap > 1e-3


def test_lasso_optimum_from_clarabel_is_a_lower_bound_reached_by_gs_q():
    problem = coordinate_problem("lasso", seed=1)
    states = list(coordinate.run(problem, config=CD(rule="gs-q", tol=1e-9, steps=5000)))
    assert min(s.gap for s in states) >= -1e-7 * abs(problem.f_star)
    assert states[-1].relative_gap <= 1e-9


def test_logistic_optimum_matches_scipy_lbfgs():
    problem = coordinate_problem("logistic", seed=1)
    x0 = np.zeros(problem.d)
    fun = lambda x: float(problem.smooth(torch.tensor(x)))  # noqa: E731
    jac = lambda x: problem.gradient(torch.tensor(x)).numpy()  # noqa: E731
    ref = minimize(fun, x0, jac=jac, method="L-BFGS-B", options={"ftol": 1e-15, "gtol": 1e-10, "maxiter": 20_000})
    assert problem.f_star == pytest.approx(ref.fun, rel=1e-7)
    assert problem.f_star <= ref.fun + 1e-12


def test_greedy_rules_read_the_whole_gradient_and_pick_the_gsl_coordinate():
    problem = coordinate_problem("quadratic-2d")
    first = list(coordinate.run(problem, config=CD(rule="gsl", steps=3)))[1]
    g = problem.gradient(problem.x0)
    assert first.block.tolist() == [int(torch.argmax(g.abs() / problem.curvature.diagonal().sqrt()))]
    assert first.coordinate_gradients == 2
    cyclic = list(coordinate.run(problem, config=CD(rule="cyclic", steps=4)))
    assert [s.block.tolist() for s in cyclic[1:]] == [[1], [0], [1], [0]]  # fixed blocks sorted by L_i = (10, 1)


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"config": CD(block_size=2, partition="fixed", blocks=[[0, 1], [1, 2, 3]])}, "partition the variables"),
        ({"config": CD(block_size=2, partition="fixed", blocks=[[0, 1]])}, "partition the variables"),
        ({"config": CD(rule="gs-q")}, "without an l1 term"),
        ({"config": CD(block_size=5)}, "block_size"),
        ({"x0": torch.zeros(3)}, "x0"),
        ({"config": CD(steps=10**9)}, "budget"),
        ({"device": "cuda"}, "the problem's"),
    ],
)
def test_coordinate_bad_input_is_refused_when_called(kwargs, needle):
    with pytest.raises(OptiscopeError, match=needle):
        coordinate.run(coordinate_problem("least-squares", n=20, d=4), **kwargs)


def test_matrix_update_is_refused_on_the_lasso_and_bad_configs_name_the_value():
    with pytest.raises(OptiscopeError, match="'Lb' on an l1 problem"):
        coordinate.run(coordinate_problem("lasso", n=20, d=40), config=CD(rule="gs-q", update="Hb"))
    with pytest.raises(OptiscopeError, match="`rule`.*'best'"):
        CD(rule="best")


# --- AdaSketch-Newton (Hong et al.) -------------------------------------------------------------


def test_hs7_reaches_the_solution_in_at_most_12_iterations_with_unit_steps_at_the_end():
    """Issue 17 / note §5(e): HS7 from (2, 2) -> (0, sqrt 3), f = -sqrt 3 within 1e-8; the last >= 3 steps have α = 1."""
    states = list(constrained.run(constrained_problem("hs7")))
    last = states[-1]
    assert last.status == "converged" and last.step <= 12  # note: 8
    assert torch.allclose(last.x, torch.tensor([0.0, math.sqrt(3)], dtype=torch.float64), atol=1e-8)
    assert last.objective == pytest.approx(-math.sqrt(3), abs=1e-8)
    assert all(s.alpha == 1.0 for s in states[-3:])
    assert states[-1].kkt / states[-2].kkt < 0.05  # fast local rate (note: 0.031, 0.001)
    assert last.total_sweeps == sum(s.sweeps for s in states) > 0


@pytest.mark.parametrize(
    ("name", "solver"), [("hs28", "kaczmarz"), ("hs48", "kaczmarz"), ("hs51", "gaussian"), ("hs6", "exact")]
)
def test_hock_schittkowski_problems_reach_their_solutions(name, solver):
    last = last_state(constrained.run(constrained_problem(name), config=constrained.SketchConfig(solver=solver)))
    assert last.status == "converged" and last.error < 1e-6 and last.violation < 1e-6


@pytest.mark.slow
def test_constrained_logistic_regression_matches_slsqp():
    """Issue 17: the sketched Newton solution equals scipy SLSQP's to 1e-6 (Kaczmarz sketches, the paper's solver)."""
    problem = constrained_problem("logreg")
    last = last_state(constrained.run(problem))
    assert last.status == "converged"
    cons = {
        "type": "eq",
        "fun": lambda x: problem.constraints(torch.tensor(x)).numpy(),
        "jac": lambda x: torch.func.jacrev(problem.constraints)(torch.tensor(x)).numpy(),
    }
    ref = minimize(
        lambda x: float(problem.objective(torch.tensor(x))),
        np.ones(problem.n),
        jac=lambda x: torch.func.grad(problem.objective)(torch.tensor(x)).numpy(),
        constraints=[cons],
        method="SLSQP",
        options={"ftol": 1e-14, "maxiter": 500},
    )
    assert ref.success
    assert np.abs(last.x.numpy() - ref.x).max() < 1e-6
    assert last.objective == pytest.approx(ref.fun, abs=1e-8)


@pytest.mark.parametrize("solver", ["kaczmarz", "gaussian"])
def test_sketch_solvers_match_numpy_solve(solver):
    gen = torch.Generator().manual_seed(0)
    k = torch.randn(12, 12, generator=gen, dtype=torch.float64) + 4 * torch.eye(12, dtype=torch.float64)
    b = torch.randn(12, generator=gen, dtype=torch.float64)
    sketch = Sketch(k, b, solver, torch.Generator().manual_seed(1))
    sketch.sweep(1e-10, 10**6)
    assert sketch.residual_norm <= 1e-10 and 0 < sketch.sweeps < 10**6
    np.testing.assert_allclose(sketch.solution().numpy(), np.linalg.solve(k.numpy(), b.numpy()), atol=1e-8)


def test_decaying_theta_solves_more_accurately_per_iteration():
    """θ_k -> 0 (superlinear variant) asks the sketch for more accuracy: more sweeps, never more iterations."""
    problem = constrained_problem("hs7")
    plain = list(constrained.run(problem))
    sharp = list(constrained.run(problem, config=constrained.SketchConfig(theta="decaying")))
    assert sharp[-1].total_sweeps > plain[-1].total_sweeps and sharp[-1].step <= plain[-1].step


def test_constrained_bad_input_names_the_problem():
    with pytest.raises(OptiscopeError, match="rank A = 1 < rank"):  # inconsistent
        linear_qp("bad", lambda x: x @ x, [[1.0, 1.0], [1.0, 1.0]], [1.0, 2.0], [0.0, 0.0])
    with pytest.raises(OptiscopeError, match="KKT matrix .* is singular"):  # redundant
        linear_qp("bad", lambda x: x @ x, [[1.0, 1.0], [2.0, 2.0]], [1.0, 2.0], [0.0, 0.0])
    with pytest.raises(OptiscopeError, match="misses the plane"):  # infeasible
        constrained_problem("logreg", radius=0.3)
    with pytest.raises(OptiscopeError, match="singular there"):  # ∇c(0, 0) = 0 for HS7
        constrained.run(constrained_problem("hs7"), x0=torch.zeros(2))
    with pytest.raises(OptiscopeError, match="`beta` between"):
        constrained.SketchConfig(beta=0.7)
    with pytest.raises(OptiscopeError, match="budget"):
        constrained.SketchConfig(steps=10_000, max_sweeps=10**6)


# --- Gradient sliding ---------------------------------------------------------------------------


def phase_ends(states):
    ends = {}
    for s in states[1:]:
        ends[s.phase] = s
    return [ends[p] for p in sorted(ends)][:-1]  # the last phase is cut by the stopping rule


def test_sliding_gradient_calls_grow_additively_and_subgradient_calls_multiplicatively():
    """Issue 17: per halving of the gap, +N ∇f calls (N = ceil(4 sqrt(L/μ)) = 36) but about ×2 h' calls."""
    problem = sliding_problem("tv-denoising")
    ends = phase_ends(list(sliding.run(problem, config=sliding.SlidingConfig(tol=2e-5))))
    assert len(ends) >= 8
    later = ends[4:]
    gaps = [s.gap for s in later]
    assert all(b <= 0.7 * a for a, b in zip(gaps, gaps[1:], strict=False))  # the gap keeps halving (measured ~0.55)
    assert {b.gradients - a.gradients for a, b in zip(ends, ends[1:], strict=False)} == {36}
    ratios = [
        (b.subgradients - a.subgradients) / (a.subgradients - p.subgradients)
        for p, a, b in zip(later, later[1:], later[2:], strict=False)
    ]
    assert all(1.6 <= r <= 2.5 for r in ratios), ratios


@pytest.mark.slow
def test_sliding_with_the_true_gap_needs_under_1_percent_of_the_subgradient_methods_gradients():
    """Note §6(e): GS reaches 1e-6 with <= 150 ∇f calls (measured 91); the prox-subgradient method needs > 100x."""
    problem = sliding_problem("tv-denoising")
    gs = last_state(sliding.run(problem, config=sliding.SlidingConfig(tol=1e-6, restart="oracle")))
    assert gs.status == "converged" and gs.gradients <= 150
    sub = sliding.SlidingConfig(method="subgradient", tol=1e-6, steps=100 * 150, every=100 * 150)
    assert last_state(sliding.run(problem, config=sub)).status == "max steps"


def test_sliding_optimum_from_clarabel_is_never_beaten():
    problem = sliding_problem("tv-denoising")
    states = list(sliding.run(problem, config=sliding.SlidingConfig(method="subgradient", steps=2000, tol=0)))
    assert min(s.gap for s in states) > -1e-9
    assert states[-1].relative_gap < 1e-3
    assert all(s.gradients == s.subgradients == s.step for s in states)


def test_sliding_bad_input_and_budget():
    problem = sliding_problem("tv-denoising")
    with pytest.raises(OptiscopeError, match="x0"):
        sliding.run(problem, x0=torch.zeros(3))
    with pytest.raises(OptiscopeError, match="budget"):
        sliding.SlidingConfig(max_subgradients=10**9)
    with pytest.raises(OptiscopeError, match="`restart`"):
        sliding.SlidingConfig(restart="never")
    capped = last_state(sliding.run(problem, config=sliding.SlidingConfig(max_subgradients=500, tol=0)))
    assert capped.status == "subgradient budget spent" and capped.subgradients == 500


# --- The contract: eager validation, frozen detached states, devices -----------------------------


@pytest.mark.parametrize(
    "make_run",
    [
        lambda: coordinate.run(coordinate_problem("quadratic-2d"), config=CD(steps=5)),
        lambda: constrained.run(constrained_problem("hs7")),
        lambda: sliding.run(sliding_problem("tv-denoising"), config=sliding.SlidingConfig(steps=5)),
    ],
)
def test_states_are_frozen_and_never_mutated(make_run):
    states = list(make_run())
    first_x = states[0].x.clone()
    assert states[0].step == 0 and [s.step for s in states] == sorted({s.step for s in states})
    with pytest.raises(dataclasses.FrozenInstanceError):
        states[0].step = 1
    assert torch.equal(states[0].x, first_x) and not states[-1].x.requires_grad


@pytest.mark.gpu
def test_core_paths_on_cuda_match_cpu(cuda):
    """Same iterates on cuda and cpu (float64; sketches drawn on the CPU generator), to 1e-9."""
    for device in ("cpu", cuda):
        cd = last_state(coordinate.run(coordinate_problem("least-squares", device=device), config=CD(steps=300)))
        cn = last_state(constrained.run(constrained_problem("hs7", device=device)))
        sl = last_state(
            sliding.run(sliding_problem("tv-denoising", device=device), config=sliding.SlidingConfig(tol=1e-4))
        )
        if device == "cpu":
            ref = (cd, cn, sl)
    for got, want in zip((cd, cn, sl), ref, strict=True):
        assert got.x.device.type == "cuda"
        torch.testing.assert_close(got.x.cpu(), want.x, atol=1e-9, rtol=1e-9)
        assert got.step == want.step
