"""Reference behaviours of issue 4 (float64, fixed seeds), the shipped float32 path, thread safety, budgets
and the bad-input contract of core.landscape."""

from __future__ import annotations

import copy
import threading

import numpy as np
import pytest
import torch
from torch import nn

from core.errors import OptiscopeError
from core.landscape import (
    criteria,
    eigenpairs,
    exact_spectrum,
    hessian_trace,
    layer_spectra,
    loss_fn_for,
    params_of,
    plane,
    project,
    random_directions,
    refine,
    spectral_density,
    spectrum_summary,
    surface,
)
from core.landscape.directions import random_direction
from core.landscape.exact import hessian_matrix
from core.landscape.functional import flatten, unflatten
from core.landscape.hvp import hvp

D = torch.float64


def quadratic(p: int, eigs: torch.Tensor, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(p, p, generator=gen, dtype=D))
    a = q @ torch.diag(eigs) @ q.T
    return a, q, (lambda prm: 0.5 * prm["x"] @ a @ prm["x"])


@pytest.fixture(scope="module")
def quad50():
    eigs = torch.linspace(-2, 10, 50, dtype=D)
    a, q, f = quadratic(50, eigs)
    return a, f, {"x": torch.randn(50, generator=torch.Generator().manual_seed(1), dtype=D)}


def _mlp(sizes, bias=True, seed=0):
    torch.manual_seed(seed)
    layers = [nn.Flatten()]
    for i, (m, k) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        layers.append(nn.Linear(m, k, bias=bias))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers).double()


def _batch(n, d, classes=10, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=gen, dtype=D), torch.randint(0, classes, (n,), generator=gen)


# 1. Quadratic: HVP, Lanczos LA/SA/LM
def test_hvp_equals_av(quad50):
    a, f, theta = quad50
    v = {"x": torch.randn(50, generator=torch.Generator().manual_seed(2), dtype=D)}
    assert torch.allclose(hvp(f, theta, v)["x"], a @ v["x"], atol=1e-10)
    many = hvp(f, theta, [v, {"x": 2 * v["x"]}])  # one batched product
    assert torch.allclose(many[1]["x"], 2 * a @ v["x"], atol=1e-10)


@pytest.mark.parametrize(("which", "k"), [("LA", 5), ("SA", 2), ("LM", 3)])
def test_lanczos_matches_eigh(quad50, which, k):
    a, f, theta = quad50
    values, vectors = np.linalg.eigh(a.numpy())
    order = {"LA": np.argsort(-values), "SA": np.argsort(values), "LM": np.argsort(-np.abs(values))}[which][:k]
    res = eigenpairs(f, theta, k=k, which=which, tol=1e-8, seed=3)
    assert res.converged and res.num_hvps <= 50
    np.testing.assert_allclose(res.eigenvalues.numpy(), values[order], rtol=1e-4)
    for vec, i in zip(res.eigenvectors, order, strict=True):
        assert abs(float(vec["x"] @ torch.from_numpy(vectors[:, i]))) > 0.999


def test_lanczos_finds_repeated_eigenvalues():
    f = lambda p: 0.5 * (p["x"] ** 2 * torch.tensor([3.0, 3.0, 1.0, 1.0], dtype=D)).sum()  # noqa: E731
    res = eigenpairs(f, {"x": torch.zeros(4, dtype=D)}, k=3, which="LA")
    np.testing.assert_allclose(res.eigenvalues.numpy(), [3, 3, 1], atol=1e-10)


# 2. Trace, SLQ, criteria
def test_hutchinson_exact_for_diagonal():
    diag = torch.linspace(-3, 7, 20, dtype=D)
    f = lambda p: 0.5 * (diag * p["x"] ** 2).sum()  # noqa: E731
    est = hessian_trace(f, {"x": torch.ones(20, dtype=D)}, n_probes=1, seed=5)
    assert abs(est.trace - float(diag.sum())) < 1e-10 and est.num_hvps == 1


def test_hutchpp_beats_hutchinson_on_decaying_spectrum():
    eigs = 100.0 * 0.7 ** torch.arange(200, dtype=D)
    _, _, f = quadratic(200, eigs)
    theta, true = {"x": torch.zeros(200, dtype=D)}, float(eigs.sum())
    plain = hessian_trace(f, theta, n_probes=30, seed=0, method="hutchinson")
    plus = hessian_trace(f, theta, n_probes=30, seed=0, method="hutch++")
    assert abs(plus.trace - true) / true < 0.01 and plus.stderr < plain.stderr / 5 and plus.num_hvps == 30


