"""Transformers as SVMs: the reference behaviours of issue 7 (see ../shared/notes/attention_svm.md)."""

from __future__ import annotations

import dataclasses

import cvxpy as cp
import numpy as np
import pytest
import torch

from core.attention_svm import (
    correlation,
    from_arrays,
    make_problem,
    margins,
    normalized_margin,
    optimal_tokens,
    rank,
    selection_kind,
    single_input_example,
    solve_svm,
    train,
    train_batch,
)
from core.attention_svm import svm as svm_module
from core.attention_svm.train import loss_grad

# --- problems and bad input ---------------------------------------------------------------------------------


def test_make_problem_is_the_papers_setup():
    p = make_problem(6, 8, 10, seed=3)
    assert (p.X.shape, p.z.shape, p.y.shape, p.v.shape) == ((6, 8, 10), (6, 10), (6,), (10,))
    assert p.X.dtype == torch.float64
    torch.testing.assert_close(p.X.norm(dim=-1), torch.ones(6, 8, dtype=torch.float64), atol=1e-6, rtol=0)
    torch.testing.assert_close(p.z.norm(dim=-1), torch.ones(6, dtype=torch.float64), atol=1e-6, rtol=0)
    assert set(p.y.tolist()) <= {-1.0, 1.0}
    torch.testing.assert_close(p.values, p.X @ p.v)
    q = make_problem(6, 8, 10, seed=3)
    assert torch.equal(p.X, q.X) and not torch.equal(p.X, make_problem(6, 8, 10, seed=4).X)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: make_problem(6, 1, 10), "`T`"),
        (lambda: make_problem(6, 8, 0), "`d`"),
        (lambda: make_problem(0, 8, 3), "`n`"),
        (lambda: next(train(make_problem(2, 3, 2), lr=0.0)), "`lr`"),
        (lambda: next(train(make_problem(2, 3, 2), lr=-1)), "`lr`"),
        (lambda: next(train(make_problem(2, 3, 2), param="QK")), "`param`"),
        (lambda: solve_svm(make_problem(2, 3, 2), [0, 0], norm="l1"), "`norm`"),
        (lambda: solve_svm(make_problem(2, 3, 2), [0, 5]), "selected"),
        (lambda: from_arrays(np.zeros((1, 1, 2)), np.zeros((1, 2)), [1.0], v=[1.0, 0.0]), "`T`"),
        (lambda: from_arrays(np.zeros((1, 2, 2)), np.zeros((1, 2)), [0.5], v=[1.0, 0.0]), "labels"),
        (lambda: from_arrays(np.zeros((1, 2, 2)), np.zeros((1, 3)), [1.0], v=[1.0, 0.0]), "`z`"),
        (lambda: from_arrays(np.zeros((1, 2, 2)), np.zeros((1, 2)), [1.0]), "`v`"),
        (lambda: from_arrays([[[np.nan, 0.0], [0.0, 1.0]]], np.zeros((1, 2)), [1.0], v=[1.0, 0.0]), "finite"),
    ],
)
def test_bad_input_raises_clear_value_errors(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_solver_failure_is_a_value_error(monkeypatch):
    def broken(self, *args, **kwargs):
        raise cp.error.SolverError("numerical trouble")

    monkeypatch.setattr(cp.Problem, "solve", broken)
    p = make_problem(3, 4, 5, seed=0)
    with pytest.raises(ValueError, match="solver"):
        solve_svm(p, optimal_tokens(p))


# --- training -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("param", ["W", "KQ"])
def test_closed_form_gradient_matches_autograd(param):
    p = make_problem(4, 5, 3, seed=1)
    X, z, h, y = (t[None] for t in (p.X, p.z, p.values, p.y))
    W = torch.randn(1, 3, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0), requires_grad=True)
    probs = torch.softmax(torch.einsum("bitd,bde,bie->bit", X, W, z), -1)
    loss = torch.log(1 + torch.exp(-y * (probs * h).sum(-1))).mean()
    (auto,) = torch.autograd.grad(loss, W)
    grad, _, ours = loss_grad(X, z, h, y, W.detach())
    torch.testing.assert_close(torch.from_numpy(grad), auto)
    torch.testing.assert_close(torch.from_numpy(ours)[0], loss.detach())


