"""The LFA lab's reference behaviours (Han, Srinivas, Lakkaraju 2022, arXiv:2206.01254; numbers from
/work/shared/notes/lfa_privacy_rl.md §1e): captum's calls are LFA solutions, its defaults are not, and no
method is the most faithful on every neighbourhood."""

from __future__ import annotations

import math
import threading

import pytest
import torch
from captum._utils.models.linear_model import SkLearnLasso
from captum.attr import Lime, Occlusion, Saliency

from core import zoo
from core.errors import OptiscopeError
from core.explanations import (
    METHODS,
    LFAConfig,
    agreement,
    explain,
    explain_all,
    lfa,
    lfa_all,
    loss_matrix,
    neighbourhood_samples,
    patch_features,
    perturbation_test,
    tabular,
)
from core.explanations.lfa import output

BINARY_GROUP = ("lime", "kernelshap", "occlusion", "ig", "gxi")  # the masks' and paths' block (paper, Exp. 1)
GRADIENT_GROUP = ("smoothgrad", "vanilla")


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max())


@pytest.fixture(scope="module")
def linear():
    """f = wᵀx + 0.3 on the wine data (d = 13, float64), as in the note's check 1."""
    torch.manual_seed(0)
    model = torch.nn.Linear(13, 1).double()
    with torch.no_grad():
        model.bias.fill_(0.3)
    return model, tabular("wine").x_test[:1].double()


def double(name: str) -> torch.nn.Module:
    return zoo.load(name).double().requires_grad_(False)


@pytest.mark.parametrize("method", list(METHODS))
def test_on_a_linear_model_each_captum_call_returns_its_lfa_solution(linear, method):
    model, x0 = linear
    m, w = METHODS[method], model.weight[0].detach()
    n = 50 if method == "ig" else 300  # captum's Gauss–Legendre weights are float32: 7e-10 at 50 steps, ≤ 1.5e-8 else
    expected = w if m.family == "additive" else w * x0[0]  # the guiding principle: additive methods recover w
    ours = lfa(model, x0, neighbourhood=m.neighbourhood, loss=m.loss, n_samples=n)
    theirs = explain(model, x0, method=method, n_samples=n)
    tol = 1e-9 if m.loss == "gradient" else 1e-5
    assert rel(ours, expected) < 1e-12
    assert rel(theirs, expected) < tol, (method, rel(theirs, expected))


def test_captum_defaults_are_not_the_lfa_solution(linear):
    model, x0 = linear
    f = lambda x: output(model, x, None)  # noqa: E731
    w = model.weight[0].detach()
    with torch.random.fork_rng():
        torch.manual_seed(0)
        lime_default = Lime(f).attribute(x0, n_samples=300, return_input_shape=False)[0]  # Lasso, cosine kernel
    assert isinstance(Lime(f).interpretable_model, SkLearnLasso)
    assert rel(lime_default, w * x0[0]) > 1e-2  # the note: 4.4e-2
    assert rel(Saliency(f).attribute(x0)[0], w) > 1.0  # abs=True by default: the note's 1.34
    assert rel(explain(model, x0, method="lime", n_samples=300), w * x0[0]) < 1e-5


@pytest.fixture(scope="module")
def mlp():
    data = tabular("cancer")
    model = double("cancer-mlp")
    x0 = data.x_test[:1].double()
    return model, x0, int(model(x0).argmax())


def test_lime_with_the_notes_kernel_equals_weighted_least_squares_on_the_same_samples(mlp):
    model, x0, t = mlp
    ours = lfa(model, x0, neighbourhood="binary", loss="squared", target=t, n_samples=500, seed=3)
    theirs = explain(model, x0, method="lime", target=t, n_samples=500, seed=3)
    assert rel(theirs, ours) < 1e-5  # the note: 3.4e-7 (captum fits in float32)
    # The authors' captum call used kernel_width=1 against an LFA width of 1: κ = √2 here, off by ~1e-2.
    naive = explain(model, x0, method="lime", target=t, n_samples=500, seed=3, config=LFAConfig(kernel_width=2**0.5))
    assert rel(naive, ours) > 1e-3


def test_clime_through_limebase_equals_least_squares_and_approaches_smoothgrad(mlp):
    model, x0, t = mlp
    ours = lfa(model, x0, neighbourhood="gaussian", loss="squared", target=t, n_samples=500, seed=2)
    assert rel(explain(model, x0, method="clime", target=t, n_samples=500, seed=2), ours) < 1e-5
    # Stein's lemma: population C-LIME is SmoothGrad. Finite samples: close in direction.
    sg = lfa(model, x0, neighbourhood="gaussian", loss="gradient", target=t, n_samples=4000)
    assert (
        float(
            agreement(
                {"c": lfa(model, x0, neighbourhood="gaussian", loss="squared", target=t, n_samples=4000), "s": sg}
            )["cosine"][0, 1]
        )
        < 0.02
    )