def test_krylov_trace_is_exact_once_lanczos_spans_the_space(quad50):
    a, f, theta = quad50
    est = hessian_trace(f, theta, n_probes=84, seed=0, method="krylov")  # 50 Lanczos steps span all of R^50
    assert abs(est.trace - float(torch.trace(a))) < 1e-9 and est.stderr == 0.0 and est.num_hvps == 50


def test_krylov_trace_is_unbiased_and_beats_hutchpp_and_hutchinson_at_equal_products():
    # a power-law spectrum like a trained network's Hessian (digits MLP: 84% of tr H in the top 20 of 4,810)
    eigs = 0.3 * torch.arange(1, 401, dtype=D) ** -1.3
    _, _, f = quadratic(400, eigs)
    theta, true = {"x": torch.zeros(400, dtype=D)}, float(eigs.sum())

    def errors(method: str, n: int) -> torch.Tensor:
        runs = [hessian_trace(f, theta, n_probes=n, seed=s, method=method).trace for s in range(40)]
        return (torch.tensor(runs, dtype=D) - true) / true

    krylov = {n: errors("krylov", n) for n in (10, 20, 40)}
    medians = {n: float(e.abs().median()) for n, e in krylov.items()}
    assert medians[40] < medians[20] < medians[10]  # measured 0.36% < 1.22% < 3.22% (40 seeds)
    assert medians[40] < 0.006
    hutchpp = {n: float(errors("hutch++", n).abs().median()) for n in (10, 20, 40)}  # 5.89%, 1.75%, 1.06%
    plain = {n: float(errors("hutchinson", n).abs().median()) for n in (10, 20, 40)}  # 9.39%, 5.21%, 3.79%
    assert all(medians[n] < hutchpp[n] and medians[n] < plain[n] / 2.5 for n in (10, 20, 40))
    assert medians[40] < hutchpp[40] / 2 and medians[40] < plain[40] / 5
    # unbiased: the deflated probes are independent of the Lanczos space, so the mean error is noise
    assert abs(float(krylov[10].mean())) < 3 * float(krylov[10].std()) / 40**0.5


def test_slq_full_length_reproduces_spectrum():
    eigs = torch.linspace(-1, 5, 200, dtype=D)
    _, _, f = quadratic(200, eigs)
    out = spectral_density(f, {"x": torch.zeros(200, dtype=D)}, n_runs=2, m=200, seed=0)
    for r in range(2):
        np.testing.assert_allclose(out.nodes[r].numpy(), eigs.numpy(), atol=1e-6)
        assert abs(float(out.weights[r].sum()) - 1) < 1e-12
    assert abs(float(out.density.sum() * (out.grid[1] - out.grid[0])) - 1) < 1e-9


def test_criteria_reference():
    assert criteria([-1.0, 4.0], [0.5, 0.5], n=0.5) == pytest.approx({"re": 0.25, "kh": 0.5})
    assert criteria([[1.0, 4.0], [-2.0, 4.0]], [[0.5, 0.5], [0.5, 0.5]], n=1.0) == pytest.approx(
        {"re": 0.375, "kh": 0.25}
    )


# 3. Surface exactness
def test_surface_along_eigenvectors_is_exact():
    eigs = torch.tensor([3.0, -1.5, 0.5, 2.0], dtype=D)
    a, q, f = quadratic(4, eigs)
    theta = {"x": torch.zeros(4, dtype=D)}
    before = theta["x"].clone()
    s = surface(f, theta, ({"x": q[:, 0]}, {"x": q[:, 1]}), extent=2.0, n=41)
    grid = torch.linspace(-2, 2, 41, dtype=D)
    expected = 0.5 * (3.0 * grid[:, None] ** 2 - 1.5 * grid[None, :] ** 2)
    assert s.loss.shape == (41, 41) and torch.allclose(s.loss, expected, atol=1e-8)
    assert s.loss[20, 20] == f(theta)
    assert torch.equal(theta["x"], before)


