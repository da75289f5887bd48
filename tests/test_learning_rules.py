"""Reference behaviours of the learning-rules lab (numbers from /work/shared/notes/nobackprop_and_blackbox.md §1–3)."""

import dataclasses
import json
import math

import numpy as np
import pytest
import torch

from core.data.digits import load_digits_split
from core.errors import OptiscopeError
from core.learning_rules import (
    RuleConfig,
    boolean_task,
    estimate,
    margin_project,
    node_perturbation,
    noprop_run,
    read_gates,
    rrr_run,
    rules_run,
    schedule,
    shipped,
    theory,
)
from core.learning_rules.gates import truth_table
from core.learning_rules.noprop import class_circle
from core.learning_rules.perturbation import mlp_loss
from core.runs import last_state

XOR_IN = torch.tensor([[-1.0, -1.0], [-1.0, 1.0], [1.0, -1.0], [1.0, 1.0]])
XOR_OUT = -(XOR_IN[:, :1] * XOR_IN[:, 1:])


def test_noprop_elbo_identity_holds_in_float64():
    s = schedule(10)
    ratio = (s["a"] ** 2 / s["c"]) / (s["snr"][1:] - s["snr"][:-1])
    assert (ratio - 1).abs().max() < 1e-12


def test_noprop_schedule_matches_the_note():
    s = schedule(10)
    assert torch.allclose(
        s["abar"][[0, 1, 2, -2, -1]],
        torch.tensor([0.001, 0.0245, 0.0955, 0.9755, 0.999], dtype=torch.float64),
        atol=5e-5,
    )
    assert float(s["snr"][-1] - s["snr"][-2]) == pytest.approx(959, rel=2e-3)


def test_noprop_dt_classifies_digits():
    # the recipe's budget is 60 epochs (measured .978 / .981 noise-free here); 20 already clear the bar noise-free
    last = last_state(noprop_run(load_digits_split(0.2), steps=20, seed=0))
    assert last.accuracy_noise_free >= 0.95
    assert last.block_accuracy[0] >= 0.9  # block 1 alone classifies: every block sees the image
    assert last.block_losses.shape == (10,) and torch.isfinite(last.block_losses).all()


@pytest.mark.parametrize("d", [10, 100, 1000, 10000])
@pytest.mark.parametrize("method", ["weight", "spsa"])
def test_zeroth_order_error_and_cosine_match_theory(d, method):
    true = torch.randn(d, dtype=torch.float64, generator=torch.Generator().manual_seed(d))
    repeats, k = (400 if d > 100 else 1000), 10
    ests = [
        estimate(lambda p: p @ true, torch.zeros(d, dtype=torch.float64), method=method, n_samples=k, seed=s)
        for s in range(repeats)
    ]
    ests = torch.stack(ests)
    rel = ((ests - true).pow(2).sum(-1) / true.pow(2).sum()).mean()
    cos = torch.cosine_similarity(ests, true.expand_as(ests), dim=-1).mean()
    expected = theory(d, k, method=method)
    assert float(rel) == pytest.approx(expected["rel_mse"], rel=0.1)
    assert float(cos) == pytest.approx(expected["cosine"], rel=0.1)