@pytest.mark.parametrize("param", ["W", "KQ"])
def test_train_follows_the_authors_loop(param):
    """Our closed-form steps equal the notebook's autograd + normalize + SGD loop from the same init."""
    p = make_problem(6, 8, 10, seed=0)
    eps = torch.finfo(torch.float64).eps
    states = list(train(p, param=param, steps=5, lr=0.1, seed=7))
    first = states[0]
    params = [first.W.clone().requires_grad_()] if param == "W" else [first.K.clone().requires_grad_(),
                                                                      first.Q.clone().requires_grad_()]
    opt = torch.optim.SGD(params, lr=0.1)
    for state in states[1:]:
        opt.zero_grad()
        W = params[0] if param == "W" else params[0].T @ params[1]
        probs = torch.softmax(torch.einsum("itd,de,ie->it", p.X, W, p.z), -1)
        loss = torch.log(1 + torch.exp(-p.y * (probs * p.values).sum(-1))).mean()
        if param == "KQ":
            loss = loss + eps * (params[0].norm() ** 2 + params[1].norm() ** 2)
        loss.backward()
        for q in params:
            q.grad /= q.grad.norm() + eps
        opt.step()
        W = params[0] if param == "W" else params[0].T @ params[1]
        torch.testing.assert_close(state.W, W.detach(), rtol=1e-10, atol=1e-12)


def test_states_are_frozen_float64_and_detached():
    states = list(train(make_problem(3, 4, 5, seed=0), param="KQ", steps=3, normalized=False))
    assert [s.step for s in states] == [0, 1, 2, 3]
    s = states[-1]
    assert s.W.dtype == torch.float64 and not s.W.requires_grad and s.probs.shape == (3, 4)
    torch.testing.assert_close(s.W, s.K.T @ s.Q)
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.loss = 0
    assert not torch.equal(states[0].W, states[-1].W)  # a yielded state is never overwritten later


def test_zero_gradient_without_conventions_takes_no_step_instead_of_nan():
    p = make_problem(2, 3, 2, seed=0)
    big = 1e6 * solve_svm(p, optimal_tokens(p)) if solve_svm(p, optimal_tokens(p)) is not None else None
    init = big if big is not None else 1e6 * torch.eye(2, dtype=torch.float64)
    for param in ("W", "KQ"):
        last = list(train(p, param=param, steps=3, conventions=False, init=init))[-1]
        assert torch.isfinite(last.W).all()


# --- Att-SVM --------------------------------------------------------------------------------------------------


def test_single_input_svm_values_A1():
    p = single_input_example(0.0)
    W = solve_svm(p, [0])
    np.testing.assert_allclose(W[:, 0].numpy(), np.array([-0.1, 1.0]) / 1.01, atol=1e-5)
    assert 0.5 * float(W.norm() ** 2) == pytest.approx(0.49505, abs=1e-5)
    W_local = solve_svm(p, [1])
    np.testing.assert_allclose(W_local[:, 0].numpy(), [1.0, 0.0], atol=1e-6)
    assert 0.5 * float(W_local.norm() ** 2) == pytest.approx(0.5, abs=1e-6)
    assert [selection_kind(p, [t]) for t in range(3)] == ["global", "local", "not optimal"]
    assert selection_kind(single_input_example(0.9), [1]) == "not optimal"


@pytest.mark.parametrize("third_score", [0.0, 0.9])
def test_single_input_basins_A2(third_score):
    p = single_input_example(third_score)
    target = {0: solve_svm(p, [0]), 1: solve_svm(p, [1])}
    for y0 in (1, 0.5, 0, -0.5, -1, -1.5):
        last = list(train(p, steps=2000, lr=0.1, init=[[0.0, 0.0], [y0, 0.0]]))[-1]
        expected = 1 if (third_score == 0.0 and y0 <= -1) else 0
        assert int(last.selected[0]) == expected, (third_score, y0)
        if third_score == 0.0:
            assert correlation(last.W, target[expected]) > 0.99