def test_surface_centre_and_params_untouched_on_model():
    model = _mlp([20, 16, 5])
    loss_fn = loss_fn_for(model, *_batch(64, 20, 5))
    theta = params_of(model)
    snapshot = {k: v.clone() for k, v in theta.items()}
    s = surface(loss_fn, theta, random_directions(theta, seed=0), extent=0.5, n=11)
    assert s.engine == "affine"
    assert float(s.loss[5, 5]) == pytest.approx(float(loss_fn(theta)), abs=1e-12)
    assert all(torch.equal(theta[k], snapshot[k]) for k in theta)
    assert all(torch.equal(v, dict(model.named_parameters())[k]) for k, v in snapshot.items())


# 4. Batched = sequential on a 784-64-10 MLP
def test_batched_grid_equals_plain_loop():
    model = _mlp([784, 64, 10])
    loss_fn = loss_fn_for(model, *_batch(200, 784))
    theta = params_of(model)
    d1, d2 = random_directions(theta, seed=1)
    fast = surface(loss_fn, theta, (d1, d2), extent=1.0, n=7)
    generic = surface(loss_fn, theta, (d1, d2), extent=1.0, n=7, engine="vmap")
    grid = torch.linspace(-1, 1, 7, dtype=D)
    with torch.no_grad():
        loop = torch.tensor(
            [[float(loss_fn({k: theta[k] + x * d1[k] + y * d2[k] for k in theta})) for y in grid] for x in grid],
            dtype=D,
        )
    assert fast.engine == "affine" and generic.engine == "vmap"
    assert torch.allclose(fast.loss, loop, atol=1e-6) and torch.allclose(generic.loss, loop, atol=1e-6)
    line = surface(loss_fn, theta, (d1,), extent=1.0, n=7)
    assert torch.allclose(line.loss, loop[:, 3], atol=1e-6)


def test_batchnorm_cnn_engines_agree_and_bn_policy():
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 3)
    ).double()
    model.train()(torch.randn(32, 1, 8, 8, dtype=D))  # give BN non-trivial running stats
    gen = torch.Generator().manual_seed(1)
    batch = (torch.randn(16, 1, 8, 8, generator=gen, dtype=D), torch.randint(0, 3, (16,), generator=gen))
    theta = params_of(model)
    plane_ = random_directions(theta, seed=0)
    for bn in ("eval", "batch"):
        loss_fn = loss_fn_for(model, *batch, bn=bn)
        fast, loop = surface(loss_fn, theta, plane_, n=5), surface(loss_fn, theta, plane_, n=5, engine="loop")
        assert fast.engine == "affine" and torch.allclose(fast.loss, loop.loss, atol=1e-8)
    running = model[1].running_mean.clone()
    eval_loss = loss_fn_for(model, *batch, bn="eval")(theta)
    batch_loss = loss_fn_for(model, *batch, bn="batch")(theta)
    assert not torch.isclose(eval_loss, batch_loss) and torch.equal(model[1].running_mean, running)


# 5. Filter-normalization invariance
def test_filter_normalization_is_rescaling_invariant():
    model = _mlp([12, 8, 4], bias=False)
    batch = _batch(50, 12, 4)
    scaled = _mlp([12, 8, 4], bias=False)
    with torch.no_grad():
        scaled[1].weight.mul_(10.0)
        scaled[3].weight.div_(10.0)
    surfaces = {}
    for name, m in (("base", model), ("scaled", scaled)):
        theta, loss_fn = params_of(m), loss_fn_for(m, *batch)
        for norm in ("filter", None):
            d1, d2 = random_directions(theta, norm=norm, seed=4)
            surfaces[name, norm] = surface(loss_fn, theta, (d1, d2), extent=1.0, n=9).loss
            if norm == "filter":
                for k in theta:
                    assert torch.allclose(d1[k].norm(dim=1), theta[k].norm(dim=1), rtol=1e-12)
    assert torch.allclose(surfaces["base", "filter"], surfaces["scaled", "filter"], atol=1e-6)
    assert not torch.allclose(surfaces["base", None], surfaces["scaled", None], atol=1e-3)