def test_forward_gradient_equals_weight_perturbation_on_shared_directions():
    true = torch.randn(50, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    args = dict(n_samples=7, seed=3)
    fwd = estimate(lambda p: p @ true, torch.zeros(50, dtype=torch.float64), method="forward", **args)
    wp = estimate(lambda p: p @ true, torch.zeros(50, dtype=torch.float64), method="weight", **args)
    assert torch.allclose(fwd, wp, atol=1e-8)


def test_node_perturbation_aligns_better_than_weight_perturbation():
    data = load_digits_split(0.2)
    x, y = data["x_train"][:64].reshape(64, -1).double(), data["y_train"][:64]
    g = torch.Generator().manual_seed(0)
    params = {
        "w1": torch.randn(8, 64, generator=g, dtype=torch.float64) / 8,
        "b1": torch.zeros(8, dtype=torch.float64),
        "w2": torch.randn(10, 8, generator=g, dtype=torch.float64) / 3,
        "b2": torch.zeros(10, dtype=torch.float64),
    }
    shapes = {k: v.shape for k, v in params.items()}
    flat = torch.cat([v.flatten() for v in params.values()]).requires_grad_()

    def unflat(f):
        out, i = {}, 0
        for k, s in shapes.items():
            out[k] = f[..., i : i + s.numel()].reshape(*f.shape[:-1], *s)
            i += s.numel()
        return out

    true = torch.autograd.grad(mlp_loss(unflat(flat), x, y).mean(), flat)[0]
    flat = flat.detach()
    batched = torch.vmap(lambda f: mlp_loss(unflat(f), x, y).mean())
    cos_wp, cos_np = [], []
    for s in range(50):
        wp = estimate(batched, flat, method="weight", n_samples=1, sigma=1e-4, seed=s)
        nodes = node_perturbation(params, x, y, sigma=1e-4, seed=s)
        cos_wp.append(torch.cosine_similarity(wp, true, 0).abs())
        cos_np.append(torch.cosine_similarity(torch.cat([v.flatten() for v in nodes.values()]), true, 0))
    assert float(torch.stack(cos_np).mean()) > 3 * float(torch.stack(cos_wp).mean())  # note: .25 vs .033 at h = 8


def test_margin_projection_is_exact():
    g = torch.Generator().manual_seed(0)
    w, x = torch.randn(100, 5, generator=g, dtype=torch.float64), torch.randn(100, 5, generator=g, dtype=torch.float64)
    c = torch.randn(100, generator=g, dtype=torch.float64) * 3
    w2, x2 = margin_project(w, x, c)
    assert ((w2 * x2).sum(-1) - c).abs().max() < 1e-9


@pytest.fixture(scope="module")
def xor_runs():
    return last_state(rrr_run(XOR_IN, XOR_OUT, hidden=(3,), steps=1000, n_runs=20, every=1000, seed=0))


def test_rrr_reference_b1_solves_xor_with_exact_truth_table(xor_runs):
    assert int(xor_runs.solved.sum()) >= 18  # measured 20/20 (the note: 20/20, max 546 iterations)
    assert bool((xor_runs.accuracy[xor_runs.solved] == 1).all())


def test_rrr_unsolvable_architecture_reports_no_solution():
    # one hidden Maj3 gate cannot compute XOR: the run stops at `steps` with solved = False, never hangs
    last = last_state(rrr_run(XOR_IN, XOR_OUT, hidden=(1,), steps=200, every=200))
    assert last.step == 200 and not bool(last.solved.any())


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: rrr_run(XOR_IN * 0.5, XOR_OUT), "±1 Boolean"),
        (lambda: rrr_run(XOR_IN, XOR_OUT, steps=0), "steps"),
        (lambda: estimate(lambda p: p.sum(-1), torch.zeros(3), sigma=0.0), "sigma"),
        (lambda: estimate(lambda p: p.sum(-1), torch.zeros(3), method="magic"), "method"),
        (lambda: noprop_run(load_digits_split(0.2), eta=-1.0), "eta"),
        (lambda: noprop_run(load_digits_split(0.2), steps=10_000), "budget"),
        (lambda: RuleConfig(sigma=0.0), "sigma"),
        (lambda: RuleConfig(sigma=-1e-3), "sigma"),
        (lambda: RuleConfig(rule="hebb"), "rule"),
        (lambda: rules_run(load_digits_split(0.2), steps=0), "steps"),
        (lambda: rules_run({"x_train": torch.zeros(3, 5)}), "x_test"),
        (lambda: rules_run(load_digits_split(0.2), config=RuleConfig(hidden=1024, n_samples=10_000)), "budget"),
        (lambda: node_perturbation({}, torch.zeros(1, 64), torch.zeros(1, dtype=torch.long), sigma=0.0), "sigma"),
        (lambda: rrr_run(XOR_IN, torch.tensor([[0.0], [1.0], [1.0], [0.0]])), "±1 Boolean"),
        (lambda: boolean_task("parity9"), "name"),
    ],
)
def test_bad_input_is_refused_before_any_work(call, match):
    with pytest.raises(OptiscopeError, match=match):
        call()


# --- Training with each perturbation rule (item 1) ----------------------------------------------------------------


@pytest.fixture(scope="module")
def rule_runs():
    data = load_digits_split(0.2)
    return {
        rule: list(rules_run(data, config=RuleConfig(rule=rule), steps=500, every=250, seed=0))
        for rule in ("backprop", "node", "weight", "forward")
    }


