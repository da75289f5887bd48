"""Reference behaviours of the CBO lab (issue 3; notes/cbo.md B1-B5) and its input checks."""

from __future__ import annotations

import dataclasses
import math
from concurrent.futures import ThreadPoolExecutor
from functools import partial

import numpy as np
import pytest
import torch

from core.cbo import (
    OBJECTIVES,
    CBOConfig,
    comparison_paths,
    consensus,
    consensus_hopping,
    consensus_weights,
    decay_rate,
    effective_sample_size,
    figures,
    gradient_descent,
    run,
    success_rate_grid,
    success_rates,
    trace,
)
from core.cbo.baselines import annealed_langevin
from core.cbo.consensus import variance_to
from core.cbo.objectives import quadratic, rastrigin
from core.cbo.state import success
from core.errors import OptiscopeError
from core.runs import last_state


def _rand(*shape, seed=0, lo=-3.0, hi=3.0, dtype=torch.float64):
    return lo + (hi - lo) * torch.rand(shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def _cbo(objective, x0, *, steps=1000, every=1, seed=0, device=None, **dynamics):
    """A CBO run with the dynamics given by keyword (the fields of CBOConfig)."""
    return run(objective, x0, config=CBOConfig(**dynamics), steps=steps, every=every, seed=seed, device=device)


def _last(it):
    return last_state(it)


# --- B1: the consensus point -------------------------------------------------------------------


def test_consensus_equals_brute_force_weighted_mean():
    x, fx = _rand(3, 50, 4), _rand(3, 50, seed=1, lo=0.0, hi=5.0)
    w = torch.exp(-2.0 * fx)
    brute = (w.unsqueeze(-1) * x).sum(-2) / w.sum(-1, keepdim=True)
    torch.testing.assert_close(consensus(x, fx, 2.0), brute)


def test_consensus_limits_of_alpha():
    x, fx = _rand(40, 3), _rand(40, seed=1, lo=0.0, hi=10.0)
    torch.testing.assert_close(consensus(x, fx, 1e-12), x.mean(0))
    torch.testing.assert_close(consensus(x, fx, 1e15), x[fx.argmin()])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_consensus_is_finite_for_huge_energies_and_any_alpha(dtype):
    x, fx = _rand(100, 5, dtype=dtype), 1e4 + 1e3 * _rand(100, seed=2, lo=0.0, hi=1.0, dtype=dtype)
    for alpha in np.logspace(-12, 15, 28):
        v = consensus(x, fx, float(alpha))
        assert torch.isfinite(v).all(), alpha
    assert float(effective_sample_size(consensus_weights(fx, 1e-12))) == pytest.approx(100, rel=1e-5)
    assert float(effective_sample_size(consensus_weights(fx, 1e15))) == pytest.approx(1.0)


# --- the run iterator ----------------------------------------------------------------------------


def test_run_shapes_for_single_and_batched_runs():
    f = OBJECTIVES["Rastrigin"]
    single = list(_cbo(f, _rand(30, 3), sigma=1.0, steps=5))
    assert [s.step for s in single] == list(range(6))
    s = single[-1]
    assert (
        s.x.shape == (30, 3) and s.energy.shape == (30,) and s.consensus.shape == (3,) and s.diverged_runs.shape == ()
    )
    b = _last(_cbo(f, _rand(4, 30, 3), sigma=1.0, steps=5))
    assert b.x.shape == (4, 30, 3) and b.energy.shape == (4, 30) and b.consensus.shape == (4, 3)
    assert b.time == pytest.approx(0.05)


def test_run_is_deterministic_for_a_seed_and_states_are_never_mutated():
    f, x0 = OBJECTIVES["Ackley"], _rand(5, 20, 2, dtype=torch.float32)
    a = list(_cbo(f, x0, sigma=2.0, steps=20, seed=3))
    b = list(_cbo(f, x0, sigma=2.0, steps=20, seed=3))
    c = _last(_cbo(f, x0, sigma=2.0, steps=20, seed=4))
    first_x = a[1].x.clone()
    assert all(torch.equal(s.x, t.x) for s, t in zip(a, b, strict=True))
    assert not torch.equal(a[-1].x, c.x)
    assert torch.equal(a[1].x, first_x)  # later steps did not write into yielded tensors
    assert torch.equal(a[0].x, x0)  # and x0 was copied, not stepped in place
    with pytest.raises(dataclasses.FrozenInstanceError):
        a[0].step = 7


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("noise", ["anisotropic", "isotropic"])
def test_a_large_swarm_stepped_block_by_block_is_the_same_run(monkeypatch, dtype, noise):
    import core.cbo.dynamics as dynamics

    x0 = _rand(1, 20_001, 7, dtype=dtype)  # 20,001 × 7 numbers: the last block is not a multiple of 16
    config = CBOConfig(alpha=30.0, sigma=0.5, noise=noise, alpha_growth=1.01)

    def states() -> list[tuple[torch.Tensor, torch.Tensor]]:
        steps = run(OBJECTIVES["Rastrigin"], x0, config=config, steps=12, every=5, seed=3)
        return [(s.x, s.consensus) for s in steps]

    assert dynamics._block_rows(x0) is not None
    blocked = states()
    monkeypatch.setattr(dynamics, "BLOCK_ELEMENTS", 10**12)  # one block: the whole swarm at once
    assert dynamics._block_rows(x0) is None
    whole = states()
    assert len(blocked) == len(whole) == 4
    assert all(torch.equal(a, c) and torch.equal(b, d) for (a, b), (c, d) in zip(blocked, whole, strict=True))
    assert not torch.equal(blocked[-1][0], x0[0])


def test_run_on_the_chosen_device_and_every():
    from core.device import pick_device

    device = pick_device()
    states = list(_cbo(quadratic, _rand(2, 10, 2, dtype=torch.float32), sigma=0.5, steps=10, every=4, device=device))
    assert [s.step for s in states] == [0, 4, 8, 10]
    assert states[-1].x.device.type == device.type


def test_run_matches_cbxpy_drift_exactly():
    import cbx.dynamics as cbx  # the anchor, from requirements-dev.txt

    x0 = np.random.default_rng(0).uniform(-3, 3, (2, 30, 3))

    def f(x):
        return (x**2 + 10 * (1 - np.cos(2 * np.pi * x))).sum(-1)

    dyn = cbx.CBO(
        f, x=x0.copy(), f_dim="3D", alpha=30.0, sigma=0.0, dt=0.01, lamda=1.0, noise="anisotropic", verbosity=0
    )
    for _ in range(20):
        dyn.step()
    ours = _last(_cbo(OBJECTIVES["Rastrigin"], torch.tensor(x0), alpha=30.0, sigma=0.0, dt=0.01, steps=20))
    np.testing.assert_allclose(ours.x.numpy(), dyn.x, atol=1e-12)


def test_alpha_schedule_is_off_by_default_and_capped():
    x0 = _rand(10, 2)
    assert _last(_cbo(quadratic, x0, alpha=2.0, steps=30)).alpha == 2.0
    states = list(_cbo(quadratic, x0, alpha=2.0, alpha_growth=1.5, alpha_max=50.0, steps=30))
    assert states[1].alpha == 3.0 and states[-1].alpha == 50.0


def test_divergence_stops_with_a_flag_and_finite_particles():
    # isotropic noise with 2 lam < d sigma^2 blows up: the run must say so, not yield NaN
    assert decay_rate(1.0, 10.1, d=20, noise="isotropic") < 0
    states = list(
        _cbo(OBJECTIVES["Rastrigin"], _rand(3, 40, 20, dtype=torch.float32), sigma=10.1, noise="isotropic", steps=5000)
    )
    last = states[-1]
    assert last.diverged and bool(last.diverged_runs.all()) and last.step < 5000
    assert all(torch.isfinite(s.x).all() and torch.isfinite(s.consensus).all() for s in states)


def test_one_diverging_run_is_frozen_while_the_others_continue():
    def cliff(x):  # +inf beyond |x| = 50
        f = quadratic(x)
        return torch.where(x.abs().amax(-1) > 50, torch.full_like(f, math.inf), f)

    # run 0: all particles on one point, so x - v = 0 and nothing moves; run 1: spread out, and isotropic
    # noise with 2 lam < d sigma^2 pushes it over the cliff
    x0 = torch.stack([torch.zeros(20, 2, dtype=torch.float64), _rand(20, 2)])  # (2, 20, 2)
    states = list(_cbo(cliff, x0, alpha=1e-3, sigma=3.0, steps=300, noise="isotropic", seed=0))
    last = states[-1]
    assert last.diverged and last.diverged_runs.tolist() == [False, True] and last.step == 300
    assert any(s.diverged for s in states[:-1])  # flagged at the step it happened, and the other run went on
    assert all(torch.isfinite(s.x).all() for s in states)


def test_a_blow_up_inside_an_unwatched_segment_is_replayed_and_flagged_at_its_step():
    # every=100: steps between states run without a per-step check; the blow-up is found at the segment's end and
    # the segment replayed step by step with the same draws, so the state of the step it happened is yielded too
    def cliff(x):
        f = quadratic(x)
        return torch.where(x.abs().amax(-1) > 50, torch.full_like(f, math.inf), f)

    x0 = torch.stack([torch.zeros(20, 2, dtype=torch.float64), _rand(20, 2)])
    kwargs = {"alpha": 1e-3, "sigma": 3.0, "steps": 300, "noise": "isotropic", "seed": 0}
    states = list(_cbo(cliff, x0, every=100, **kwargs))
    steps = [s.step for s in states]
    flagged = next(s for s in states if s.diverged)
    assert flagged.step % 100 != 0 and steps[-1] == 300 and {0, 100, 200, 300} <= set(steps)
    assert flagged.diverged_runs.tolist() == [False, True] and all(torch.isfinite(s.x).all() for s in states)
    again = list(_cbo(cliff, x0, every=100, **kwargs))  # the replay drew the same noise: the same run again
    assert all(torch.equal(a.x, b.x) for a, b in zip(states, again, strict=True))
    # the frozen run kept its last finite particles from the flagged step on
    assert torch.equal(states[-1].x[1], flagged.x[1])


@pytest.mark.parametrize(
    ("x0", "kwargs", "match"),
    [
        (_rand(1, 2), {}, "N >= 2"),
        (_rand(10, 2), {"steps": 0}, "`steps`"),
        (_rand(10, 2), {"every": 0}, "`every`"),
        (_rand(10, 2), {"seed": 1.5}, "`seed`"),
        (_rand(10, 2), {"config": {"sigma": 1.0}}, "CBOConfig"),
        (torch.zeros(10, 0), {}, "d >= 1"),
        (torch.zeros(2, 2, 10, 2), {}, "shape"),
        (torch.full((10, 2), math.nan), {}, "finite"),
        ("particles", {}, "x0"),
    ],
)
def test_bad_input_raises_when_called_naming_the_value(x0, kwargs, match):
    with pytest.raises(OptiscopeError, match=match):
        run(quadratic, x0, **kwargs)  # no `next`: checked when called, before any work


@pytest.mark.parametrize(
    ("field", "value"),
    [("sigma", -1.0), ("dt", 0.0), ("alpha", -1.0), ("alpha", math.nan), ("noise", "pink"), ("alpha_growth", 0.5)],
)
def test_config_is_validated_when_built(field, value):
    with pytest.raises(OptiscopeError, match=f"`{field}`"):
        CBOConfig(**{field: value})


def test_bad_objectives_raise_optiscope_errors():
    with pytest.raises(OptiscopeError, match="d=2"):
        run(OBJECTIVES["GrandCanyon3noisy"], _rand(10, 3))
    with pytest.raises(OptiscopeError, match="d >= 2"):
        run(OBJECTIVES["Rosenbrock"], _rand(10, 1))
    with pytest.raises(OptiscopeError, match="callable"):
        run("Rastrigin", _rand(10, 2))
    with pytest.raises(OptiscopeError, match="map"):
        next(run(lambda x: x, _rand(10, 2)))
    with pytest.raises(OptiscopeError, match="NaN"):
        next(run(lambda x: x.sum(-1) * math.nan, _rand(10, 2)))


def test_d1_runs_and_its_2d_trace_is_refused_clearly():
    f = OBJECTIVES["Rastrigin"]
    last = _last(_cbo(f, f.sample(50, 1, seed=0), sigma=1.0, steps=100))
    assert last.x.shape == (50, 1) and float(last.consensus.abs().max()) < 0.25
    with pytest.raises(OptiscopeError, match="`dims`.*d >= 2"):
        trace(_cbo(f, f.sample(50, 1), steps=5), f, f.minimiser(1), total_steps=5)


# --- budgets: work past PARTICLE_STEP_BUDGET = 2e9 coordinate updates is refused when called ---------------------


@pytest.mark.parametrize(
    "call",
    [
        lambda: run(quadratic, torch.zeros(2001, 1000), steps=1000),  # N·d·steps = 2.001e9
        lambda: run(quadratic, torch.zeros(100, 100, 200), steps=1001),  # M counts too: 2.002e9
        lambda: consensus_hopping(quadratic, torch.zeros(10), n_particles=200_000, steps=1001),
        lambda: annealed_langevin(quadratic, torch.zeros(1, 1000, 1000), steps=2001),
        lambda: success_rates(OBJECTIVES["Rastrigin"], d=1000, n_particles=2001, runs=1, steps=1000),
        lambda: success_rate_grid([1.0, 2.0], [1000], d=100, runs=100, steps=101),
    ],
)
def test_work_past_the_budget_is_refused_naming_it(call):
    with pytest.raises(OptiscopeError, match="particle-steps M·N·d·steps; the budget is 2e\\+09"):
        call()


def test_a_run_at_the_budget_is_accepted_and_steps_and_starts_are_capped():
    states = run(quadratic, torch.zeros(2000, 1000), steps=1000)  # exactly 2e9: accepted, and lazy
    assert next(states).step == 0
    with pytest.raises(OptiscopeError, match="`steps` to be an integer between 1 and 10000"):
        run(quadratic, torch.zeros(2, 2), steps=10_001)  # each step costs ~1 ms of Python, whatever N·d
    with pytest.raises(OptiscopeError, match="particle coordinates M·N·d"):
        OBJECTIVES["Rastrigin"].sample(100_000, 1001)


@pytest.mark.parametrize("name", list(OBJECTIVES))
def test_objectives_vanish_at_their_minimiser_and_are_stationary_there(name):
    obj = OBJECTIVES[name]
    d = obj.dim or 5
    xs = obj.minimiser(d, dtype=torch.float64).requires_grad_(True)
    f = obj(xs)
    (g,) = torch.autograd.grad(f, xs)
    f = f.detach()
    assert abs(f.item()) < 1e-5 and float(g.abs().max()) < 1e-3
    others = obj(_rand(200, d, lo=obj.box[0], hi=obj.box[1]))
    assert bool((others > f).all())


# --- B2: decay rates of V -------------------------------------------------------------------------


def _fitted_slope(d, noise):
    # notes B2: N = 2e4, alpha = 1e15, sigma = .32, ||v||^2 + 2.5 sum(1 - cos 2 pi v), fit for t <= 1;
    # 4 runs batched, x0 ~ N(0, 4^2): a wide start keeps the error floor of the best particle out of the fit
    x0 = 4 * torch.randn((4, 20_000, d), generator=torch.Generator().manual_seed(0))
    states = list(
        _cbo(partial(rastrigin, a=2.5), x0, alpha=1e15, lam=1.0, sigma=0.32, dt=0.01, steps=100, noise=noise, seed=1)
    )
    t = np.array([s.time for s in states])
    v = np.array([float(variance_to(s.x, torch.zeros(d)).mean()) for s in states])
    return np.polyfit(t, np.log(v), 1)[0]


def test_anisotropic_decay_rate_matches_theory_and_isotropic_is_slower_in_high_d():
    theory = decay_rate(1.0, 0.32, d=16, noise="anisotropic")
    assert theory == pytest.approx(1.8976)
    for d in (4, 16):
        assert -_fitted_slope(d, "anisotropic") == pytest.approx(theory, rel=0.05), d
    iso = _fitted_slope(16, "isotropic")
    assert -iso * 5 <= theory  # at least 5x slower (or even growing)


# --- B3: consensus hopping is a noisy proximal step -------------------------------------------------


def test_consensus_hopping_converges_to_the_proximal_step_like_n_to_the_minus_half():
    xk = torch.tensor([1.0, -0.5], dtype=torch.float64)
    prox = xk / (1 + 1.0 * 0.3**2)  # argmin 1/2||x||^2 + ||x - xk||^2 / (2 alpha sigma^2)
    ns, rms = [100, 1000, 10_000], []
    for n in ns:
        last = _last(
            consensus_hopping(quadratic, xk.expand(200, 2), alpha=1.0, sigma=0.3, n_particles=n, steps=1, seed=0)
        )
        rms.append(float(((last.consensus - prox) ** 2).sum(-1).mean().sqrt()))
    slope = np.polyfit(np.log(ns), np.log(rms), 1)[0]
    assert slope == pytest.approx(-0.5, abs=0.1)
    assert rms[0] == pytest.approx(0.041, rel=0.25)


def test_consensus_hopping_shapes_and_bad_input():
    last = _last(consensus_hopping(quadratic, torch.ones(3), n_particles=20, steps=3))
    assert last.x.shape == (20, 3) and last.consensus.shape == (3,)
    with pytest.raises(OptiscopeError, match="n_particles"):
        consensus_hopping(quadratic, torch.ones(3), n_particles=1)


# --- B4: the sigma threshold on Rastrigin d = 20 ------------------------------------------------------

B4 = {"d": 20, "n_particles": 40, "runs": 100, "steps": 5000, "seed": 0}


@pytest.mark.slow
def test_rastrigin_d20_anisotropic_sigma_10_succeeds():
    rate, diverged = success_rates(
        OBJECTIVES["Rastrigin"], config=CBOConfig(alpha=30.0, sigma=10.1, noise="anisotropic"), **B4
    )
    assert rate >= 0.95 and diverged == 0.0


@pytest.mark.slow
def test_rastrigin_d20_anisotropic_sigma_5_fails():
    rate, _ = success_rates(OBJECTIVES["Rastrigin"], config=CBOConfig(alpha=30.0, sigma=5.1, noise="anisotropic"), **B4)
    assert rate <= 0.10


def test_rastrigin_d20_isotropic_diverges():
    rate, diverged = success_rates(
        OBJECTIVES["Rastrigin"], config=CBOConfig(alpha=30.0, sigma=10.1, noise="isotropic"), **B4
    )
    assert rate == 0.0 and diverged == 1.0


def test_phase_grid_yields_progress_with_pending_cells_as_nan():
    states = list(success_rate_grid([0.5, 1.0], [10, 20], d=2, runs=4, steps=50))
    assert [s.step for s in states] == [0, 1, 2, 3, 4] and states[-1].fraction == 1.0
    assert torch.isnan(states[1].success).sum() == 3 and not torch.isnan(states[-1].success).any()
    for bad, match in [(([], [10]), "sigma"), (([1.0], [1]), "n_particles"), (([-1.0], [10]), "sigma")]:
        with pytest.raises(OptiscopeError, match=match):
            success_rate_grid(*bad)  # checked when called, not in the background worker


def test_phase_grid_cells_equal_success_rates_with_that_sigma():
    config = CBOConfig(alpha=30.0, sigma=99.0)  # the grid replaces sigma
    last = _last(success_rate_grid([0.5, 4.0], [20], config=config, d=2, runs=8, steps=100, seed=3))
    for i, sigma in enumerate((0.5, 4.0)):
        rate, _ = success_rates(
            OBJECTIVES["Rastrigin"],
            config=dataclasses.replace(config, sigma=sigma),
            d=2,
            n_particles=20,
            runs=8,
            steps=100,
            seed=3,
        )
        assert float(last.success[i, 0]) == rate


# --- B5: GrandCanyon3noisy -------------------------------------------------------------------------


def test_grand_canyon_cbo_succeeds_where_gradient_descent_stalls():
    f = OBJECTIVES["GrandCanyon3noisy"]
    x0 = torch.tensor([8.0, 8.0]) + 0.5 * torch.randn((50, 200, 2), generator=torch.Generator().manual_seed(0))
    last = _last(_cbo(f, x0, alpha=100.0, lam=1.0, sigma=1.6, dt=0.01, steps=250, noise="isotropic", seed=1, every=250))
    assert float(success(last.consensus, torch.zeros(2)).float().mean()) >= 0.9
    gd = _last(gradient_descent(f, torch.tensor([[8.0, 8.0]], dtype=torch.float64), dt=0.01, steps=2000, every=2000))
    xs = gd.x.detach().requires_grad_(True)
    (g,) = torch.autograd.grad(f(xs).sum(), xs)
    assert float(gd.x.abs().max()) > 1.0 and float(g.abs().max()) < 1e-3  # a stationary point far from x* = 0


def test_annealed_langevin_is_seeded_and_noisy():
    f, x0 = OBJECTIVES["GrandCanyon3noisy"], torch.full((3, 1, 2), 8.0)
    a = _last(annealed_langevin(f, x0, steps=200, seed=0))
    b = _last(annealed_langevin(f, x0, steps=200, seed=0))
    assert torch.equal(a.x, b.x) and not torch.equal(a.x[0], a.x[1])


# --- what the page draws, computed in core ---------------------------------------------------------


def test_objective_grid_is_the_objective_on_a_meshgrid():
    f = OBJECTIVES["GrandCanyon3noisy"]
    axis, z = f.grid(41)
    xx, yy = np.meshgrid(np.linspace(*f.box, 41), np.linspace(*f.box, 41))  # rows: increasing y
    brute = f(torch.tensor(np.stack([xx, yy], -1)))
    np.testing.assert_allclose(axis.numpy(), np.linspace(*f.box, 41), atol=1e-12)
    np.testing.assert_allclose(z.numpy(), brute.numpy(), rtol=1e-12, atol=1e-9)
    with pytest.raises(OptiscopeError, match="`n`"):
        f.grid(1)


def test_comparison_paths_gd_stalls_where_ch_reaches_the_minimiser():
    f = OBJECTIVES["GrandCanyon3noisy"]
    paths = comparison_paths(f, torch.tensor([8.0, 8.0]), alpha=100.0, n_particles=200, seed=0)
    gd, ch = paths["GD"], paths["CH"]
    assert gd.points.shape == (201, 2) and ch.points.shape == (101, 2) and gd.points.dtype == torch.float64
    # GD is plain descent with lr·dt = 2e-3: the same points as the hand loop x <- x - 2e-3 grad f(x)
    x = torch.tensor([8.0, 8.0], dtype=torch.float64, requires_grad=True)
    for _ in range(1000):
        (g,) = torch.autograd.grad(f(x), x)
        x = (x - 2e-3 * g).detach().requires_grad_(True)
    torch.testing.assert_close(gd.points[-1], x.detach(), atol=1e-10, rtol=0)
    assert gd.error > 5.0 and ch.error < 0.25  # the point of the GrandCanyon3noisy preset


def test_preview_keeps_a_few_particles_of_two_coordinates():
    state = next(_cbo(OBJECTIVES["Ackley"], _rand(2000, 50), steps=1))
    small = state.preview()
    assert small.x.shape == (300, 2) and small.energy.shape == (300,) and small.consensus.shape == (2,)
    assert torch.equal(small.x, state.x[:300, :2]) and small.step == state.step
    assert small.x.nbytes * 200 < 2e6  # a live player's 200 held states stay under ~2 MB at any N, d


# --- threads: the page's shared objects (OBJECTIVES, and runs started from them) -------------------


def _page_path(job):
    name, seed = job
    f = OBJECTIVES[name]
    x0 = f.sample(60, 2, seed=seed)
    tr = trace(_cbo(f, x0, sigma=1.0, steps=40, seed=seed), f, f.minimiser(2), total_steps=40, frames=4)
    ch = _last(consensus_hopping(f, x0[0], n_particles=60, steps=20, seed=seed))
    return tr.path, tr.V, ch.consensus.numpy()


def test_shared_objectives_give_the_same_runs_from_many_threads_as_alone():
    jobs = [(name, seed) for name in ("Rastrigin", "Ackley", "GrandCanyon3noisy") for seed in range(4)]
    alone = [_page_path(job) for job in jobs]
    with ThreadPoolExecutor(max_workers=4) as pool:
        together = list(pool.map(_page_path, jobs * 3))
    mismatches = sum(
        not all(np.array_equal(a, b) for a, b in zip(alone[i % len(jobs)], got, strict=True))
        for i, got in enumerate(together)
    )
    assert mismatches == 0
    assert not np.array_equal(alone[0][0], alone[1][0])  # different seeds: different paths


# --- GPU: the same core path on cuda and on the cpu ----------------------------------------------


@pytest.mark.gpu
def test_cuda_runs_match_the_cpu(cuda):
    # deterministic drift (sigma = 0) in float64: the same particles to 1e-9 after 20 steps
    f = OBJECTIVES["Rastrigin"]
    x0 = _rand(2, 30, 3)
    on_cpu = _last(_cbo(f, x0, sigma=0.0, steps=20))
    on_gpu = _last(_cbo(f, x0, sigma=0.0, steps=20, device=cuda))
    assert {on_gpu.x.device.type, on_gpu.consensus.device.type, on_gpu.diverged_runs.device.type} == {"cuda"}
    torch.testing.assert_close(on_gpu.x.cpu(), on_cpu.x, atol=1e-9, rtol=0)
    # noise comes from a cuda generator (other draws): compare outcomes. B5 on both devices: >= 90% reach x*
    canyon, config = OBJECTIVES["GrandCanyon3noisy"], CBOConfig(alpha=100.0, sigma=1.6, noise="isotropic")
    x0 = canyon.sample(200, 2, runs=50, seed=0)
    for device in ("cpu", cuda):
        last = _last(run(canyon, x0, config=config, steps=250, every=250, seed=1, device=device))
        assert float(success(last.consensus, torch.zeros(2, device=device)).float().mean()) >= 0.9, device
    # the page's path on cuda: trace (numpy out), GD (deterministic, float64: 1e-6) and CH, the phase diagram
    tr = trace(_cbo(canyon, x0[0], steps=50, device=cuda), canyon, canyon.minimiser(2), total_steps=50, frames=5)
    assert np.isfinite(tr.V).all() and tr.frame_x.shape[1:] == (200, 2)
    gpu_paths = comparison_paths(canyon, torch.tensor([8.0, 8.0], device=cuda))
    cpu_paths = comparison_paths(canyon, torch.tensor([8.0, 8.0]))
    torch.testing.assert_close(gpu_paths["GD"].points.cpu(), cpu_paths["GD"].points, atol=1e-6, rtol=0)
    assert gpu_paths["CH"].points.device.type == "cuda" and torch.isfinite(gpu_paths["CH"].points).all()
    rate, diverged = success_rates(OBJECTIVES["Rastrigin"], d=2, n_particles=50, runs=20, steps=300, device=cuda)
    assert rate >= 0.9 and diverged == 0.0  # 1.0 on the cpu; other noise draws on cuda
    assert next(_cbo(f, x0[0], steps=1, device=cuda)).preview().x.device.type == "cpu"


def test_figures_draw_the_trace_they_are_given():
    f = OBJECTIVES["Ackley"]
    tr = trace(_cbo(f, f.sample(500, 3, seed=0), steps=20), f, f.minimiser(3), total_steps=20, frames=4)
    fig = figures.swarm_figure(tr.frame_x[0], tr.path[0], tr.path[:1], box=(-4, 4), x_star=np.zeros(2), paths={})
    assert [t.name for t in fig.data[1:5]] == ["to consensus", "particles", "consensus path", "consensus v"]
    frames = figures.replay_frames(tr)
    assert len(frames) == len(tr.frame_step) == 5
    assert len(frames[-1].data[0].x) == 3 * figures.MAX_LINES  # 300 of the 500 particles get a line to v
    np.testing.assert_array_equal(frames[-1].data[1].x, tr.frame_x[-1][:, 0])
    decay = figures.decay_figure(tr, {"anisotropic": 1.0})
    np.testing.assert_allclose(decay.data[1].y, tr.V[0] * np.exp(-tr.time))