def test_feature_ablation_is_occlusion_with_a_window_of_one(mlp):
    model, x0, t = mlp
    occlusion = Occlusion(lambda x: output(model, x, t)).attribute(x0, sliding_window_shapes=(1,), baselines=0.0)
    assert rel(explain(model, x0, method="occlusion", target=t), occlusion[0]) < 1e-6  # Occlusion sums in float32


def test_each_explanation_is_the_most_faithful_on_its_own_neighbourhood_and_none_on_all(mlp):
    model, _, _ = mlp
    data, total = tabular("cancer"), None
    for i in range(4):
        x0 = data.x_test[i : i + 1].double()
        t = int(model(x0).argmax())
        m = loss_matrix(model, x0, lfa_all(model, x0, target=t, seed=0), target=t, n_samples=2000, seed=1)
        values = torch.tensor([[m[col][row] for col in METHODS] for row in METHODS])  # (explanation, column)
        total = values if total is None else total + values
    keys, best = list(METHODS), total.min(0).values
    for j, key in enumerate(keys):
        own = total[j, j] if key != "clime" else total[[j, keys.index("smoothgrad")], j].min()  # SG ≡ C-LIME (Stein)
        assert own <= 1.05 * best[j] + 1e-12, (key, float(own), float(best[j]))
    assert len({int(i) for i in total.argmin(0)}) >= 6  # no free lunch: the columns have different winners
    # Off the diagonal the losses are orders of magnitude apart (the note: VG scores 4.35e3 in LIME's column).
    assert total[keys.index("vanilla"), keys.index("lime")] > 100 * total[keys.index("lime"), keys.index("lime")]


def _group_wins(name: str) -> dict[tuple[str, str], bool]:
    data, model = tabular(name.split("-")[0]), zoo.load(name)
    x = data.x_test[:20]
    targets = model(x).argmax(1).detach() if data.classes else None
    per_point = [
        lfa_all(model, x[i : i + 1], target=None if targets is None else int(targets[i]), n_samples=500)
        for i in range(len(x))
    ]
    attrs = {k: torch.stack([p[k] for p in per_point]) for k in (*BINARY_GROUP, *GRADIENT_GROUP)}
    wins = {}
    for perturbation in ("binary", "gaussian"):
        for order in ("top", "bottom"):
            s = perturbation_test(
                model, x, attrs, targets=targets, perturbation=perturbation, order=order, k_max=min(11, x.shape[1])
            )
            binary = sum(s[k] for k in BINARY_GROUP) / len(BINARY_GROUP)
            gradient = sum(s[k] for k in GRADIENT_GROUP) / len(GRADIENT_GROUP)
            binary_better = binary > gradient if order == "top" else binary < gradient
            wins[perturbation, order] = binary_better == (perturbation == "binary")
    return wins


@pytest.mark.parametrize("name", ["cancer-mlp", "diabetes-mlp", "wine-mlp"])
def test_masks_win_binary_perturbations_and_gradients_win_gaussian_ones(name):
    """The paper's Exp. 3: in at least 3 of the 4 settings (the note: cancer 4/4, diabetes 3/4)."""
    wins = _group_wins(name)
    print(name, wins)
    assert sum(wins.values()) >= 3, wins


def test_images_use_patches_as_features_and_lime_matches_lfa():
    model = zoo.load("shapes-cnn").requires_grad_(False)
    from core.data.shapes import make_shapes

    x0 = make_shapes(1, seed=5)[0]
    features = patch_features(64, 16)  # 16 features
    t = int(model(x0).argmax())
    ours = lfa(
        model,
        x0,
        neighbourhood="binary",
        loss="squared",
        target=t,
        features=features,
        n_samples=64,
        config=LFAConfig(kernel_width=40.0),
    )
    theirs = explain(
        model, x0, method="lime", target=t, features=features, n_samples=64, config=LFAConfig(kernel_width=40.0)
    )
    assert theirs.shape == (16,) and rel(theirs, ours) < 1e-4  # float32 model and fit
    vg = explain(model, x0, method="vanilla", target=t, features=features)
    pixel = torch.autograd.grad(output(model, x0.requires_grad_(True), t).sum(), x0)[0]
    assert torch.allclose(vg, torch.zeros(16).index_add_(0, features.flatten(), pixel.flatten()), atol=1e-6)


