"""Reference behaviours of the bilevel lab (issue 16; notes/bilevel_and_constrained.md §1-3) and its input checks."""

from __future__ import annotations

import dataclasses
import inspect
import math

import numpy as np
import pytest
import scipy.sparse.linalg as spla
import torch

from core.bilevel import (
    BOREPConfig,
    LVHBAConfig,
    RootSpec,
    bo_rep,
    coupled_toy,
    custom_root,
    distill,
    hypergradient_errors,
    load_task,
    lv_hba,
    quartic_toy,
    step_size_wall,
)
from core.bilevel.borep import first_below
from core.bilevel.distill import _outer, newton, optimality
from core.bilevel.implicit import root_vjp
from core.bilevel.linear_solve import cg, gmres, normal_cg
from core.bilevel.tuning import closed_form_hypergradient, exact_solution, hypergradient, inner_gradient, inner_solve
from core.data.digits import load_digits_split
from core.errors import OptiscopeError
from core.runs import last_state

D = torch.float64
THETA = -4.0  # λ = e⁻⁴ on standardized diabetes: cond(XᵀX/n + λI) = 161.7


# --- §1 implicit differentiation ------------------------------------------------------------------


def test_closed_form_matches_the_notes_value():
    assert closed_form_hypergradient(load_task("ridge"), THETA) == pytest.approx(-58.99723653, rel=1e-9)


@pytest.mark.parametrize("solve", ["cg", "normal_cg", "gmres", "dense"])
def test_implicit_hypergradient_of_ridge_equals_the_closed_form(solve):
    task = load_task("ridge")
    g = hypergradient(task, THETA, steps=0, init=exact_solution(task, THETA), spec=RootSpec(solve=solve, tol=1e-13))
    assert abs(g - closed_form_hypergradient(task, THETA)) / 58.99723653 <= 1e-8


def test_custom_root_through_autograd_matches_the_closed_form():
    task = load_task("ridge")
    x, y = task.x_train, task.y_train

    def solver(init, theta, x_, y_, kind):  # a black box: a direct solve autograd never sees
        return exact_solution(task, float(theta))

    theta = torch.tensor(THETA, dtype=D, requires_grad=True)
    w = custom_root(inner_gradient, spec=RootSpec(solve="cg"))(solver)(x.new_zeros(10), theta, x, y, "ridge")
    (((task.x_val @ w - task.y_val) ** 2).mean()).backward()
    assert float(theta.grad) == pytest.approx(closed_form_hypergradient(task, THETA), rel=1e-10)


NOTE_TABLE = {  # k: (implicit rel. error, unrolled rel. error), notes §1(b)
    100: (2.2e-2, 0.125),
    300: (1.6e-2, 4.5e-2),
    1000: (2.1e-4, 1.65e-3),
    3000: (8.6e-10, 1.9e-8),
}


def test_inexact_inner_solve_implicit_beats_unrolled_as_in_the_note():
    out = hypergradient_errors(load_task("ridge"), THETA, tuple(NOTE_TABLE))
    assert (out.errors["implicit"] < out.errors["unrolled"]).all()
    for i, (implicit, unrolled) in enumerate(NOTE_TABLE.values()):
        assert out.errors["implicit"][i] == pytest.approx(implicit, rel=0.1)
        assert out.errors["unrolled"][i] == pytest.approx(unrolled, rel=0.1)
    # a finite difference of the same truncated solver differentiates what unrolling differentiates
    np.testing.assert_allclose(out.values["finite_difference"][:3], out.values["unrolled"][:3], rtol=1e-7)
    assert out.distance[0] == pytest.approx(3.78, rel=0.01)


def test_logistic_hypergradient_matches_central_differences_of_the_exact_solution():
    task, h = load_task("logistic"), 1e-5
    exact = hypergradient(task, -3.0, steps=0, init=exact_solution(task, -3.0), spec=RootSpec(solve="dense"))
    val = [
        float(torch.nn.functional.softplus(-task.y_val * (task.x_val @ exact_solution(task, -3.0 + s))).mean())
        for s in (h, -h)
    ]
    assert exact == pytest.approx((val[0] - val[1]) / (2 * h), rel=1e-6)


