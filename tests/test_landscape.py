"""Reference behaviours of issue 4 (float64, fixed seeds) and the bad-input contract of core.landscape."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from core.landscape import (
    criteria,
    eigenpairs,
    exact_spectrum,
    flatten,
    hessian_trace,
    hvp,
    layer_spectra,
    loss_fn_for,
    params_of,
    project,
    random_direction,
    random_directions,
    spectral_density,
    surface,
    unflatten,
)

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
    plain = hessian_trace(f, theta, 30, seed=0, method="hutchinson")
    plus = hessian_trace(f, theta, 30, seed=0, method="hutch++")
    assert abs(plus.trace - true) / true < 0.01 and plus.stderr < plain.stderr / 5 and plus.num_hvps == 30


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
    assert criteria([[1.0, 4.0], [-2.0, 4.0]], [[0.5, 0.5], [0.5, 0.5]], n=1.0) == pytest.approx({"re": 0.375, "kh": 0.25})


# 3. Surface exactness
def test_surface_along_eigenvectors_is_exact():
    eigs = torch.tensor([3.0, -1.5, 0.5, 2.0], dtype=D)
    a, q, f = quadratic(4, eigs)
    theta = {"x": torch.zeros(4, dtype=D)}
    before = theta["x"].clone()
    s = surface(f, theta, {"x": q[:, 0]}, {"x": q[:, 1]}, extent=2.0, n=41)
    grid = torch.linspace(-2, 2, 41, dtype=D)
    expected = 0.5 * (3.0 * grid[:, None] ** 2 - 1.5 * grid[None, :] ** 2)
    assert s.loss.shape == (41, 41) and torch.allclose(s.loss, expected, atol=1e-8)
    assert s.loss[20, 20] == f(theta)
    assert torch.equal(theta["x"], before)


def test_surface_centre_and_params_untouched_on_model():
    model = _mlp([20, 16, 5])
    loss_fn = loss_fn_for(model, _batch(64, 20, 5), F.cross_entropy)
    theta = params_of(model)
    snapshot = {k: v.clone() for k, v in theta.items()}
    d1, d2 = random_directions(theta, "filter", seed=0)
    s = surface(loss_fn, theta, d1, d2, extent=0.5, n=11)
    assert s.engine == "affine"
    assert float(s.loss[5, 5]) == pytest.approx(float(loss_fn(theta)), abs=1e-12)
    assert all(torch.equal(theta[k], snapshot[k]) for k in theta)
    assert all(torch.equal(v, dict(model.named_parameters())[k]) for k, v in snapshot.items())


# 4. Batched = sequential on a 784-64-10 MLP
def test_batched_grid_equals_plain_loop():
    model = _mlp([784, 64, 10])
    loss_fn = loss_fn_for(model, _batch(200, 784), F.cross_entropy)
    theta = params_of(model)
    d1, d2 = random_directions(theta, "filter", seed=1)
    fast = surface(loss_fn, theta, d1, d2, extent=1.0, n=7)
    generic = surface(loss_fn, theta, d1, d2, extent=1.0, n=7, engine="vmap")
    grid = torch.linspace(-1, 1, 7, dtype=D)
    with torch.no_grad():
        loop = torch.tensor([[float(loss_fn({k: theta[k] + x * d1[k] + y * d2[k] for k in theta})) for y in grid] for x in grid], dtype=D)
    assert fast.engine == "affine" and generic.engine == "vmap"
    assert torch.allclose(fast.loss, loop, atol=1e-6) and torch.allclose(generic.loss, loop, atol=1e-6)
    line = surface(loss_fn, theta, d1, None, extent=1.0, n=7)
    assert torch.allclose(line.loss, loop[:, 3], atol=1e-6)


def test_batchnorm_cnn_engines_agree_and_bn_policy():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 3)).double()
    model.train()(torch.randn(32, 1, 8, 8, dtype=D))  # give BN non-trivial running stats
    batch = (torch.randn(16, 1, 8, 8, dtype=D), torch.randint(0, 3, (16,)))
    theta = params_of(model)
    d1, d2 = random_directions(theta, "filter", seed=0)
    for bn in ("eval", "batch"):
        loss_fn = loss_fn_for(model, batch, F.cross_entropy, bn=bn)
        fast, loop = surface(loss_fn, theta, d1, d2, 1.0, 5), surface(loss_fn, theta, d1, d2, 1.0, 5, engine="loop")
        assert fast.engine == "affine" and torch.allclose(fast.loss, loop.loss, atol=1e-8)
    running = model[1].running_mean.clone()
    eval_loss = loss_fn_for(model, batch, F.cross_entropy, "eval")(theta)
    batch_loss = loss_fn_for(model, batch, F.cross_entropy, "batch")(theta)
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
        theta, loss_fn = params_of(m), loss_fn_for(m, batch, F.cross_entropy)
        for norm in ("filter", None):
            d1, d2 = random_directions(theta, norm, seed=4)
            surfaces[name, norm] = surface(loss_fn, theta, d1, d2, extent=1.0, n=9).loss
            if norm == "filter":
                for k in theta:
                    assert torch.allclose(d1[k].norm(dim=1), theta[k].norm(dim=1), rtol=1e-12)
    assert torch.allclose(surfaces["base", "filter"], surfaces["scaled", "filter"], atol=1e-6)
    assert not torch.allclose(surfaces["base", None], surfaces["scaled", None], atol=1e-3)


def test_directions_are_gaussian_and_orthogonal_before_normalization():
    theta = {"w": torch.ones(300, 10, dtype=D)}
    d = random_direction(theta, None, seed=0)["w"]
    assert abs(float(d.mean())) < 0.1 and abs(float(d.std()) - 1) < 0.05 and float(d.min()) < -2  # not uniform[0, 1]
    d1, d2 = random_directions(theta, None, seed=0)
    assert abs(float(flatten(d1) @ flatten(d2))) < 1e-9
    assert torch.allclose(random_direction(theta, "weight", seed=0)["w"], d)
    for norm in ("layer", "model"):
        assert float(random_direction(theta, norm, seed=0)["w"].norm()) == pytest.approx(float(theta["w"].norm()))


# Exact oracle, per-layer spectra, trajectory
def test_exact_oracle_agrees_with_lanczos_and_per_layer():
    model = _mlp([6, 5, 3])
    loss_fn, theta = loss_fn_for(model, _batch(40, 6, 3), F.cross_entropy), params_of(model)
    exact = exact_spectrum(loss_fn, theta)
    top = eigenpairs(loss_fn, theta, k=3, which="LA", tol=1e-9)
    np.testing.assert_allclose(top.eigenvalues.numpy(), exact.eigenvalues.flip(0)[:3].numpy(), rtol=1e-6)
    assert abs(float(flatten(top.eigenvectors[0]) @ flatten(exact.vector(-1)))) > 0.999
    h = torch.autograd.functional.hessian(lambda x: loss_fn(unflatten(x, theta)), flatten(theta))
    start = 0
    for spec in layer_spectra(loss_fn, theta, n_probes=100):
        block = h[start : start + spec.size, start : start + spec.size]
        start += spec.size
        assert spec.lambda_max == pytest.approx(float(torch.linalg.eigvalsh(block)[-1]), rel=1e-6)
        assert spec.trace == pytest.approx(float(block.trace()), abs=1e-10 if spec.size <= 100 else 0.5)


def test_project_recovers_plane_coordinates():
    theta = {"w": torch.randn(3, 4, dtype=D), "b": torch.randn(3, dtype=D)}
    d1, d2 = random_directions(theta, "filter", seed=0, zero_1d=False)
    path = [{k: theta[k] + x * d1[k] + y * d2[k] for k in theta} for x, y in [(0.0, 0.0), (0.3, -0.2), (-1.0, 0.5)]]
    assert torch.allclose(project(path, theta, d1, d2), torch.tensor([[0.0, 0.0], [0.3, -0.2], [-1.0, 0.5]], dtype=D), atol=1e-10)


# Bad input
def test_bad_input_raises_value_error(quad50):
    _, f, theta = quad50
    d = {"x": torch.ones(50, dtype=D)}
    with pytest.raises(ValueError, match="extent"):
        surface(f, theta, d, extent=0.0)
    with pytest.raises(ValueError, match="201"):
        surface(f, theta, d, d, n=203)
    with pytest.raises(ValueError, match="does not match"):
        surface(f, theta, {"y": torch.ones(50, dtype=D)})
    with pytest.raises(ValueError, match="shape"):
        surface(f, theta, {"x": torch.ones(49, dtype=D)})
    with pytest.raises(ValueError, match="`k`"):
        eigenpairs(f, theta, k=51)
    with pytest.raises(ValueError, match="`which`"):
        eigenpairs(f, theta, which="BE")
    with pytest.raises(ValueError, match="NaN"):
        surface(lambda p: torch.log(p["x"][0]), theta, d, extent=100.0, n=5)
    with pytest.raises(ValueError, match="finite"):
        eigenpairs(lambda p: p["x"].sum() * float("nan"), theta)
    with pytest.raises(ValueError, match="norm"):
        random_direction(theta, "bogus")
    with pytest.raises(ValueError, match="`m`"):
        spectral_density(f, theta, m=51)


def test_zoo_models_and_upload_mismatch():
    from core import zoo
    from core.landscape.models import digits_batch

    zoo.entry("digits-mlp-sharp")  # registered
    with pytest.raises(ValueError, match="does not fit"):
        from safetensors.torch import save

        zoo.load_state_dict_bytes("digits-mlp-converged", save({"1.weight": torch.zeros(3, 3)}))
    x, y = digits_batch("test")
    assert x.shape[1:] == (8, 8) and len(x) == len(y)
