"""Transformers as SVMs: the reference behaviours of the lab's note (../shared/notes/attention_svm.md)."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable

import cvxpy as cp
import numpy as np
import pytest
import torch

from core.attention_svm import (
    SVMCache,
    analysis,
    analyze,
    correlation,
    from_arrays,
    log10_gap,
    make_problem,
    plane_geometry,
    run,
    selection_kind,
    single_input_example,
    solve_svm,
    spectrum,
)
from core.attention_svm.svm import margins, normalized_margin, rank
from core.attention_svm.train import EPS, factor_grads, loss_grad
from core.errors import OptiscopeError
from core.runs import last_state

# --- problems and bad input ---------------------------------------------------------------------------------


def test_make_problem_is_the_papers_setup():
    p = make_problem(n=6, T=8, d=10, seed=3)
    assert (p.X.shape, p.z.shape, p.y.shape, p.v.shape) == ((6, 8, 10), (6, 10), (6,), (10,))
    assert p.X.dtype == torch.float64
    torch.testing.assert_close(p.X.norm(dim=-1), torch.ones(6, 8, dtype=torch.float64), atol=1e-6, rtol=0)
    torch.testing.assert_close(p.z.norm(dim=-1), torch.ones(6, dtype=torch.float64), atol=1e-6, rtol=0)
    assert set(p.y.tolist()) <= {-1.0, 1.0}
    torch.testing.assert_close(p.values, p.X @ p.v)
    assert torch.equal(p.optimal, p.scores.argmax(-1))
    q = make_problem(n=6, T=8, d=10, seed=3)
    assert torch.equal(p.X, q.X) and not torch.equal(p.X, make_problem(n=6, T=8, d=10, seed=4).X)


SMALL = make_problem(n=2, T=3, d=2)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: make_problem(n=6, T=1, d=10), "`T`"),
        (lambda: make_problem(n=6, T=8, d=0), "`d`"),
        (lambda: make_problem(n=0, T=8, d=3), "`n`"),
        (lambda: make_problem(seed=-1), "`seed`"),
        (lambda: make_problem(device="nope"), "`device`"),
        (lambda: run(SMALL, lr=0.0), "`lr`"),
        (lambda: run(SMALL, lr=-1), "`lr`"),
        (lambda: run(SMALL, lr=float("nan")), "`lr`"),
        (lambda: run(SMALL, steps=0), "`steps`"),
        (lambda: run(SMALL, steps=2.5), "`steps`"),
        (lambda: run(SMALL, seed=float("nan")), "`seed`"),
        (lambda: run(SMALL, param="W"), "`param`"),  # the old key: URLs map it, core takes registry keys only
        (lambda: run(SMALL, init=np.ones((3, 3))), "`init`"),
        (lambda: run(SMALL, init=[[np.inf, 0.0], [0.0, 1.0]]), "`init`"),
        (lambda: run(SMALL, device="nope"), "`device`"),
        (lambda: run([SMALL, make_problem(n=2, T=4, d=2)]), "one shape"),
        (lambda: run([]), "`problem`"),
        (lambda: run("not a problem"), "`problem`"),
        (lambda: analyze(SMALL, []), "at least one state"),
        (lambda: analyze(SMALL, run(make_problem(n=2, T=3, d=3), steps=1)), "states of `run`"),
        (lambda: solve_svm(SMALL, [0, 0], norm="l1"), "`norm`"),
        (lambda: solve_svm(SMALL, [0, 5]), "selected"),
        (
            lambda: plane_geometry(make_problem(d=3), analyze(make_problem(d=3), run(make_problem(d=3), steps=1))),
            "d = 2",
        ),
        (lambda: plane_geometry(SMALL, analyze(SMALL, run(SMALL, steps=1)), sequence=2), "`sequence`"),
        (lambda: from_arrays(np.zeros((1, 1, 2)), np.zeros((1, 2)), [1.0], v=[1.0, 0.0]), "`T`"),
        (lambda: from_arrays(np.zeros((1, 2, 2)), np.zeros((1, 2)), [0.5], v=[1.0, 0.0]), "labels"),
        (lambda: from_arrays(np.zeros((1, 2, 2)), np.zeros((1, 3)), [1.0], v=[1.0, 0.0]), "`z`"),
        (lambda: from_arrays(np.zeros((1, 2, 2)), np.zeros((1, 2)), [1.0]), "`v`"),
        (lambda: from_arrays([[[np.nan, 0.0], [0.0, 1.0]]], np.zeros((1, 2)), [1.0], v=[1.0, 0.0]), "finite"),
        (lambda: from_arrays("abc", np.zeros((1, 2)), [1.0], v=[1.0, 0.0]), "numeric"),
    ],
)
def test_bad_input_raises_optiscope_errors_at_call_time(call, message):
    with pytest.raises(OptiscopeError, match=message):
        call()


@pytest.mark.parametrize(
    ("call", "budget"),
    [
        (lambda: make_problem(n=1000, T=100, d=101), "tokens n·T·d"),
        (lambda: run(make_problem(n=12, T=12, d=16), steps=10**6), "token-steps"),
        (lambda: run([make_problem(n=12, T=12, d=16, seed=s) for s in range(100)], steps=10**5), "token-steps"),
        (lambda: solve_svm(make_problem(n=12, T=12, d=40), np.zeros(12, dtype=int)), "SVM constraint entries"),
    ],
)
def test_work_past_a_budget_is_refused_naming_it(call, budget):
    with pytest.raises(OptiscopeError, match=budget):
        call()


def test_the_page_maximum_fits_every_budget():
    """n, T = 12 and d = 16 at 2000 steps (the page's largest controls) is served, not refused."""
    p = make_problem(n=12, T=12, d=16)
    assert next(run(p, param="kq", steps=2000)).step == 0
    solve_svm(p, p.optimal, norm="nuc")  # raises OptiscopeError if past the SVM budget


def test_a_run_record_past_its_budget_is_refused_before_it_is_held(monkeypatch):
    monkeypatch.setattr(analysis, "RECORD_BUDGET", 10 * (4 + 6))  # ten states of (d² + n·T) = 4 + 6 values
    pulled = []
    states = (pulled.append(s) or s for s in run(SMALL, steps=100))
    with pytest.raises(OptiscopeError, match="float64 values held"):
        analyze(SMALL, states)
    assert len(pulled) == 11  # it stopped at the first state past the budget, not at the end of the run


def test_solver_failure_is_an_optiscope_error(monkeypatch):
    def broken(self, *args, **kwargs):
        raise cp.error.SolverError("numerical trouble")

    monkeypatch.setattr(cp.Problem, "solve", broken)
    p = make_problem(n=3, T=4, d=5, seed=0)
    with pytest.raises(OptiscopeError, match="solver"):
        solve_svm(p, p.optimal)


# --- training -------------------------------------------------------------------------------------------------


def _autograd_loss(p, W: torch.Tensor) -> torch.Tensor:
    probs = torch.softmax(torch.einsum("itd,de,ie->it", p.X, W, p.z), -1)
    return torch.log(1 + torch.exp(-p.y * (probs * p.values).sum(-1))).mean()


def test_closed_form_w_gradient_matches_autograd():
    p = make_problem(n=4, T=5, d=3, seed=1)
    W = torch.randn(3, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0), requires_grad=True)
    loss = _autograd_loss(p, W)
    (auto,) = torch.autograd.grad(loss, W)
    grad, _, ours = loss_grad(p.X.numpy(), p.z.numpy(), p.values.numpy(), p.y.numpy(), W.detach().numpy())
    torch.testing.assert_close(torch.from_numpy(grad), auto, rtol=1e-12, atol=1e-14)
    assert float(ours) == pytest.approx(float(loss.detach()), rel=1e-14)