def test_bad_input_says_what_to_change(linear):
    model, x0 = linear
    with pytest.raises(OptiscopeError, match="`target`"):
        explain(torch.nn.Linear(13, 3).double(), x0, method="vanilla", target=3)
    with pytest.raises(OptiscopeError, match="`target`"):
        lfa(torch.nn.Linear(13, 3).double(), x0, neighbourhood="gaussian", loss="gradient")  # None for 3 outputs
    with pytest.raises(OptiscopeError, match="cover the input"):
        explain(model, x0, method="lime", features=torch.zeros(12, dtype=torch.long))
    with pytest.raises(OptiscopeError, match="none missing"):
        lfa(model, x0, neighbourhood="binary", loss="squared", features=torch.arange(13) * 2)
    for method in ("lime", "kernelshap", "clime"):
        with pytest.raises(OptiscopeError, match=r"`n_samples` >= 14"):
            explain(model, x0, method=method, n_samples=13)
    explain(model, x0, method="smoothgrad", n_samples=2)  # gradients need no regression
    with pytest.raises(OptiscopeError, match="`method`"):
        explain(model, x0, method="shap")
    with pytest.raises(OptiscopeError, match="budget"):
        lfa(model, x0, neighbourhood="gaussian", loss="gradient", n_samples=10**7)
    with pytest.raises(OptiscopeError, match="one input"):
        explain(model, x0.repeat(2, 1), method="vanilla")
    with pytest.raises(OptiscopeError, match="`sigma`"):
        LFAConfig(sigma=-1.0)
    with pytest.raises(OptiscopeError, match="NaN"):
        explain(model, x0 * math.nan, method="vanilla")


def test_the_model_is_only_read_and_the_global_rng_is_untouched(mlp):
    model, x0, t = mlp
    before = {k: v.clone() for k, v in model.state_dict().items()}
    rng = torch.get_rng_state()
    explain_all(model, x0, target=t, n_samples=100)
    assert torch.equal(rng, torch.get_rng_state())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert not any(p.requires_grad for p in model.parameters()) and not model._forward_hooks


def test_seeded_methods_agree_across_threads(mlp):
    """KernelSHAP and SmoothGrad draw from captum's global RNG: seeded under a lock, concurrent calls stay exact."""
    model, x0, t = mlp
    calls = [(m, s) for m in ("kernelshap", "smoothgrad", "lime") for s in (0, 1)]
    sequential = {c: explain(model, x0, method=c[0], target=t, n_samples=100, seed=c[1]) for c in calls}
    found = {}

    def work(call):
        found[call] = explain(model, x0, method=call[0], target=t, n_samples=100, seed=call[1])

    threads = [threading.Thread(target=work, args=(c,)) for c in calls * 2]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert all(torch.equal(found[c], sequential[c]) for c in calls)
    assert not torch.equal(sequential["kernelshap", 0], sequential["kernelshap", 1])


def test_agreement_blocks_and_neighbourhood_samples(mlp):
    model, x0, t = mlp
    a = agreement(explain_all(model, x0, target=t, n_samples=300))
    keys = list(METHODS)
    assert torch.allclose(a["l1"].diagonal(), torch.zeros(8, dtype=a["l1"].dtype))
    within = a["cosine"][keys.index("smoothgrad"), keys.index("vanilla")]
    across = a["cosine"][keys.index("smoothgrad"), keys.index("ig")]
    assert within < 0.05 < across  # the note: ≤ 0.0013 within {VG, SG, C-LIME}, ~0.2 across
    s = neighbourhood_samples(x0, neighbourhood="path", n_samples=50)
    ratio = s.x / x0
    assert torch.allclose(ratio, ratio[:, :1].expand_as(ratio)) and 0 <= float(ratio.min()) <= float(ratio.max()) <= 1


@pytest.mark.gpu
def test_cuda_matches_cpu(cuda):
    model = zoo.load("cancer-mlp")
    x0 = tabular("cancer").x_test[:1]
    cpu = explain_all(model, x0, target=0, n_samples=200)
    gpu = explain_all(model.to(cuda), x0.to(cuda), target=0, n_samples=200)
    for key in ("lime", "clime", "occlusion", "vanilla", "ig", "gxi"):  # same draws on both: LIME/C-LIME use ours
        assert gpu[key].device.type == "cuda"
        assert torch.allclose(gpu[key].cpu(), cpu[key], rtol=1e-3, atol=1e-4), key
    ours = lfa(model, x0.to(cuda), neighbourhood="gaussian", loss="gradient", target=0, n_samples=2000)
    assert torch.allclose(ours.cpu(), cpu["smoothgrad"], rtol=0.1, atol=0.05)  # different noise, same mean