def _spd(n, seed):
    a = torch.randn(n, n, generator=torch.Generator().manual_seed(seed), dtype=D)
    return a @ a.T + n * torch.eye(n, dtype=D), torch.randn(
        n, generator=torch.Generator().manual_seed(seed + 1), dtype=D
    )


def test_cg_matches_scipy():
    a, b = _spd(30, 0)
    ours = cg(lambda u: a @ u, b, tol=1e-12)
    ref, info = spla.cg(a.numpy(), b.numpy(), rtol=1e-12, atol=0.0)
    assert info == 0 and ours.residual < 1e-11
    np.testing.assert_allclose(ours.x.numpy(), ref, rtol=1e-9)


def test_gmres_and_normal_cg_solve_a_nonsymmetric_system_like_scipy():
    a, b = _spd(40, 2)
    a = a + 3.0 * torch.triu(torch.ones(40, 40, dtype=D), 1)  # not symmetric
    ref, info = spla.gmres(a.numpy(), b.numpy(), rtol=1e-12, atol=0.0, restart=30, maxiter=20)
    assert info == 0
    np.testing.assert_allclose(gmres(lambda u: a @ u, b, tol=1e-12, maxiter=400).x.numpy(), ref, rtol=1e-8)
    normal = normal_cg(lambda u: a @ u, b, rmatvec=lambda u: a.T @ u, tol=1e-13, maxiter=400)
    np.testing.assert_allclose(normal.x.numpy(), np.linalg.solve(a.numpy(), b.numpy()), rtol=1e-7)


def test_distillation_hypergradient_matches_finite_differences():
    data = {k: v.double() if v.is_floating_point() else v for k, v in load_digits_split().items()}
    images = 0.1 * torch.randn(10, 8, 8, generator=torch.Generator().manual_seed(0), dtype=D)
    w, _ = newton(torch.zeros(65, 10, dtype=D), images, 0.1)
    wr = w.clone().requires_grad_(True)
    (v,) = torch.autograd.grad(_outer(wr, data["x_train"], data["y_train"]), wr)
    grad, solve = root_vjp(optimality, w, images, v, 0.1, spec=RootSpec(solve="cg"))
    assert solve.iterations < 30
    h, coords = 1e-5, [(0, 3, 4), (3, 2, 5), (7, 6, 1)]
    for c in coords:
        bump = torch.zeros_like(images)
        bump[c] = h
        ends = [_outer(newton(w, images + s * bump, 0.1)[0], data["x_train"], data["y_train"]) for s in (1, -1)]
        assert float(grad[c]) == pytest.approx(float(ends[0] - ends[1]) / (2 * h), rel=1e-5, abs=1e-9)


def test_distillation_learns_ten_images_that_classify_digits():
    states = list(distill(load_digits_split(), steps=10, every=5, seed=0))
    assert [s.step for s in states] == [0, 5, 10]
    assert states[0].test_accuracy < 0.2 and states[-1].test_accuracy > 0.85  # note: 0.100 -> 0.869 at step 10
    assert states[-1].images.shape == (10, 8, 8) and not states[-1].images.requires_grad


# --- §2 LV-HBA -----------------------------------------------------------------------------------


@pytest.mark.slow
def test_lv_hba_reaches_the_known_solution_and_multiplier():
    toy = coupled_toy()
    ones = torch.ones(300, dtype=D)
    states = {s.step: s for s in lv_hba(toy, 10 * ones[:100], 10 * ones[100:], steps=5000, every=1000)}
    assert states[2000].error_x < 0.08  # note: 0.0778
    assert states[5000].error_x == pytest.approx(0.0250, abs=0.002) and states[5000].error_x <= 0.03
    assert states[5000].error_y == pytest.approx(0.0113, abs=0.002)
    assert float(states[5000].multiplier) == pytest.approx(float(toy.multiplier_star), abs=1e-12)
    assert states[5000].violation < 1e-9
    assert states[5000].upper_value == pytest.approx(4.68, abs=0.02)
    assert states[5000].gradient_calls == 20_000