def test_backprop_trains_the_mlp_and_is_its_own_gradient(rule_runs):
    last = rule_runs["backprop"][-1]
    assert last.step == 500 and last.forward_passes == 500
    assert last.cosine == pytest.approx(1.0, abs=1e-9)
    assert last.accuracy >= 0.9  # measured .94 at 600 steps (the note: .969 after 2,000)


def test_node_perturbation_trains_better_than_weight_perturbation(rule_runs):
    node, weight = rule_runs["node"], rule_runs["weight"]
    # the note at h = 32: cosine .125 (NP) vs .017 (WP); measured .17-.20 vs .017 here
    assert min(s.cosine for s in node) > 4 * max(s.cosine for s in weight)
    d = 32 * 75 + 10  # one probe: cos(ĝ, g) = |cos(u, g)|, whose mean is √(2/(πd)) for Gaussian u
    assert weight[-1].cosine == pytest.approx((2 / (math.pi * d)) ** 0.5, rel=0.2)
    assert node[-1].accuracy > weight[-1].accuracy + 0.2
    assert node[-1].forward_passes == 2 * 500 and weight[-1].forward_passes == 2 * 500


def test_forward_gradient_training_matches_weight_perturbation(rule_runs):
    # same directions, exact vs σ = 1e-4 slopes: the two runs take (nearly) the same steps
    fwd, wp = rule_runs["forward"], rule_runs["weight"]
    assert [s.accuracy for s in fwd] == pytest.approx([s.accuracy for s in wp], abs=0.02)
    assert fwd[-1].forward_passes == 500


def test_rules_run_states_are_frozen_and_detached(rule_runs):
    state = rule_runs["node"][0]
    with pytest.raises(dataclasses.FrozenInstanceError):
        state.step = 0
    assert all(math.isfinite(v) for v in (state.loss, state.test_loss, state.cosine, state.seconds))


# --- Boolean tasks and gates ----------------------------------------------------------------------------------------


def test_boolean_tasks_are_the_truth_tables():
    x, y = boolean_task("rule30")
    bits = lambda t: [int(v > 0) for v in t]  # noqa: E731
    rule = {tuple(bits(row)): int(out > 0) for row, out in zip(x, y[:, 0], strict=True)}
    assert [rule[tuple(map(int, f"{n:03b}"))] for n in range(7, -1, -1)] == [0, 0, 0, 1, 1, 1, 1, 0]  # rule 30
    x, y = boolean_task("mult2")
    value = lambda t: sum(int(v > 0) << i for i, v in enumerate(t))  # noqa: E731
    assert all(value(yy) == value(xx[:2]) * value(xx[2:]) for xx, yy in zip(x, y, strict=True))


@pytest.mark.parametrize(
    ("weights", "label"),
    [
        ([1.0, 1.0, -1.0], "OR(x1, x2)"),
        ([1.0, -1.0, 1.0], "AND(x1, ¬x2)"),
        ([1.0, 1.0, 1.0, 0.0], "MAJ(x1, x2, x3)"),
        ([0.0, -1.0, 0.0], "NOT(x2)"),
        ([0.1, 0.0, -1.0], "TRUE"),
        ([2.0, 1.0, 1.0, 0.0], "THR(x1, x2, x3)"),
    ],
)
def test_gates_are_named_from_their_truth_tables(weights, label):
    assert read_gates((torch.tensor([weights]),))[0][0].label == label


def test_solved_xor_reads_as_gates_that_compute_xor(xor_runs):
    assert bool((xor_runs.solved_at[xor_runs.solved] > 0).all()) and int(xor_runs.solved_at.max()) <= 1000
    run = int(xor_runs.solved.double().argmax())
    weights = tuple(w[run] for w in xor_runs.weights)
    assert torch.equal(truth_table(weights, XOR_IN)[-1], XOR_OUT.double())
    gates = read_gates(weights)
    assert all(g.name in {"AND", "OR", "MAJ", "COPY", "NOT"} for layer in gates for g in layer)  # σ = 3: Maj₃ at most


def test_noprop_states_carry_the_chain_for_one_image_per_class():
    state = next(noprop_run(load_digits_split(0.2), steps=1, T=4))
    assert state.chain_z.shape == (5, 10, 10) and state.seconds > 0
    assert class_circle(state.chain_z).shape == (5, 10, 2)


# --- The shipped views ----------------------------------------------------------------------------------------------