@pytest.mark.parametrize("d", [5, 10, 20])
def test_svm_margins_and_nuclear_rank_A5(d):
    fro_ranks, nuc_ranks = [], []
    for seed in range(5):
        p = make_problem(5, 5, d, seed=seed)
        sel = optimal_tokens(p)
        W_fro, W_nuc = solve_svm(p, sel, "fro"), solve_svm(p, sel, "nuc")
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
    feasible = 0
    for seed in range(20):
        p = make_problem(5, 5, 2, seed=seed)
        W = solve_svm(p, optimal_tokens(p))
        feasible += W is not None
        if W is None:
            assert selection_kind(p, optimal_tokens(p)) == "infeasible"
    assert feasible <= 10


def test_correlation():
    A = torch.randn(4, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    assert correlation(A, 2 * A) == pytest.approx(1.0)
    assert correlation(A, -A) == pytest.approx(-1.0)
    assert correlation(A, torch.zeros(4, 4)) == 0.0
    assert correlation(A.numpy(), A) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="shape"):
        correlation(A, torch.eye(3))


def test_svm_programs_are_cached_per_shape():
    p = make_problem(3, 4, 5, seed=0)
    solve_svm(p, optimal_tokens(p))
    before = len(svm_module._CACHE)
    solve_svm(make_problem(3, 4, 5, seed=1), [0, 0, 0])
    assert len(svm_module._CACHE) == before


# --- the paper's experiment (local_converge), 20 seeds, vectorised over seeds ---------------------------------

CHECKPOINTS = (0, 100, 500, 2000)


def _experiment(param: str, conventions: bool):
    problems = [make_problem(6, 8, 10, seed=s) for s in range(20)]
    kept, norms = {}, []
    for state in train_batch(problems, param=param, steps=2000, lr=0.1, conventions=conventions):
        norms.append(torch.linalg.matrix_norm(state.W))
        if state.step in CHECKPOINTS:
            kept[state.step] = state
    sel = kept[2000].selected
    svms = [(solve_svm(p, sel[b], "fro"), solve_svm(p, sel[b], "nuc")) for b, p in enumerate(problems)]
    own, other = (0, 1) if param == "W" else (1, 0)
    corr = {k: np.array([correlation(s.W[b], svms[b][own]) for b in range(20)]) for k, s in kept.items()}
    mismatch = np.array([correlation(kept[2000].W[b], svms[b][other]) for b in range(20)])
    return corr, mismatch, kept, torch.stack(norms)  # norms: (steps + 1, 20)


@pytest.fixture(scope="module")
def experiments():
    return {(param, conv): _experiment(param, conv) for param in ("W", "KQ") for conv in (True, False)}


@pytest.mark.slow
@pytest.mark.parametrize("param", ["W", "KQ"])
def test_correlation_with_own_svm_rises_to_one_A3(experiments, param):
    corr, mismatch, _, _ = experiments[(param, True)]
    medians = [np.median(corr[k]) for k in CHECKPOINTS[1:]]
    assert medians[0] < medians[1] < medians[2], medians
    assert medians[2] >= 0.99
    assert np.median(corr[2000]) - np.median(mismatch) >= 0.05  # each bias can be told apart
    assert (corr[2000] > mismatch).mean() >= 0.9


@pytest.mark.slow
@pytest.mark.parametrize("param", ["W", "KQ"])
def test_softmax_saturates_and_norm_grows_A4(experiments, param):
    _, _, kept, norms = experiments[(param, True)]
    assert float(kept[500].probs.max(-1).values.min()) >= 0.999
    assert bool((10 * norms[0] < norms[2000]).all() and (norms[100] < norms[2000]).all())
    if param == "W":  # each normalized step moves W by exactly η: ‖W(k)‖ ≤ ‖W(0)‖ + ηk, and ≤ ηk once k ≥ 100
        k = torch.arange(norms.shape[0], dtype=torch.float64)[:, None]
        assert bool((norms <= norms[0] + 0.1 * k + 1e-9).all())
        assert bool((norms[100:] <= 0.1 * k[100:]).all())
        assert bool((norms[100] < norms[500]).all() and (norms[500] < norms[2000]).all())


@pytest.mark.slow
@pytest.mark.parametrize("param", ["W", "KQ"])
def test_without_conventions_the_direction_drifts(experiments, param):
    on, _, _, _ = experiments[(param, True)]
    off, _, _, _ = experiments[(param, False)]
    assert np.median(off[2000]) < np.median(on[2000]) - 0.02
    assert np.std(off[2000]) > 3 * np.std(on[2000])  # seed-dependent
    assert np.min(off[2000]) < 0.9