def test_lv_hba_closed_form_toy_gradients_match_autograd():
    toy, start = coupled_toy(), 10 * torch.ones(300, dtype=D)
    generic = dataclasses.replace(toy, upper_grads=None, lower_grads=None, constraint_vjp=None)
    fast, slow = (last_state(lv_hba(p, start[:100], start[100:], steps=200)) for p in (toy, generic))
    torch.testing.assert_close(fast.x, slow.x, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(fast.theta, slow.theta, rtol=1e-12, atol=1e-12)


def test_lv_hba_diverging_steps_are_a_message():
    ones = torch.ones(300, dtype=D)
    run = lv_hba(coupled_toy(), 10 * ones[:100], 10 * ones[100:], config=LVHBAConfig(alpha=5.0, eta=5.0), steps=2000)
    with pytest.raises(OptiscopeError, match="diverged.*lower `alpha`"):
        last_state(run)


# --- §3 BO-REP -----------------------------------------------------------------------------------

FAR = torch.tensor([[30.0, 40.0]] * 5, dtype=D)  # ‖∇Φ(x0)‖ = 2.7e4, five runs with their own oracle noise


@pytest.mark.slow
def test_bo_rep_converges_from_a_far_start_where_aid_diverges_for_every_step_size():
    hits = first_below(list(bo_rep(quartic_toy(), FAR, steps=1200, seed=0)), tol=0.1)
    assert (hits > 0).all() and (hits <= 1200).all()  # note: 1050-1116
    for lr in (0.05, 0.02, 0.005, 0.001):
        last = last_state(bo_rep(quartic_toy(), FAR, config=BOREPConfig.aid(lr), steps=3000, seed=0))
        assert bool(last.diverged.all()), lr


def test_closed_form_toy_oracles_match_autograd():
    toy = quartic_toy()
    generic = dataclasses.replace(toy, lower_grad_y=None, upper_grads=None, lower_hvps=None)
    fast, slow = (last_state(bo_rep(p, FAR[:2], steps=300, seed=1)) for p in (toy, generic))
    torch.testing.assert_close(fast.x, slow.x, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(fast.y, slow.y, rtol=1e-12, atol=1e-12)


def test_bo_rep_counts_oracles_like_the_note():
    last = last_state(bo_rep(quartic_toy(), FAR[:1], steps=3000, every=3000))
    assert (last.grad_g_calls, last.hvp_calls, last.grad_f_calls) == (7550, 6000, 3000)
    aid = last_state(
        bo_rep(quartic_toy(), torch.tensor([[0.5, 0.5]], dtype=D), config=BOREPConfig.aid(0.01), steps=300)
    )
    assert (aid.grad_g_calls, aid.hvp_calls, aid.grad_f_calls) == (300, 600, 300)


def test_bo_rep_is_deterministic_per_seed_and_states_are_immutable_records():
    a = list(bo_rep(quartic_toy(), FAR[:2], steps=20, seed=3))
    b = list(bo_rep(quartic_toy(), FAR[:2], steps=20, seed=3))
    assert all(torch.equal(s.x, t.x) for s, t in zip(a, b, strict=True))
    assert not torch.equal(a[-1].x, last_state(bo_rep(quartic_toy(), FAR[:2], steps=20, seed=4)).x)
    with pytest.raises(dataclasses.FrozenInstanceError):
        a[0].step = 5
    assert torch.equal(a[0].x, FAR[:2])  # the first state is not mutated by later steps


# --- bad input: messages, never a silent NaN -----------------------------------------------------


def test_singular_optimality_jacobian_is_refused_with_what_to_change():
    def solver(init, theta):
        return torch.stack([theta[0], init[1]])

    def singular(w, theta):  # ∂F/∂w = diag(1, 0): w[1] is not determined by the root condition
        return torch.stack([w[0] - theta[0], 0.0 * w[1]])

    theta = torch.tensor([1.0, 2.0], dtype=D, requires_grad=True)
    for solve in ("cg", "gmres", "normal_cg", "dense"):
        w = custom_root(singular, spec=RootSpec(solve=solve))(solver)(torch.zeros(2, dtype=D), theta)
        with pytest.raises(OptiscopeError, match="singular|ridge"):
            w.sum().backward()
    w = custom_root(singular, spec=RootSpec(solve="cg", ridge=1e-3))(solver)(torch.zeros(2, dtype=D), theta)
    w.sum().backward()
    assert torch.isfinite(theta.grad).all()


def test_non_converging_inner_solver_is_a_message():
    task = load_task("ridge")
    diverging = custom_root(inner_gradient)(lambda init, theta, *args: inner_solve(task, 10.0, 0) + 1e308 * 10)
    with pytest.raises(OptiscopeError, match="diverged.*Lower the inner step size"):
        diverging(torch.zeros(10, dtype=D), torch.tensor(THETA, dtype=D), task.x_train, task.y_train, "ridge")
    short = custom_root(inner_gradient, spec=RootSpec(root_tol=1e-6))(
        lambda init, theta, *a: inner_solve(task, THETA, 5)
    )
    with pytest.raises(OptiscopeError, match="did not converge.*Raise its iterations"):
        short(torch.zeros(10, dtype=D), torch.tensor(THETA, dtype=D), task.x_train, task.y_train, "ridge")


@pytest.mark.parametrize(
    ("call", "needle"),
    [
        (lambda: RootSpec(solve="qr"), "`solve`"),
        (lambda: hypergradient(load_task("ridge"), 0.0, steps=10**6), "`steps`"),
        (lambda: distill({"x_train": torch.zeros(3, 8, 8)}), "lacks"),
        (lambda: distill(load_digits_split(), lr=0.0), "`lr`"),
        (lambda: lv_hba(coupled_toy(), torch.zeros(100), torch.zeros(200), steps=0), "`steps`"),
        (lambda: LVHBAConfig(power=2.0), "`power`"),
        (lambda: bo_rep(quartic_toy(), torch.tensor([float("nan"), 1.0])), "finite"),
        (lambda: bo_rep(quartic_toy(), torch.zeros(10**6, 2), steps=100), "budget"),
        (lambda: BOREPConfig(momentum=1.0), "`momentum`"),
    ],
)
def test_bad_input_raises_before_the_first_step(call, needle):
    with pytest.raises(OptiscopeError, match=needle):
        call()


# --- devices -------------------------------------------------------------------------------------


@pytest.mark.gpu
def test_cuda_matches_cpu(cuda):
    task_cpu, task_gpu = load_task("ridge"), load_task("ridge", device=cuda)
    for steps in (100, 1000):
        cpu = hypergradient(task_cpu, THETA, steps=steps)
        assert hypergradient(task_gpu, THETA, steps=steps) == pytest.approx(cpu, rel=1e-9)
    a = last_state(bo_rep(quartic_toy(), FAR[:1], config=BOREPConfig(noise=0.0), steps=200))
    b = last_state(bo_rep(quartic_toy(), FAR[:1].to(cuda), config=BOREPConfig(noise=0.0), steps=200))
    torch.testing.assert_close(b.x.cpu(), a.x, rtol=1e-9, atol=1e-9)
    data = load_digits_split()
    s_cpu = last_state(distill(data, steps=5, every=5))
    s_gpu = last_state(distill({k: v.to(cuda) for k, v in data.items()}, steps=5, every=5))
    assert s_gpu.images.device.type == "cuda"
    assert s_gpu.test_accuracy == pytest.approx(s_cpu.test_accuracy, abs=0.02)
    torch.testing.assert_close(s_gpu.images.cpu(), s_cpu.images, rtol=1e-2, atol=1e-3)


# --- the run contract (core/README.md) for the lab's three processes ---------------------------------


def _processes():
    start = 10 * torch.ones(300, dtype=D)
    return {
        "distill": (distill, (load_digits_split(),), {"steps": 2}),
        "lv_hba": (lv_hba, (coupled_toy(), start[:100], start[100:]), {"steps": 2}),
        "bo_rep": (bo_rep, (quartic_toy(), FAR[:1]), {"steps": 2}),
    }


@pytest.mark.parametrize("name", ["distill", "lv_hba", "bo_rep"])
def test_processes_validate_when_called_and_refuse_nan_options(name):
    function, args, kwargs = _processes()[name]
    assert not inspect.isgeneratorfunction(function)
    states = function(*args, **kwargs)
    assert inspect.getgeneratorstate(states) == inspect.GEN_CREATED
    first = next(states)
    assert first.step == 0 and dataclasses.fields(first)[0].name == "step"
    options = [p for p in inspect.signature(function).parameters.values() if p.kind is p.KEYWORD_ONLY]
    numeric = [p.name for p in options if isinstance(p.default, (int, float)) and not isinstance(p.default, bool)]
    assert {"steps", "every"} <= set(numeric)
    for option in numeric:
        with pytest.raises(OptiscopeError, match=f"`{option}`"):
            function(*args, **{**kwargs, option: math.nan})


def fuzz_fixtures() -> dict:
    """Valid values by parameter name for tests/test_fuzz.py's FIXTURES["bilevel"] (``from test_bilevel import ...``).

    With these, every ``core.bilevel`` entry point passed 40 corruptions each (13 entry points).
    """
    task, start = load_task("ridge"), torch.ones(9, dtype=D)
    return {
        "problem": quartic_toy(),
        "x0": FAR[:1],
        "starts": FAR[:1],
        "lrs": (0.05, 0.001),
        "lv_hba.problem": coupled_toy(n=3),
        "lv_hba.x0": start[:3],
        "lv_hba.y0": start[3:],
        "data": load_digits_split(),
        "task": task,
        "theta": THETA,
        "thetas": np.linspace(-8.0, 4.0, 5),
        "kind": "ridge",
        "hypergradient_errors.steps": (10, 30),
        "optimality_fn": inner_gradient,
        "step": lambda w, t: 0.5 * w + t,
        "init": torch.zeros(2, dtype=D),
        "steps": 3,
        "n": 3,
    }


def test_fuzz_fixtures_make_valid_calls():
    f = fuzz_fixtures()
    assert last_state(bo_rep(f["problem"], f["x0"], steps=f["steps"])).step == 3
    assert last_state(lv_hba(f["lv_hba.problem"], f["lv_hba.x0"], f["lv_hba.y0"], steps=f["steps"])).step == 3
    assert len(hypergradient_errors(f["task"], f["theta"], f["hypergradient_errors.steps"]).steps) == 2


def test_step_size_wall_of_aid():
    starts = torch.tensor([[6.0, 8.0], [15.0, 20.0], [30.0, 40.0]], dtype=D)
    wall = last_state(step_size_wall(quartic_toy(), starts, (0.05, 0.02, 0.005, 0.001), steps=1000))
    assert wall.done == 4 and wall.diverged[:, 2].all()  # from (30, 40): every step size diverges
    assert wall.diverged[0].all() and not wall.diverged[3, :2].any()  # η = 0.05 diverges everywhere, 0.001 only far
    assert (
        0 < wall.first_hit[1, 0] < 400 and wall.first_hit[3, 0] == -1
    )  # η = 0.02 converges from (6, 8); 0.001 too slow