def test_closed_form_kq_gradients_match_autograd():
    """∇K, ∇Q of L(KᵀQ) + λ(‖K‖² + ‖Q‖²), with a λ large enough that a wrong decay term shows."""
    p = make_problem(n=4, T=5, d=3, seed=1)
    g = torch.Generator().manual_seed(0)
    K, Q = (torch.randn(3, 3, dtype=torch.float64, generator=g, requires_grad=True) for _ in range(2))
    decay = 0.01
    loss = _autograd_loss(p, K.T @ Q) + decay * (K.norm() ** 2 + Q.norm() ** 2)
    auto_K, auto_Q = torch.autograd.grad(loss, (K, Q))
    G, _, _ = loss_grad(p.X.numpy(), p.z.numpy(), p.values.numpy(), p.y.numpy(), (K.T @ Q).detach().numpy())
    gK, gQ = factor_grads(G, K.detach().numpy(), Q.detach().numpy(), decay)
    torch.testing.assert_close(torch.from_numpy(gK), auto_K, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(torch.from_numpy(gQ), auto_Q, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("param", ["w", "kq"])
def test_run_follows_the_authors_loop(param):
    """Our closed-form steps equal the notebook's autograd + normalize + SGD loop from the same init."""
    p = make_problem(n=6, T=8, d=10, seed=0)
    states = list(run(p, param=param, steps=5, lr=0.1, seed=7))
    first = states[0]
    params = (
        [first.W.clone().requires_grad_()] if param == "w" else [t.clone().requires_grad_() for t in (first.K, first.Q)]
    )
    opt = torch.optim.SGD(params, lr=0.1)
    for state in states[1:]:
        opt.zero_grad()
        W = params[0] if param == "w" else params[0].T @ params[1]
        loss = _autograd_loss(p, W)
        if param == "kq":
            loss = loss + EPS * (params[0].norm() ** 2 + params[1].norm() ** 2)
        loss.backward()
        for q in params:
            q.grad /= q.grad.norm() + EPS
        opt.step()
        W = params[0] if param == "w" else params[0].T @ params[1]
        torch.testing.assert_close(state.W, W.detach(), rtol=1e-10, atol=1e-12)


def test_states_are_frozen_float64_and_detached():
    states = list(run(make_problem(n=3, T=4, d=5, seed=0), param="kq", steps=3, normalized=False))
    assert [s.step for s in states] == [0, 1, 2, 3]
    s = states[-1]
    assert s.W.dtype == torch.float64 and not s.W.requires_grad and s.probs.shape == (3, 4)
    for state in states:
        torch.testing.assert_close(state.W, state.K.T @ state.Q, rtol=1e-12, atol=1e-14)
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.loss = 0
    assert not torch.equal(states[0].W, states[-1].W)  # a yielded state is never overwritten later
    preview = s.preview()
    assert preview.K is None and preview.Q is None and torch.equal(preview.W, s.W)


def test_a_batch_of_problems_equals_each_problem_alone():
    problems = [make_problem(n=3, T=4, d=5, seed=s) for s in range(3)]
    first, *_, batch = run(problems, steps=20, seed=4)
    assert batch.W.shape == (3, 5, 5) and batch.probs.shape == (3, 3, 4)
    # member 0 starts from the generator's first draw, like the single run with the same seed
    torch.testing.assert_close(batch.W[0], last_state(run(problems[0], steps=20, seed=4)).W, rtol=1e-12, atol=1e-14)
    for b in range(3):
        alone = last_state(run(problems[b], steps=20, init=first.W[b]))
        torch.testing.assert_close(batch.W[b], alone.W, rtol=1e-12, atol=1e-14)


def test_zero_gradient_without_conventions_takes_no_step_instead_of_nan():
    """A float64 one-hot softmax has an exactly zero gradient: with ε = 0 the step is 0, not 0/0."""
    p = make_problem(n=2, T=3, d=2, seed=0)
    svm = solve_svm(p, p.optimal)
    assert svm is not None
    for param in ("w", "kq"):
        first, *_, last = run(p, param=param, steps=3, conventions=False, init=1e6 * svm)
        assert float(first.grad_norm) == 0.0
        assert torch.equal(last.W, first.W)
        if param == "kq":
            assert torch.equal(last.K, first.K) and torch.equal(last.Q, first.Q)


# --- Att-SVM --------------------------------------------------------------------------------------------------


def test_single_input_svm_values_A1():
    p = single_input_example(third_score=0.0)
    W = solve_svm(p, [0])
    np.testing.assert_allclose(W[:, 0].numpy(), np.array([-0.1, 1.0]) / 1.01, atol=1e-5)
    assert 0.5 * float(W.norm() ** 2) == pytest.approx(0.49505, abs=1e-5)
    W_local = solve_svm(p, [1])
    np.testing.assert_allclose(W_local[:, 0].numpy(), [1.0, 0.0], atol=1e-6)
    assert 0.5 * float(W_local.norm() ** 2) == pytest.approx(0.5, abs=1e-6)
    assert [selection_kind(p, [t]) for t in range(3)] == ["global", "local", "not optimal"]
    assert selection_kind(single_input_example(third_score=0.9), [1]) == "not optimal"


@pytest.mark.parametrize("third_score", [0.0, 0.9])
def test_single_input_basins_A2(third_score):
    p = single_input_example(third_score=third_score)
    target = {0: solve_svm(p, [0]), 1: solve_svm(p, [1])}
    for y0 in (1, 0.5, 0, -0.5, -1, -1.5):
        last = last_state(run(p, steps=2000, lr=0.1, init=[[0.0, 0.0], [y0, 0.0]]))
        expected = 1 if (third_score == 0.0 and y0 <= -1) else 0
        assert int(last.selected[0]) == expected, (third_score, y0)
        if third_score == 0.0:
            assert correlation(last.W, target[expected]) > 0.99


@pytest.mark.parametrize("d", [5, 10, 20])
def test_svm_margins_and_nuclear_rank_A5(d):
    fro_ranks, nuc_ranks = [], []
    for seed in range(5):
        p = make_problem(n=5, T=5, d=d, seed=seed)
        sel = p.optimal
        W_fro, W_nuc = solve_svm(p, sel, norm="fro"), solve_svm(p, sel, norm="nuc")
        for W in (W_fro, W_nuc):
            assert margins(p, W, sel).min() >= 1 - 1e-6
        fro_ranks.append(rank(W_fro))
        nuc_ranks.append(rank(W_nuc))
        assert rank(W_nuc) <= rank(W_fro)
        assert float(torch.linalg.matrix_norm(W_nuc, "nuc")) <= float(torch.linalg.matrix_norm(W_fro, "nuc")) + 1e-6
        assert float(W_fro.norm()) <= float(W_nuc.norm()) + 1e-6
        assert normalized_margin(p, W_fro, sel) == pytest.approx(1 / float(W_fro.norm()), rel=1e-6)
    assert np.mean(fro_ranks) >= 4.0 and np.mean(nuc_ranks) <= np.mean(fro_ranks) - 1


def test_many_d2_instances_are_infeasible_A5():
    """The note's reference run finds 5 of 20 feasible at d = 2; our draws (torch's generator) give 7 of 20."""
    feasible = []
    for seed in range(20):
        p = make_problem(n=5, T=5, d=2, seed=seed)
        if solve_svm(p, p.optimal) is not None:
            feasible.append(seed)
        else:
            assert selection_kind(p, p.optimal) == "infeasible"
    assert feasible == [0, 6, 7, 8, 14, 15, 16]


def test_an_svm_solve_gives_the_same_bits_every_time():
    """Fresh CLARABEL solvers (warm_start=False): the same URL draws the same figures after the caches are cleared."""
    p = make_problem(n=6, T=8, d=10, seed=0)
    for norm in ("fro", "nuc"):
        first, again = (solve_svm(p, p.optimal, norm=norm) for _ in range(2))
        assert torch.equal(first, again)


def test_correlation_spectrum_and_log_gap():
    A = torch.randn(4, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    assert correlation(A, 2 * A) == pytest.approx(1.0)
    assert correlation(A, -A) == pytest.approx(-1.0)
    assert correlation(A, torch.zeros(4, 4)) == 0.0
    assert correlation(A.numpy(), A) == pytest.approx(1.0)
    with pytest.raises(OptiscopeError, match="shape"):
        correlation(A, torch.eye(3))
    s = torch.linalg.svdvals(A)
    np.testing.assert_allclose(spectrum(A), (s / s[0]).numpy(), rtol=1e-12)
    assert spectrum(np.zeros((2, 2))).tolist() == [0.0, 0.0] and rank(np.zeros((2, 2))) == 0
    np.testing.assert_allclose(log10_gap(np.array([0.99, 1.0, 1.0 + 1e-12])), [-2.0, -16.0, -16.0])
    assert log10_gap(None) is None


def test_analyze_records_the_run_against_both_svms():
    p = make_problem(n=6, T=8, d=10, seed=0)
    states = list(run(p, param="kq", steps=300))
    r = analyze(p, states)
    assert r.param == "kq" and r.W.shape == (301, 10, 10) and r.probs.shape == (301, 6, 8)
    np.testing.assert_array_equal(r.selected, states[-1].selected.numpy())
    np.testing.assert_array_equal(r.optimal, p.optimal.numpy())
    assert r.n_global == int((r.selected == r.optimal).sum())
    fro, nuc = solve_svm(p, r.selected, norm="fro"), solve_svm(p, r.selected, norm="nuc")
    np.testing.assert_allclose(r.svm_fro, fro.numpy(), atol=1e-7)
    np.testing.assert_allclose(r.svm_nuc, nuc.numpy(), atol=1e-7)
    for k in (0, 100, 300):
        assert r.corr_nuc[k] == pytest.approx(correlation(states[k].W, r.svm_nuc), abs=1e-12)
        assert r.margin[k] == pytest.approx(normalized_margin(p, states[k].W, r.selected), abs=1e-12)
        assert r.norm[k] == pytest.approx(float(states[k].W.norm()), rel=1e-12)
    assert r.corr_own is r.corr_nuc and r.corr_other is r.corr_fro and r.svm_own is r.svm_nuc
    assert r.ranks == {"fro": rank(r.svm_fro), "nuc": rank(r.svm_nuc)}
    assert r.saturation == pytest.approx(float(states[-1].probs.max(-1).values.min()), rel=1e-15)
    assert r.svm_margin == pytest.approx(1 / float(fro.norm()), rel=1e-7)
    assert (r.margin <= r.svm_margin + 1e-9).all()  # W^mm maximizes the normalized margin over every W(k)
    ks = r.frame_steps(count=20)
    assert ks[0] == 0 and ks[-1] == 300 and ks == sorted(set(ks)) and 10 <= len(ks) <= 22


def test_plane_geometry_draws_the_svm_lines():
    """The boundary segment lies on xᵀp = x_αᵀp, the margin segment on xᵀp = x_αᵀp − 1 (p = W^mm z_i)."""
    p = make_problem(n=3, T=5, d=2, seed=0)
    r = analyze(p, run(p, steps=500))
    ks = r.frame_steps()
    for i in range(p.n):
        plane = plane_geometry(p, r, sequence=i, frames=ks)
        z, X, a = p.z[i].numpy(), p.X[i].numpy(), int(r.selected[i])
        svm_p = r.svm_fro @ z
        np.testing.assert_allclose(plane.boundary @ svm_p, [X[a] @ svm_p] * 2, atol=1e-12)
        np.testing.assert_allclose(plane.margin_line @ svm_p, [X[a] @ svm_p - 1] * 2, atol=1e-12)
        np.testing.assert_allclose(plane.svm_ray, svm_p / np.linalg.norm(svm_p), atol=1e-12)
        assert plane.rays.shape == (len(ks), 2)
        np.testing.assert_allclose(np.linalg.norm(plane.rays, axis=1), 1.0, atol=1e-12)
        np.testing.assert_allclose(plane.rays[-1], r.W[-1] @ z / np.linalg.norm(r.W[-1] @ z), atol=1e-12)
        assert plane.optimal == int(p.optimal[i]) and plane.selected == a


# --- shared objects under threads ------------------------------------------------------------------------------


def _hammer(jobs: list[Callable[[], object]], threads: int = 4, rounds: int = 3) -> list[tuple[int, object]]:
    """Every job from `threads` threads at once (each in its own order, `rounds` times): (job index, result)."""
    results, errors = [], []

    def worker(t: int) -> None:
        try:
            for _ in range(rounds):
                for j in np.random.default_rng(t).permutation(len(jobs)):
                    results.append((int(j), jobs[j]()))
        except Exception as err:  # a crash in a thread is the failure looked for
            errors.append(err)

    pool = [threading.Thread(target=worker, args=(t,)) for t in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    assert not errors, errors
    return results


def test_svm_solves_from_many_threads_match_sequential_solves():
    """Problems of one shape share one canonicalized cvxpy program (mutable data): the per-shape lock keeps
    every thread's answer its own, bit for bit (without it, CLARABEL raises "Already mutably borrowed")."""
    problems = [make_problem(n=3, T=4, d=5, seed=s) for s in range(5)] + [
        make_problem(n=4, T=3, d=4, seed=s) for s in range(5)
    ]
    jobs = [lambda p=p, norm=norm: solve_svm(p, p.optimal, norm=norm) for p in problems for norm in ("fro", "nuc")]
    sequential = [job() for job in jobs]
    mismatches = [
        j
        for j, W in _hammer(jobs)
        if (W is None) != (sequential[j] is None) or (W is not None and not torch.equal(W, sequential[j]))
    ]
    assert mismatches == []


def test_one_svm_cache_serves_many_threads_with_one_answer_per_key():
    cache = SVMCache(maxsize=8)
    problems = [make_problem(n=3, T=4, d=2, seed=s) for s in range(6)]
    jobs = [lambda p=p: cache.solve(p, p.optimal) for p in problems]
    sequential = [SVMCache().solve(p, p.optimal) for p in problems]
    results = _hammer(jobs)
    first = {}
    for j, solutions in results:
        assert solutions is first.setdefault(j, solutions)  # every caller gets the object stored first
        assert solutions.kind == sequential[j].kind
        for ours, theirs in ((solutions.fro, sequential[j].fro), (solutions.nuc, sequential[j].nuc)):
            assert (ours is None) == (theirs is None)
            if ours is not None:
                np.testing.assert_array_equal(ours, theirs)
    assert len(cache) == 6
    for p in [make_problem(n=3, T=4, d=2, seed=s) for s in range(6, 12)]:
        cache.solve(p, p.optimal)
    assert len(cache) == 8  # bounded


def test_runs_in_threads_match_runs_alone():
    problems = [make_problem(n=4, T=5, d=3, seed=s) for s in range(4)]
    jobs = [
        lambda p=p, param=param: last_state(run(p, param=param, steps=200, seed=1)).W
        for p in problems
        for param in ("w", "kq")
    ]
    sequential = [job() for job in jobs]
    assert [j for j, W in _hammer(jobs, rounds=1) if not torch.equal(W, sequential[j])] == []


# --- devices --------------------------------------------------------------------------------------------------


def test_states_live_on_the_problems_device():
    p = make_problem(n=3, T=4, d=5, device="cpu")
    state = next(run(p, param="kq", device=torch.device("cpu")))
    assert all(t.device.type == "cpu" for t in (state.W, state.K, state.Q, state.probs, state.loss))
    assert solve_svm(p, p.optimal).device.type == "cpu"


@pytest.mark.gpu
def test_cuda_matches_cpu(cuda):
    """States and the record on CUDA equal the CPU's: the GD loop runs on the host in float64 either way and the
    SVMs are solved on the host from the same data, so W, probs and corr agree to 1e-12 (bit for bit, in fact)."""
    cpu_problem = make_problem(n=4, T=5, d=2, seed=0)
    gpu_problem = make_problem(n=4, T=5, d=2, seed=0, device=cuda)
    assert gpu_problem.X.device.type == "cuda"
    for param in ("w", "kq"):
        on_cpu = list(run(cpu_problem, param=param, steps=300))
        on_gpu = list(run(gpu_problem, param=param, steps=300))
        assert all(s.W.device.type == "cuda" and s.probs.device.type == "cuda" for s in on_gpu)
        for a, b in zip(on_cpu, on_gpu, strict=True):
            torch.testing.assert_close(b.W.cpu(), a.W, rtol=1e-12, atol=1e-12)
            torch.testing.assert_close(b.probs.cpu(), a.probs, rtol=1e-12, atol=1e-12)
        r_cpu, r_gpu = analyze(cpu_problem, on_cpu), analyze(gpu_problem, on_gpu)
        assert r_gpu.kind == r_cpu.kind and np.array_equal(r_gpu.selected, r_cpu.selected)
        np.testing.assert_allclose(r_gpu.corr_own, r_cpu.corr_own, rtol=0, atol=1e-12)
    W = solve_svm(gpu_problem, gpu_problem.optimal)
    assert W is None or W.device.type == "cuda"
    batch = last_state(run([gpu_problem, make_problem(n=4, T=5, d=2, seed=1, device=cuda)], steps=50))
    assert batch.W.device.type == "cuda"


# --- the paper's experiment (local_converge), 20 seeds, vectorised over seeds ---------------------------------

CHECKPOINTS = (0, 100, 500, 2000)


def _experiment(param: str, conventions: bool):
    problems = [make_problem(n=6, T=8, d=10, seed=s) for s in range(20)]
    kept, norms = {}, []
    for state in run(problems, param=param, steps=2000, lr=0.1, conventions=conventions):
        norms.append(torch.linalg.matrix_norm(state.W))
        if state.step in CHECKPOINTS:
            kept[state.step] = state
    sel = kept[2000].selected
    svms = [(solve_svm(p, sel[b], norm="fro"), solve_svm(p, sel[b], norm="nuc")) for b, p in enumerate(problems)]
    own, other = (0, 1) if param == "w" else (1, 0)
    corr = {k: np.array([correlation(s.W[b], svms[b][own]) for b in range(20)]) for k, s in kept.items()}
    mismatch = np.array([correlation(kept[2000].W[b], svms[b][other]) for b in range(20)])
    return corr, mismatch, kept, torch.stack(norms)  # norms: (steps + 1, 20)


@pytest.fixture(scope="module")
def experiments():
    return {(param, conv): _experiment(param, conv) for param in ("w", "kq") for conv in (True, False)}


@pytest.mark.slow
@pytest.mark.parametrize("param", ["w", "kq"])
def test_correlation_with_own_svm_rises_to_one_A3(experiments, param):
    corr, mismatch, _, _ = experiments[(param, True)]
    medians = [np.median(corr[k]) for k in CHECKPOINTS[1:]]
    assert medians[0] < medians[1] < medians[2], medians
    assert medians[2] >= 0.99
    assert np.median(corr[2000]) - np.median(mismatch) >= 0.05  # each bias can be told apart
    assert (corr[2000] > mismatch).mean() >= 0.9


@pytest.mark.slow
@pytest.mark.parametrize("param", ["w", "kq"])
def test_softmax_saturates_and_norm_grows_A4(experiments, param):
    _, _, kept, norms = experiments[(param, True)]
    assert float(kept[500].probs.max(-1).values.min()) >= 0.999
    assert bool((10 * norms[0] < norms[2000]).all() and (norms[100] < norms[2000]).all())
    if param == "w":  # each normalized step moves W by exactly η: ‖W(k)‖ ≤ ‖W(0)‖ + ηk, and ≤ ηk once k ≥ 100
        k = torch.arange(norms.shape[0], dtype=torch.float64)[:, None]
        assert bool((norms <= norms[0] + 0.1 * k + 1e-9).all())
        assert bool((norms[100:] <= 0.1 * k[100:]).all())
        assert bool((norms[100] < norms[500]).all() and (norms[500] < norms[2000]).all())


@pytest.mark.slow
@pytest.mark.parametrize("param", ["w", "kq"])
def test_without_conventions_the_direction_drifts(experiments, param):
    on, _, _, _ = experiments[(param, True)]
    off, _, _, _ = experiments[(param, False)]
    assert np.median(off[2000]) < np.median(on[2000]) - 0.02
    assert np.std(off[2000]) > 3 * np.std(on[2000])  # seed-dependent
    assert np.min(off[2000]) < 0.9


# --- garbage in: OptiscopeError, never another exception or a silent NaN --------------------------------------

RUN_D2 = analyze(SMALL, run(SMALL, steps=5))


@pytest.mark.parametrize(
    "call",
    [
        lambda: solve_svm(SMALL, "abc"),
        lambda: solve_svm(SMALL, [0.5, 1.0]),
        lambda: solve_svm(SMALL, [np.nan, 0]),
        lambda: solve_svm(SMALL, [[0, 1], [1, 0]]),
        lambda: selection_kind(SMALL, [0, 0], solution="x"),
        lambda: selection_kind(SMALL, [0, 0], solution=np.full((2, 2), np.nan)),
        lambda: correlation("a", "b"),
        lambda: correlation(np.full((2, 2), np.nan), np.eye(2)),
        lambda: correlation(np.ones(3), np.ones(3)),
        lambda: spectrum(np.full((2, 2), np.inf)),
        lambda: spectrum(None),
        lambda: log10_gap(np.array([0.5, np.nan])),
        lambda: normalized_margin(SMALL, np.eye(3), [0, 0]),
        lambda: analyze(SMALL, None),
        lambda: analyze(SMALL, [1, 2]),
        lambda: plane_geometry(SMALL, "not a run"),
        lambda: plane_geometry(SMALL, RUN_D2, frames=[99]),
        lambda: plane_geometry(SMALL, RUN_D2, extent=-1.0),
        lambda: plane_geometry(make_problem(n=3, T=3, d=2), RUN_D2),
        lambda: SVMCache(maxsize=0),
        lambda: run(SMALL, init="abc"),
        lambda: make_problem(n=float("nan")),
        lambda: make_problem(device=5),
        lambda: single_input_example(third_score="x"),
        lambda: run(dataclasses.replace(SMALL, X=torch.full_like(SMALL.X, np.nan))),
        lambda: solve_svm(dataclasses.replace(SMALL, y=torch.zeros_like(SMALL.y)), [0, 0]),
        lambda: analyze(dataclasses.replace(SMALL, values=SMALL.values.float()), run(SMALL, steps=1)),
        lambda: analyze(SMALL, [dataclasses.replace(s, W=s.W * np.nan) for s in run(SMALL, steps=2)]),
        lambda: plane_geometry(SMALL, dataclasses.replace(RUN_D2, selected=RUN_D2.selected + 7)),
    ],
)
def test_garbage_raises_optiscope_error(call):
    with pytest.raises(OptiscopeError):
        call()