def test_directions_are_gaussian_and_orthogonal_before_normalization():
    theta = {"w": torch.ones(300, 10, dtype=D)}
    d = random_direction(theta, norm=None, seed=0)["w"]
    assert abs(float(d.mean())) < 0.1 and abs(float(d.std()) - 1) < 0.05 and float(d.min()) < -2  # not uniform[0, 1]
    d1, d2 = random_directions(theta, norm=None, seed=0)
    assert abs(float(flatten(d1) @ flatten(d2))) < 1e-9
    assert torch.allclose(random_direction(theta, norm="weight", seed=0)["w"], d)
    for norm in ("layer", "model"):
        assert float(random_direction(theta, norm=norm, seed=0)["w"].norm()) == pytest.approx(float(theta["w"].norm()))


# Exact oracle, per-layer spectra, trajectory
def test_exact_oracle_agrees_with_lanczos_and_per_layer():
    model = _mlp([6, 5, 3])
    loss_fn, theta = loss_fn_for(model, *_batch(40, 6, 3)), params_of(model)
    exact = exact_spectrum(loss_fn, theta)
    top = eigenpairs(loss_fn, theta, k=3, which="LA", tol=1e-9)
    np.testing.assert_allclose(top.eigenvalues.numpy(), exact.eigenvalues.flip(0)[:3].numpy(), rtol=1e-6)
    assert abs(float(flatten(top.eigenvectors[0]) @ flatten(exact.vector(-1)))) > 0.999
    h = torch.autograd.functional.hessian(lambda x: loss_fn(unflatten(x, theta)), flatten(theta))
    start, sampled = 0, 0
    for spec in layer_spectra(loss_fn, theta, n_probes=10):  # tensors of 30 and 15 entries: Hutchinson
        block = h[start : start + spec.size, start : start + spec.size]
        start += spec.size
        assert spec.lambda_max == pytest.approx(float(torch.linalg.eigvalsh(block)[-1]), rel=1e-6)
        if spec.size <= 10:  # exact: the diagonal from unit vectors
            assert spec.trace_stderr == 0.0 and spec.trace == pytest.approx(float(block.trace()), abs=1e-10)
        else:
            sampled += 1
            assert 0 < spec.trace_stderr and abs(spec.trace - float(block.trace())) < 4 * spec.trace_stderr
    assert sampled == 2


def test_project_recovers_plane_coordinates():
    gen = torch.Generator().manual_seed(0)
    theta = {"w": torch.randn(3, 4, generator=gen, dtype=D), "b": torch.randn(3, generator=gen, dtype=D)}
    d1, d2 = random_directions(theta, seed=0, zero_1d=False)
    path = [{k: theta[k] + x * d1[k] + y * d2[k] for k in theta} for x, y in [(0.0, 0.0), (0.3, -0.2), (-1.0, 0.5)]]
    expected = torch.tensor([[0.0, 0.0], [0.3, -0.2], [-1.0, 0.5]], dtype=D)
    assert torch.allclose(project(path, theta, (d1, d2)), expected, atol=1e-10)


# The shipped float32 path
@pytest.fixture(scope="module")
def converged():
    from core import zoo
    from core.landscape.models import batch_for

    model = zoo.load("digits-mlp-converged")
    return model, batch_for("digits-mlp-converged")


def test_float32_lanczos_on_the_shipped_mlp_matches_the_exact_float64_spectrum(converged):
    """The app runs float32 zoo models: λ1 of the shipped MLP against eigvalsh of a float64 copy's exact Hessian."""
    model, (x, y) = converged
    lam = eigenpairs(loss_fn_for(model, x, y), params_of(model), k=1, which="LA", tol=1e-6, seed=0)
    assert lam.eigenvalues.dtype == torch.float32 and lam.converged
    model64 = copy.deepcopy(model).double()
    exact = torch.linalg.eigvalsh(hessian_matrix(loss_fn_for(model64, x.double(), y), params_of(model64)))
    assert float(lam.eigenvalues[0]) == pytest.approx(float(exact[-1]), rel=1e-4)