def test_shipped_views_hold_the_reference_behaviours():
    views = shipped.load()
    noprop = {m: runs[-1] for m, runs in views["noprop"].items()}
    assert noprop["noprop"]["step"] == 60
    assert noprop["noprop"]["accuracy_noise_free"] >= 0.965  # N1 (the note: .975)
    assert abs(noprop["noprop"]["accuracy_noise_free"] - noprop["backprop_chain"]["accuracy_noise_free"]) <= 0.02
    assert sum(k > 0 for k in views["rrr"]["solved_at"]) >= 18  # B1
    rules = {r: runs[-1]["accuracy"] for r, runs in views["rules"].items()}
    assert rules["backprop"] > rules["node"] > rules["weight"]


def test_shipped_rrr_run_is_reproduced_from_its_seed():
    s = shipped.SETTINGS["rrr"]
    x, y = boolean_task(s["task"])
    fresh = [shipped.record(st) for st in rrr_run(x, y, hidden=tuple(s["hidden"]), steps=s["steps"], seed=s["seed"])]
    stored = shipped.load()["rrr"]["run"]
    assert len(fresh) == len(stored)
    assert [r["gap"][0] for r in fresh] == pytest.approx([r["gap"][0] for r in stored], rel=1e-4)
    for new, old in zip(fresh[-1]["weights"], stored[-1]["weights"], strict=True):
        assert np.asarray(new) == pytest.approx(np.asarray(old), rel=1e-4, abs=1e-4)


def test_record_is_plain_json():
    state = last_state(rrr_run(XOR_IN, XOR_OUT, steps=3))
    assert json.loads(json.dumps(shipped.record(state)))["step"] == 3


# --- Devices (CUDA streams differ from CPU ones, so seeded runs are compared by their outcomes) ------------------


@pytest.mark.gpu
def test_cuda_matches_cpu(cuda):
    g = torch.Generator().manual_seed(0)
    w, x = torch.randn(50, 5, generator=g, dtype=torch.float64), torch.randn(50, 5, generator=g, dtype=torch.float64)
    c = torch.randn(50, generator=g, dtype=torch.float64)
    on_gpu = margin_project(w.to(cuda), x.to(cuda), c.to(cuda))
    for a, b in zip(on_gpu, margin_project(w, x, c), strict=True):
        torch.testing.assert_close(a.cpu(), b, rtol=1e-10, atol=1e-10)
    xor = last_state(rrr_run(XOR_IN.to(cuda), XOR_OUT.to(cuda), steps=1000, every=1000, n_runs=20))
    assert xor.gap.device.type == "cuda" and int(xor.solved.sum()) >= 18
    true = torch.randn(1000, dtype=torch.float64, device=cuda)
    ests = torch.stack([estimate(lambda p: p @ true, torch.zeros_like(true), n_samples=10, seed=s) for s in range(200)])
    assert ests.device.type == "cuda"
    cos = torch.cosine_similarity(ests, true.expand_as(ests), dim=-1).mean()
    assert float(cos) == pytest.approx(theory(1000, 10)["cosine"], rel=0.1)
    data = load_digits_split(0.2)
    gpu = {k: v.to(cuda) for k, v in data.items()}
    for rule in ("backprop", "node"):
        config = RuleConfig(rule=rule)
        a, b = (last_state(rules_run(d, config=config, steps=300, every=300)) for d in (data, gpu))
        assert b.accuracy == pytest.approx(a.accuracy, abs=0.05) and b.cosine == pytest.approx(a.cosine, abs=0.05)
    a, b = (last_state(noprop_run(d, steps=5, seed=0)) for d in (data, gpu))
    assert b.chain_z.device.type == "cuda" and b.accuracy_noise_free == pytest.approx(a.accuracy_noise_free, abs=0.05)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: rrr_run(XOR_IN, XOR_OUT, seed=math.nan), "seed"),
        (lambda: rules_run(load_digits_split(0.2), seed=-1), "seed"),
        (lambda: estimate(lambda p: p.sum(-1), torch.zeros(3, dtype=torch.complex64)), "floating"),
        (lambda: margin_project(torch.ones(2), torch.ones(3), torch.tensor(1.0)), "one shape"),
        (lambda: margin_project(torch.ones(2), torch.ones(2), torch.tensor([float("nan")])), "finite"),
    ],
)
def test_fuzz_findings_are_refused_with_a_message(call, match):
    with pytest.raises(OptiscopeError, match=match):
        call()