# Thread safety: one closure shared by every session (st.cache_resource)
def test_shared_model_loss_is_thread_safe(converged):
    """≥ 2 threads evaluating one ModelLoss at different points: every loss equals its sequential value."""
    model, (x, y) = converged
    loss_fn, theta = loss_fn_for(model, x, y), params_of(model)
    d1, d2 = random_directions(theta, seed=0)
    points = [{k: theta[k] + 0.1 * i * d1[k] - 0.05 * i * d2[k] for k in theta} for i in range(12)]
    with torch.no_grad():
        sequential = [loss_fn(p) for p in points]
    calls, mismatches, per_thread = [0], [], 160

    def hammer(t: int) -> None:
        for r in range(per_thread):
            i = (7 * t + r) % len(points)
            with torch.no_grad():
                value = loss_fn(points[i])
            calls[0] += 1
            if not torch.equal(value, sequential[i]):
                mismatches.append((t, i))

    threads = [threading.Thread(target=hammer, args=(t,)) for t in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert calls[0] == 640 and mismatches == []
    assert all(torch.equal(v, dict(model.named_parameters())[k]) for k, v in theta.items())


def test_shared_surfaces_from_several_threads_equal_sequential(converged):
    model, (x, y) = converged
    loss_fn, theta = loss_fn_for(model, x, y), params_of(model)
    planes = [random_directions(theta, seed=s) for s in range(3)]
    sequential = [surface(loss_fn, theta, p, n=7).loss for p in planes]
    results: dict[tuple[int, int], torch.Tensor] = {}

    def work(t: int) -> None:
        for r in range(3):
            results[t, r] = surface(loss_fn, theta, planes[(t + r) % 3], n=7).loss

    threads = [threading.Thread(target=work, args=(t,)) for t in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 9 and all(torch.equal(v, sequential[(t + r) % 3]) for (t, r), v in results.items())


# Coarse to fine, Hessian axes, the page's spectrum
def test_refine_validates_when_called_and_yields_coarse_then_full(quad50):
    _, f, theta = quad50
    d = ({"x": torch.ones(50, dtype=D)}, {"x": torch.arange(50, dtype=D)})
    with pytest.raises(OptiscopeError, match="`n`"):
        refine(f, theta, d, n=12)
    with pytest.raises(OptiscopeError, match="`coarse`"):
        refine(f, theta, d, n=21, coarse=4)
    states = list(refine(f, theta, d, extent=0.5, n=21, coarse=5))
    assert [s.loss.shape for s in states] == [(5, 5), (21, 21)]
    assert torch.equal(states[-1].loss, surface(f, theta, d, extent=0.5, n=21).loss)
    assert len(list(refine(f, theta, d, n=5))) == 1


def test_plane_hessian_axes_are_the_extreme_eigenvectors(quad50):
    a, f, theta = quad50
    values, vectors = np.linalg.eigh(a.numpy())
    hess = plane(f, theta, axes="hessian", seed=0)
    assert hess.eigenvalues == pytest.approx((values[-1], values[0]), rel=1e-4)
    assert abs(float(hess.d2["x"] @ torch.from_numpy(vectors[:, 0]))) > 0.999
    pair = plane(f, theta, axes="pair", i=3, j=1)
    assert pair.eigenvalues == pytest.approx((values[-3], values[-1]), rel=1e-4) and "λ3" in pair.label
    with pytest.raises(OptiscopeError, match="`i` ≠ `j`"):
        plane(f, theta, axes="pair", i=2, j=2)
    with pytest.raises(OptiscopeError, match="`axes`"):
        plane(f, theta, axes="Hessian (λmax, λmin)")


def test_spectrum_summary_composes_the_reference_methods():
    model = _mlp([6, 5, 3])
    loss_fn, theta = loss_fn_for(model, *_batch(40, 6, 3)), params_of(model)
    summary = spectrum_summary(loss_fn, theta, k=3, seed=0)
    exact = exact_spectrum(loss_fn, theta).eigenvalues
    np.testing.assert_allclose(summary.top, exact.flip(0)[:3].numpy(), rtol=1e-4)
    assert (summary.slq_runs, summary.slq_steps) == (4, 53) and summary.converged
    assert summary.trace.trace == pytest.approx(float(exact.sum()), rel=0.05)
    assert [s.name for s in summary.layers] == list(theta)
    area = float(summary.density.sum() * (summary.grid[1] - summary.grid[0]))
    assert area == pytest.approx(1.0, abs=1e-9) and 0 <= summary.criteria["re"] <= 1


# Budgets
def test_budgets_are_refused_with_their_name(converged):
    from core.landscape.lanczos import MAX_BASIS

    model, (x, y) = converged
    loss_fn, theta = loss_fn_for(model, x, y), params_of(model)
    with pytest.raises(OptiscopeError, match="grid points × parameters"):
        surface(loss_fn, theta, random_directions(theta, seed=0), n=201)
    with pytest.raises(OptiscopeError, match="Krylov basis elements n_runs·m·P"):
        spectral_density(loss_fn, theta, n_runs=MAX_BASIS // (80 * 4810) + 1, m=80)
    with pytest.raises(OptiscopeError, match=r"Krylov basis elements \(max_iter \+ 1\)·P"):
        eigenpairs(loss_fn, theta, max_iter=4000)
    with pytest.raises(OptiscopeError, match="parameters for an exact Hessian"):
        exact_spectrum(lambda p: (p["x"] ** 2).sum(), {"x": torch.zeros(6001)})


def test_the_cnn_grid_budget_names_the_largest_resolution():
    from core import zoo
    from core.landscape.models import batch_for

    model = zoo.load("shapes-cnn")
    loss_fn, theta = loss_fn_for(model, *batch_for("shapes-cnn")), params_of(model)
    directions = random_directions(theta, seed=0)
    with pytest.raises(OptiscopeError, match=r"use a resolution n ≤ 21"):
        refine(loss_fn, theta, directions, n=101)
    with pytest.raises(OptiscopeError, match=r"n ≤ 21"):
        surface(loss_fn, theta, directions, n=23)
    assert surface(loss_fn, theta, directions[:1], n=101).loss.shape == (101,)  # a 1-D slice is 101 points


def test_lanczos_steps_are_capped_and_convergence_reported(quad50):
    from core.landscape.lanczos import default_max_iter

    _, f, theta = quad50
    capped = eigenpairs(f, theta, k=2, tol=1e-12, max_iter=3)
    assert capped.num_hvps == 3 and not capped.converged
    assert default_max_iter(4810) == 300 and default_max_iter(98_454) == 169 and default_max_iter(50) == 50


def test_training_trajectory_leaves_the_global_rng_alone():
    from core import zoo
    from core.landscape.models import training_trajectory

    before = torch.get_rng_state()
    path = training_trajectory(every=5, steps=10)
    assert torch.equal(torch.get_rng_state(), before)
    shipped = zoo.load("digits-mlp-init")
    assert all(torch.equal(v, path[0][k]) for k, v in shipped.named_parameters())  # the same init, bit for bit


# Bad input
def test_bad_input_raises_optiscope_error(quad50):
    _, f, theta = quad50
    d = {"x": torch.ones(50, dtype=D)}
    with pytest.raises(OptiscopeError, match="extent"):
        surface(f, theta, (d,), extent=0.0)
    with pytest.raises(OptiscopeError, match="201"):
        surface(f, theta, (d, d), n=203)
    with pytest.raises(OptiscopeError, match="odd"):
        surface(f, theta, (d, d), n=12)
    with pytest.raises(OptiscopeError, match="does not match"):
        surface(f, theta, ({"y": torch.ones(50, dtype=D)},))
    with pytest.raises(OptiscopeError, match="shape"):
        surface(f, theta, ({"x": torch.ones(49, dtype=D)},))
    with pytest.raises(OptiscopeError, match="directions"):
        surface(f, theta, d)
    with pytest.raises(OptiscopeError, match="`k`"):
        eigenpairs(f, theta, k=51)
    with pytest.raises(OptiscopeError, match="`which`"):
        eigenpairs(f, theta, which="BE")
    with pytest.raises(OptiscopeError, match="NaN"):
        surface(lambda p: torch.log(p["x"][0]), theta, (d,), extent=100.0, n=5)
    with pytest.raises(OptiscopeError, match="finite"):
        eigenpairs(lambda p: p["x"].sum() * float("nan"), theta)
    with pytest.raises(OptiscopeError, match="norm"):
        random_direction(theta, norm="bogus")
    with pytest.raises(OptiscopeError, match="`m`"):
        spectral_density(f, theta, m=51)
    with pytest.raises(OptiscopeError, match="`n_probes`"):
        hessian_trace(f, theta, n_probes=0)
    with pytest.raises(OptiscopeError, match="`tol`"):
        eigenpairs(f, theta, tol=float("nan"))
    with pytest.raises(OptiscopeError, match="`bn`"):
        loss_fn_for(nn.Linear(2, 2), torch.ones(1, 2), torch.zeros(1, dtype=torch.long), bn="train")
    with pytest.raises(OptiscopeError, match="positive eigenvalue"):
        criteria([-1.0, -2.0], [0.5, 0.5])
    with pytest.raises(OptiscopeError, match="parallel"):
        project([theta], theta, (d, d))
    with pytest.raises(OptiscopeError, match="finite values in `params`"):
        eigenpairs(f, {"x": torch.full((50,), float("nan"), dtype=D)})
    with pytest.raises(OptiscopeError, match="float32 on cpu, expected torch.float64"):
        surface(f, theta, ({"x": torch.ones(50)},))
    with pytest.raises(OptiscopeError, match="overflow"):
        random_directions({"w": torch.full((2, 2), 1e30)}, seed=0)
    model = nn.Linear(3, 2)
    with pytest.raises(OptiscopeError, match=r"to fit the model \(\(2, 3\)\)"):
        hessian_trace(loss_fn_for(model, torch.ones(4, 3), torch.zeros(4, dtype=torch.long)), {"weight": torch.ones(3)})


def test_zoo_models_batches_and_uploads():
    from safetensors.torch import save

    from core import zoo
    from core.landscape.models import MODELS, batch_for, load_upload, upload_limit

    assert {zoo.entry(name).name for name in MODELS} == set(MODELS)
    x, y = batch_for("digits-mlp-sharp")
    assert x.shape == (1348, 8, 8) and len(x) == len(y)
    good = zoo.load("digits-mlp-converged").state_dict()
    loaded = load_upload("digits-mlp-converged", save(good))
    assert all(torch.equal(v, good[k]) for k, v in loaded.state_dict().items())
    with pytest.raises(OptiscopeError, match="does not fit"):
        load_upload("digits-mlp-converged", save({"1.weight": torch.zeros(3, 3)}))
    with pytest.raises(OptiscopeError, match="dtypes 1.weight \\(64, 64\\) float16"):
        load_upload("digits-mlp-converged", save({k: v.half() for k, v in good.items()}))
    with pytest.raises(OptiscopeError, match="at most 21,164 bytes"):
        load_upload("digits-mlp-converged", save({**good, "pad": torch.zeros(2000)}))
    assert upload_limit("digits-mlp-converged") == int(1.1 * 4810 * 4) and len(save(good)) < upload_limit(
        "digits-mlp-converged"
    )


# GPU: the same core path on cuda and on the CPU
@pytest.mark.gpu
def test_core_path_on_cuda_matches_cpu(converged, cuda):
    """Tolerances: float32 on both; grid losses rtol 1e-4 (different reduction order), eigenvalues and traces
    rtol 1e-3, SLQ's largest node rtol 1e-3; every output of the cuda run lives on cuda."""
    model, (x, y) = converged
    runs = {}
    for device in (torch.device("cpu"), cuda):
        m = copy.deepcopy(model).to(device)
        loss_fn, theta = loss_fn_for(m, x.to(device), y.to(device)), params_of(m)
        axes = random_directions(theta, seed=0)
        grid = surface(loss_fn, theta, axes, n=21)
        top = eigenpairs(loss_fn, theta, k=3, seed=0)
        hess = plane(loss_fn, theta, axes="hessian", seed=0)
        summary = spectrum_summary(loss_fn, theta, k=3, seed=0)
        runs[device.type] = (grid, top, hess, summary)
    (grid_c, top_c, hess_c, sum_c), (grid_g, top_g, hess_g, sum_g) = runs["cpu"], runs["cuda"]
    assert grid_g.loss.device.type == "cuda" and top_g.eigenvalues.device.type == "cuda"
    assert all(v.device.type == "cuda" for v in hess_g.d1.values())
    torch.testing.assert_close(grid_g.loss.cpu(), grid_c.loss, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(top_g.eigenvalues.cpu(), top_c.eigenvalues, rtol=1e-3, atol=1e-6)
    assert hess_g.eigenvalues == pytest.approx(hess_c.eigenvalues, rel=1e-3, abs=1e-5)
    assert sum_g.trace.trace == pytest.approx(sum_c.trace.trace, rel=1e-3)
    assert float(sum_g.grid.max()) == pytest.approx(float(sum_c.grid.max()), rel=1e-3)
