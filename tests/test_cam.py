"""CAM lab: reference behaviours of issue 6 (Grad-CAM parity with captum, Grad-CAM++ and Score-CAM against
closed-form loops, CF-CAM limits, metric sanity), thread safety on a shared model, budgets, errors, devices."""

from __future__ import annotations

import io
import threading
from collections.abc import Iterator

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from captum.attr import LayerAttribution, LayerGradCam
from PIL import Image
from scipy.stats import wilcoxon
from torch import nn

from core.cam import CFCAMConfig, cf_cam, explain, run
from core.cam import metrics as M
from core.cam.cfcam import channel_embedding, channel_table, cluster_channels
from core.cam.gradcam import grad_cam, grad_cam_pp, layer_forward, score_cam, upsample_normalize
from core.cam.images import decode_image
from core.cam.models import ShapesCNN
from core.cam.torchvision_models import available, build, prepare
from core.data.shapes import CLASSES, make_shapes
from core.errors import OptiscopeError


@pytest.fixture(scope="module")
def random_model():
    torch.manual_seed(0)
    model = ShapesCNN().eval()
    # Non-trivial BatchNorm statistics, so the maps are not those of a fresh init.
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.1, 0.3)
    return model


@pytest.fixture(scope="module")
def shipped():
    from core.zoo import load

    return load("shapes-cnn")


@pytest.fixture(scope="module")
def fresh():
    return make_shapes(48, seed=123_457)  # a seed the training never sees


# --- data --------------------------------------------------------------------------------------


def test_shapes_are_deterministic_and_well_formed():
    x, y, m = make_shapes(64, seed=3)
    x2, y2, m2 = make_shapes(64, seed=3)
    assert torch.equal(x, x2) and torch.equal(y, y2) and torch.equal(m, m2)
    assert not torch.equal(make_shapes(64, seed=4)[0], x)
    assert x.shape == (64, 3, 64, 64) and x.dtype == torch.float32 and 0 <= x.min() and x.max() <= 1
    assert len(CLASSES) >= 5 and set(y.tolist()) == set(range(len(CLASSES)))
    area = m.flatten(1).float().mean(1)
    assert (area > 0.02).all() and (area < 0.5).all()
    assert make_shapes(2, size=32, seed=0)[0].shape == (2, 3, 32, 32)
    with pytest.raises(ValueError, match="`n`"):
        make_shapes(0)


# --- Grad-CAM family ---------------------------------------------------------------------------


@pytest.mark.parametrize("layer", ["block3", "block4"])
def test_grad_cam_equals_captum_layer_grad_cam(random_model, layer):
    model = random_model.double()
    try:
        x = torch.rand(4, 3, 64, 64, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
        target = torch.tensor([0, 1, 2, 5])
        ours = grad_cam(model, x, target, layer=layer)
        raw = LayerGradCam(model, getattr(model, layer)).attribute(x, target=target, relu_attributions=True)
        up = LayerAttribution.interpolate(raw, (64, 64), interpolate_mode="bilinear")[:, 0]
        lo = up.flatten(1).min(1).values[:, None, None]
        hi = up.flatten(1).max(1).values[:, None, None]
        live = (hi > lo).flatten()  # a map that is all zero after the ReLU stays all zero (no 0/0)
        assert live.sum() >= 2
        ref = torch.where(hi > lo, (up - lo) / (hi - lo).clamp_min(1e-300), torch.zeros_like(up))
        assert ours.dtype == torch.float64 and ours.shape == (4, 64, 64)
        torch.testing.assert_close(ours, ref, atol=1e-10, rtol=0)
        acts, grads, _, _ = layer_forward(model, x, target, layer=layer)  # and at layer resolution, before scaling
        ours_raw = torch.relu((grads.mean((2, 3), keepdim=True) * acts).sum(1))
        torch.testing.assert_close(ours_raw, raw[:, 0], atol=1e-12, rtol=1e-10)
    finally:
        model.float()


def test_gap_head_gradients_are_constant_and_equal_fc_weight(random_model):
    x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    acts, grads, _, _ = layer_forward(random_model, x, 3, layer="block4")
    hw = acts.shape[-1] * acts.shape[-2]
    expected = (random_model.fc.weight[3] / hw).detach()[None, :, None, None].expand_as(grads)
    torch.testing.assert_close(grads, expected, atol=1e-9, rtol=1e-6)


def _reference_capture(model, layer, x, target):
    """A and ∂y_c/∂A by a forward hook on a private model: a path independent of ``layer_forward``."""
    saved = []
    handle = model.get_submodule(layer).register_forward_hook(lambda _m, _i, out: saved.append(out))
    try:
        logits = model(x)
        (grads,) = torch.autograd.grad(logits[torch.arange(len(x)), target].sum(), saved[0])
    finally:
        handle.remove()
    return saved[0].detach(), grads


def _reference_upsample(cams, size):
    """ReLU, captum's interpolation and a per-map min-max, written out."""
    up = LayerAttribution.interpolate(torch.relu(cams)[:, None], size, interpolate_mode="bilinear")[:, 0]
    out = torch.zeros_like(up)
    for n in range(len(up)):
        lo, hi = up[n].min(), up[n].max()
        if hi > lo:
            out[n] = (up[n] - lo) / (hi - lo)
    return out


@pytest.mark.parametrize("layer", ["block3", "block4"])
def test_grad_cam_pp_equals_the_closed_form_loop(random_model, layer):
    """a_ij = g²/(2g² + Σ_ab A_ab g³) (0 where g = 0), α_k = Σ_ij a_ij ReLU(g_ij): a scalar loop, float64."""
    model = random_model.double()
    try:
        x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
        target = torch.tensor([0, 4])
        acts, grads = _reference_capture(model, layer, x, target)
        cams = torch.zeros(acts.shape[0], *acts.shape[2:], dtype=torch.float64)
        for n in range(acts.shape[0]):
            for k in range(acts.shape[1]):
                total, alpha = float(acts[n, k].sum()), 0.0
                for g in grads[n, k].flatten().tolist():
                    denom = 2 * g**2 + total * g**3
                    if g != 0 and denom != 0:
                        alpha += g**2 / denom * max(g, 0.0)
                cams[n] += alpha * acts[n, k]
        ours = grad_cam_pp(model, x, target, layer=layer)
        assert (ours.flatten(1).max(1).values == 1).all()  # live maps: the check is not 0 == 0
        torch.testing.assert_close(ours, _reference_upsample(cams, (32, 32)), atol=1e-6, rtol=0)
    finally:
        model.float()


def test_score_cam_equals_the_closed_form_loop(random_model):
    """One masked forward pass per channel (bilinear upsample, min-max), softmax of the target logits over channels."""
    model = random_model.double()
    try:
        x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
        target = torch.tensor([1, 5])
        acts, _ = _reference_capture(model, "block4", x, target)
        cams = torch.zeros(acts.shape[0], *acts.shape[2:], dtype=torch.float64)
        with torch.no_grad():
            for n in range(acts.shape[0]):
                scores = []
                for k in range(acts.shape[1]):
                    up = F.interpolate(acts[n, k][None, None], size=(32, 32), mode="bilinear", align_corners=False)
                    lo, hi = up.min(), up.max()
                    mask = (up - lo) / (hi - lo) if hi > lo else torch.zeros_like(up)
                    scores.append(float(model(x[n : n + 1] * mask)[0, target[n]]))
                weights = torch.softmax(torch.tensor(scores, dtype=torch.float64), 0)
                cams[n] = (weights[:, None, None] * acts[n]).sum(0)
        ours = score_cam(model, x, target, layer="block4", batch_size=7)  # chunks that do not divide K
        assert (ours.flatten(1).max(1).values == 1).all()
        torch.testing.assert_close(ours, _reference_upsample(cams, (32, 32)), atol=1e-6, rtol=0)
    finally:
        model.float()


def test_constant_map_is_zero_not_nan():
    out = upsample_normalize(torch.full((2, 4, 4), 3.0), (8, 8))
    assert torch.equal(out, torch.zeros(2, 8, 8))


# --- CF-CAM ------------------------------------------------------------------------------------


def test_cf_cam_grad_cam_limit(random_model):
    x = torch.rand(3, 3, 64, 64, generator=torch.Generator().manual_seed(4))
    for layer in ("block3", "block4"):
        out = cf_cam(random_model, x, [1, 2, 3], layer=layer, config=CFCAMConfig(dominant_frac=1.0, combine="linear"))
        assert out.dominant.all() and (out.labels == -2).all()
        assert out.summary(image=0)["clusters"] == 0  # not −1: only labels ≥ 0 are clusters
        torch.testing.assert_close(out.map, grad_cam(random_model, x, [1, 2, 3], layer=layer), atol=1e-6, rtol=0)


def test_single_cluster_without_dominant_channels_is_class_agnostic(shipped, random_model, fresh):
    x = fresh[0][:2]
    kwargs = {"dominant_frac": 0.0, "eps_percentile": 100, "min_samples_frac": 0.0, "filter": "none"}
    linear = CFCAMConfig(combine="linear", **kwargs)
    for model in (random_model, shipped):
        lin = [cf_cam(model, x, c, config=linear) for c in range(len(CLASSES))]
        assert all((r.labels == 0).all() for r in lin)  # one cluster, no noise, no dominant channel
        # α is one number per class (ᾱ = mean_k W[c, k]/hw): a positive one gives the map of Σ_k A_k ...
        positive = [c for c in range(len(CLASSES)) if (lin[c].weights[:, 0] > 0).all()]
        for c in positive[1:]:
            torch.testing.assert_close(lin[c].map, lin[positive[0]].map, atol=1e-5, rtol=0)  # float32
        for c in set(range(len(CLASSES))) - set(positive):  # ... a negative one an empty map
            assert (lin[c].map == 0).all()
        if model is random_model:
            assert len(positive) >= 2
        # The reference softmax combine gives uniform β: the same map for every class.
        soft = [cf_cam(model, x, c, config=CFCAMConfig(**kwargs)).map for c in range(len(CLASSES))]
        for m in soft[1:]:
            torch.testing.assert_close(m, soft[0], atol=1e-5, rtol=0)
        # While Grad-CAM does depend on the class.
        assert (grad_cam(model, x, 0) - grad_cam(model, x, 1)).abs().max() > 0.05


def test_cf_cam_internals_are_consistent(random_model):
    x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(5))
    for flt in ("none", "gaussian", "bilateral"):
        out = cf_cam(random_model, x, 0, config=CFCAMConfig(filter=flt, sigma=1.5))
        k = out.activations.shape[1]
        assert out.dominant.sum(1).tolist() == [k // 4] * 2  # top quarter by norm (no ties in random data)
        assert torch.equal(out.labels == -2, out.dominant)
        assert (out.coefficients[out.labels == -1] == 0).all()  # noise channels are dropped
        for i in range(2):
            n_clusters = int(out.labels[i].max()) + 1
            assert out.filtered_grads[i].shape == (n_clusters, 8, 8)
            for m in range(n_clusters):  # all members of a cluster share the filtered cluster weight
                torch.testing.assert_close(
                    out.weights[i][out.labels[i] == m],
                    out.filtered_grads[i][m].mean().expand(int((out.labels[i] == m).sum())),
                )
        kept = out.labels != -1
        torch.testing.assert_close(out.coefficients.sum(1), torch.ones(2))  # softmax over kept channels
        assert kept.any()
        assert out.map.shape == (2, 64, 64) and torch.isfinite(out.map).all()


def test_cf_cam_distances_match_the_broadcast_formula():
    acts = torch.rand(24, 5, 5, generator=torch.Generator().manual_seed(6))
    cfg = CFCAMConfig(dominant_frac=0.0, eps_percentile=30)
    labels, _, eps, _ = cluster_channels(acts, cfg)
    flat = acts.reshape(24, -1).double()
    brute = (flat[:, None] - flat[None]).pow(2).sum(-1).sqrt()  # the O(K²·hw) broadcast, small here
    off = brute[~torch.eye(24, dtype=torch.bool)]
    assert abs(eps - float(torch.quantile(off, 0.3))) < 1e-9
    assert labels.shape == (24,)


def test_cf_cam_rejects_bad_config(random_model):
    bad = [
        ({"dominant_frac": 1.5}, "dominant_frac"),
        ({"filter": "median"}, "filter"),
        ({"filter": None}, "filter"),
        ({"sigma": -1}, "sigma"),
        ({"sigma": float("nan")}, "sigma"),
        ({"combine": "max"}, "combine"),
        ({"eps_percentile": 101}, "eps_percentile"),
        ({"clusterer": "kmeans"}, "clusterer"),
    ]
    for kwargs, word in bad:
        with pytest.raises(OptiscopeError, match=f"`{word}`"):
            CFCAMConfig(**kwargs)
    with pytest.raises(OptiscopeError, match="CFCAMConfig"):
        cf_cam(random_model, torch.zeros(1, 3, 32, 32), 0, config={"sigma": 1.0})


def test_bad_inputs_raise_optiscope_errors_naming_the_value(random_model):
    x = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(9))
    cases = [
        (lambda: grad_cam(random_model, x, 0, layer="fc"), "convolutional"),
        (lambda: grad_cam(random_model, x, 0, layer="block9"), "`layer`.*'block9'"),
        (lambda: grad_cam(random_model, x, 0, layer=""), "`layer`"),
        (lambda: cf_cam(random_model, x, 6), "`target` between 0 and 5, but got 6"),
        (lambda: score_cam(random_model, x, -1), "`target`.*-1"),
        (lambda: grad_cam(random_model, x, 1.5), "integer"),
        (lambda: grad_cam(random_model, x, "cat"), "`target`"),
        (lambda: grad_cam(random_model, x.expand(2, -1, -1, -1), [0, 1, 2]), "one `target` per image"),
        (lambda: grad_cam(random_model, x[0], 0), "N, C, H, W"),
        (lambda: grad_cam(random_model, x.long(), 0), "float images"),
        (lambda: grad_cam(random_model, x * float("nan"), 0), "NaN"),
        (lambda: grad_cam(random_model, x[:0], 0), "non-empty"),
        (lambda: grad_cam(random_model.train(), x, 0), "eval mode"),
        (lambda: grad_cam(object(), x, 0), "torch.nn.Module"),
        (lambda: score_cam(random_model.eval(), x, 0, batch_size=0), "`batch_size`"),
    ]
    try:
        for call, message in cases:
            with pytest.raises(OptiscopeError, match=message):
                call()
    finally:
        random_model.eval()


# --- metrics -----------------------------------------------------------------------------------


def test_ground_truth_mask_scores_perfect_pointing_and_ebpg(fresh):
    _, _, masks = fresh
    assert M.pointing_game(masks.float(), masks).all()
    torch.testing.assert_close(M.energy_pointing_game(masks.float(), masks), torch.ones(len(masks)))
    uniform = torch.ones(masks.shape)
    torch.testing.assert_close(M.energy_pointing_game(uniform, masks), masks.flatten(1).float().mean(1))


def test_all_ones_map_has_no_average_drop(shipped, fresh):
    x, y, _ = fresh
    drop, increase = M.average_drop_increase(shipped, x[:8], torch.ones(8, 64, 64), y[:8])
    assert (drop == 0).all() and not increase.any()


@pytest.mark.slow
def test_mask_beats_random_map_on_deletion_and_insertion(shipped):
    x, y, masks = make_shapes(40, seed=424_242)
    gt = masks.float()
    rnd = torch.rand(masks.shape, generator=torch.Generator().manual_seed(0))
    d_gt, d_rnd = (M.deletion_auc(shipped, x, m, y, steps=10) for m in (gt, rnd))  # blurred substrate
    i_gt, i_rnd = (M.insertion_auc(shipped, x, m, y, steps=10) for m in (gt, rnd))
    assert d_gt.mean() < d_rnd.mean() and i_gt.mean() > i_rnd.mean()
    assert wilcoxon(d_gt, d_rnd, alternative="less").pvalue < 0.01
    assert wilcoxon(i_gt, i_rnd, alternative="greater").pvalue < 0.01


def test_shipped_cnn_is_accurate_and_grad_cam_points_at_the_object(shipped, fresh):
    from core.zoo import info

    assert info("shapes-cnn")["metrics"]["test_accuracy"] >= 0.95
    x, y, masks = fresh
    assert (shipped(x).argmax(1) == y).float().mean() >= 0.9
    hits = M.pointing_game(grad_cam(shipped, x, y), masks).float().mean()
    chance = masks.flatten(1).float().mean()  # a random peak lands in the mask this often
    assert hits > max(0.6, 3 * chance)


def test_metrics_table_yields_progress(shipped, fresh):
    x, y, m = (t[:4] for t in fresh)
    methods = {"Grad-CAM": lambda a, b: grad_cam(shipped, a, b), "mask": lambda a, b: m.float()}
    states = list(M.metrics_table(shipped, x, y, m, methods, batch_size=4, steps=8))
    assert [s.step for s in states] == [1, 2] and states[-1].total == 2
    assert states[-1].table["mask"]["pointing_game"] == 1.0 and set(states[-1].table["Grad-CAM"]) == set(M.METRICS)


# --- uploads and other models ------------------------------------------------------------------


def _png(img: Image.Image, fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt)
    return buf.getvalue()


def test_decode_image_handles_modes_and_rejects_bad_uploads():
    grey = decode_image(_png(Image.new("L", (100, 80), 128)), size=64)
    assert grey.shape == (1, 3, 64, 64) and torch.allclose(grey, torch.full_like(grey, 128 / 255))
    clear = decode_image(_png(Image.new("RGBA", (10, 10), (0, 0, 0, 0))), size=16)
    assert torch.allclose(clear, torch.ones_like(clear))  # transparent → white
    assert decode_image(_png(Image.new("RGB", (20, 20), (255, 0, 0)), "JPEG"), size=8).shape == (1, 3, 8, 8)
    with pytest.raises(OptiscopeError, match="PNG or JPEG"):
        decode_image(b"GIF89a" + bytes(100))
    with pytest.raises(OptiscopeError, match="PNG or JPEG"):
        decode_image(b"%PDF-1.4 not an image")
    with pytest.raises(OptiscopeError, match="empty"):
        decode_image(b"")
    with pytest.raises(OptiscopeError, match="limit"):
        decode_image(bytes(11 * 2**20))
    with pytest.raises(OptiscopeError, match="megapixels"):
        decode_image(_png(Image.new("1", (6000, 5000))))
    with pytest.raises(OptiscopeError, match="decode"):
        decode_image(_png(Image.new("RGB", (50, 50)))[:60])


def test_torchvision_path_or_its_torch_only_twin():
    if available():
        model = build("resnet18", num_classes=10, size=64)
    else:  # the same `prepare` code path on an equivalent tiny torch-only CNN: no skip hides it
        torch.manual_seed(0)
        net = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(8, 16, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(16, 10),
        )
        model = prepare(net, size=64)
        assert model.cam_layers == ("net.0", "net.1", "net.2", "net.3")
        with pytest.raises(OptiscopeError, match="torchvision"):
            build("resnet18")
    x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(10))
    assert grad_cam(model, x, 3).shape == (2, 64, 64)
    assert cf_cam(model, x, 3, layer=model.cam_layer).map.shape == (2, 64, 64)
    with pytest.raises(OptiscopeError, match="`target`"):
        grad_cam(model, x, 10)


def test_cf_weights_reproduce_the_reference_formula_on_fixed_tensors():
    """Re-derive CF-CAM's β from the code's recipe with numpy + sklearn (features, not precomputed distances)."""
    import numpy as np
    from sklearn.cluster import DBSCAN

    from core.cam.cfcam import cf_weights, smooth

    gen = torch.Generator().manual_seed(7)
    base = torch.rand(4, 6, 6, generator=gen, dtype=torch.float64)
    acts = torch.cat([base[i % 4] + 0.05 * torch.rand(1, 6, 6, generator=gen, dtype=torch.float64) for i in range(40)])
    acts[-3:] = 3 * torch.rand(3, 6, 6, generator=gen, dtype=torch.float64)  # strays: noise or dominant
    grads = 1e-2 * torch.randn(40, 6, 6, generator=gen, dtype=torch.float64)
    cfg = CFCAMConfig(eps_percentile=10, filter="gaussian", sigma=2.0)
    labels, dominant, alpha, beta, *_ = cf_weights(acts, grads, cfg)

    flat = acts.reshape(40, -1).numpy()
    norms = np.linalg.norm(flat, axis=1)
    dom = norms >= np.percentile(norms, 75)
    rest = np.flatnonzero(~dom)
    d = np.sqrt(((flat[rest, None] - flat[None, rest]) ** 2).sum(-1))
    eps = max(np.percentile(d[~np.eye(len(rest), dtype=bool)], 10), 1e-5)
    lab = DBSCAN(eps=eps, min_samples=max(2, int(0.05 * len(rest)))).fit(flat[rest]).labels_
    ref_alpha = np.zeros(40)
    ref_alpha[dom] = grads[torch.from_numpy(dom)].mean(dim=(1, 2)).numpy()
    for m in set(lab) - {-1}:
        members = rest[lab == m]
        ref_alpha[members] = smooth(grads[members].mean(0)[None], "gaussian", 2.0).mean().item()
    kept = dom.copy()
    kept[rest[lab != -1]] = True
    ref_beta = np.zeros(40)
    ref_beta[kept] = np.exp(ref_alpha[kept]) / np.exp(ref_alpha[kept]).sum()
    assert np.array_equal(dominant.numpy(), dom) and np.array_equal(labels.numpy()[rest], lab)
    assert len(set(lab) - {-1}) >= 2
    np.testing.assert_allclose(alpha.numpy(), ref_alpha, atol=1e-12)
    np.testing.assert_allclose(beta.numpy(), ref_beta, atol=1e-12)


def test_fast_dbscan_matches_scikit_learn():
    import numpy as np
    from sklearn.cluster import DBSCAN

    from core.cam.cfcam import dbscan_precomputed

    rng = np.random.default_rng(0)
    for trial in range(60):
        k, dim = int(rng.integers(3, 120)), int(rng.integers(1, 6))
        centres = rng.normal(size=(int(rng.integers(1, 6)), dim)) * 3
        pts = centres[rng.integers(0, len(centres), k)] + rng.normal(size=(k, dim)) * rng.uniform(0.2, 1.5)
        d = np.sqrt(((pts[:, None] - pts[None]) ** 2).sum(-1))
        eps = float(np.percentile(d[~np.eye(k, dtype=bool)], rng.uniform(2, 60)))
        ms = int(rng.integers(2, 8))
        ref = DBSCAN(eps=eps, min_samples=ms, metric="precomputed").fit(d).labels_
        assert np.array_equal(dbscan_precomputed(d, eps, ms), ref), trial


def test_cf_cam_fast_and_sklearn_clusterers_agree(random_model):
    x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(8))
    fast = cf_cam(random_model, x, 1, layer="block3", config=CFCAMConfig(eps_percentile=15))
    slow = cf_cam(random_model, x, 1, layer="block3", config=CFCAMConfig(eps_percentile=15, clusterer="sklearn"))
    assert torch.equal(fast.labels, slow.labels) and torch.equal(fast.map, slow.map)


# --- a model shared by every session: thread safety, read-only use -----------------------------


def _shared_cnn() -> nn.Module:
    """The shipped CNN as ``pages/_ui.zoo_model`` shares it: eval mode, no parameter requires grad."""
    from core.zoo import load

    return load("shapes-cnn").eval().requires_grad_(False)


HAMMERED = {
    "Grad-CAM": lambda model, x, t: grad_cam(model, x, t, layer="block3"),
    "Score-CAM": lambda model, x, t: score_cam(model, x, t, layer="block4", batch_size=32),
    "CF-CAM": lambda model, x, t: cf_cam(model, x, t, layer="block4").map,
}


def test_cam_maps_from_many_threads_equal_the_sequential_ones():
    """Three threads compute CAMs of different images on one shared model: 0 mismatches, 0 errors.

    Hooks on the shared module (the old capture) fired for every thread's forward pass, so a thread could
    read another image's activations: a wrong map, or an autograd error.
    """
    model = _shared_cnn()
    images, labels, _ = make_shapes(8, size=32, seed=31_337)  # small images: many calls, short test
    jobs = [(name, i) for name in ("Grad-CAM", "CF-CAM") for i in range(8)] + [("Score-CAM", 0), ("Score-CAM", 1)]
    expected = {(name, i): HAMMERED[name](model, images[i : i + 1], labels[i : i + 1]) for name, i in jobs}
    mismatches, errors = [], []

    def worker(offset: int) -> None:
        for r in range(3):
            for name, i in jobs[offset:] + jobs[:offset]:  # each thread in a different order
                try:
                    got = HAMMERED[name](model, images[i : i + 1], labels[i : i + 1])
                except Exception as err:  # any error is a finding, reported below
                    errors.append(f"{name}/{i}: {err!r}")
                    continue
                if not torch.equal(got, expected[(name, i)]):
                    mismatches.append((name, i, r))

    threads = [threading.Thread(target=worker, args=(6 * k,)) for k in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors[:3]
    assert mismatches == []
    assert len({v.sum().item() for v in expected.values()}) > len(images)  # the images give different maps


def test_cams_leave_the_shared_model_as_it_was():
    model = _shared_cnn()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    modules = dict(model.named_modules())
    x, y, masks = make_shapes(2, seed=5)
    explain(model, x, y, masks=masks)
    from core.cam.attributions import OTHER

    for method in OTHER.values():
        method(model, x, y)
    assert dict(model.named_modules()).keys() == modules.keys()
    assert all(m is modules[name] for name, m in model.named_modules())  # no wrapper swapped in
    assert not any(m._forward_hooks or m._forward_pre_hooks or m._backward_hooks for m in model.modules())
    assert not any(p.requires_grad for p in model.parameters()) and not model.training
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_layer_capture_survives_an_in_place_op_after_the_layer():
    """The captured activations are a leaf, and the model downstream sees a clone: an in-place ReLU is safe."""
    net = nn.Sequential(
        nn.Conv2d(3, 4, 3),
        nn.BatchNorm2d(4),
        nn.ReLU(inplace=True),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(4, 3),
    ).eval()
    x = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(11))
    acts, grads, _, _ = layer_forward(net, x, 1, layer="1")
    reference = net[1](net[0](x)).detach()
    torch.testing.assert_close(acts, reference)  # not the in-place ReLU's output
    torch.testing.assert_close(grads, (net[5].weight[1] / 36).detach()[None, :, None, None] * (reference > 0))


# --- SmoothGrad, channel PCA, the lab's entry points ---------------------------------------------


def test_smoothgrad_is_seeded_locally_and_recovers_a_linear_model():
    from core.cam.attributions import smoothgrad

    linear = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 4)).eval()
    x = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(12))
    state = torch.random.get_rng_state()
    maps = smoothgrad(linear, x, [0, 3], n_samples=4, stdev=0.3, seed=1)
    assert torch.equal(torch.random.get_rng_state(), state)  # the global RNG is neither used nor reseeded
    for n, c in enumerate([0, 3]):  # a linear model's gradient is w whatever the noise: |w| summed over colours
        expected = linear[1].weight[c].detach().abs().view(3, 8, 8).sum(0)
        lo, hi = expected.min(), expected.max()
        torch.testing.assert_close(maps[n], (expected - lo) / (hi - lo), atol=1e-6, rtol=0)
    shipped = _shared_cnn()
    images, labels, _ = make_shapes(2, seed=8)
    a = smoothgrad(shipped, images, labels, n_samples=3, seed=4)
    assert torch.equal(a, smoothgrad(shipped, images, labels, n_samples=3, seed=4))
    assert not torch.equal(a, smoothgrad(shipped, images, labels, n_samples=3, seed=5))


def test_channel_embedding_is_the_pca_of_the_channels():
    acts = torch.rand(40, 6, 6, generator=torch.Generator().manual_seed(13), dtype=torch.float64)
    xy = channel_embedding(acts)
    flat = acts.flatten(1).numpy()
    centred = flat - flat.mean(0)
    values, vectors = np.linalg.eigh(centred.T @ centred)  # ascending eigenvalues of the scatter matrix
    reference = centred @ vectors[:, ::-1][:, :2]
    signs = np.sign((xy.numpy() * reference).sum(0))  # an axis is defined up to its sign
    np.testing.assert_allclose(xy.numpy(), reference * signs, atol=1e-10)
    assert values[-1] > values[-2] > values[-3]  # distinct leading eigenvalues: the axes are well defined
    assert channel_embedding(torch.ones(1, 2, 2)).shape == (1, 2)  # one channel: no NaN, one axis padded


def test_channel_table_and_summary_describe_the_clusters(random_model):
    x = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(14))
    out = cf_cam(random_model, x, 2)
    table = channel_table(out)
    labels = out.labels[0]
    assert len(table) == labels.numel() and list(table["channel"]) == list(range(labels.numel()))
    assert (table["group"] == "dominant").sum() == int(out.dominant.sum())
    assert (table["group"] == "noise (dropped)").sum() == int((labels == -1).sum())
    clusters = {g for g in table["group"] if g.startswith("cluster")}
    assert out.summary()["clusters"] == len(set(labels.tolist()) - {-1, -2}) == len(clusters) >= 1
    np.testing.assert_allclose(table["beta"].sum(), 1.0, atol=1e-6)  # softmax over the kept channels


def test_explain_gives_every_method_and_pointing_hits():
    model = _shared_cnn()
    x, y, masks = make_shapes(4, seed=15)
    out = explain(model, x, None, masks=masks)
    assert list(out.maps) == ["Grad-CAM", "Grad-CAM++", "Score-CAM", "CF-CAM"]
    assert torch.equal(out.targets, model(x).argmax(1))  # None explains the prediction
    torch.testing.assert_close(out.maps["Grad-CAM"], grad_cam(model, x, out.targets))
    torch.testing.assert_close(out.maps["CF-CAM"], out.cf.map)
    for name, maps in out.maps.items():
        assert torch.equal(out.hits[name], M.pointing_game(maps, masks))
    torch.testing.assert_close(out.probs.sum(1), torch.ones(4))


def test_run_is_lazy_validates_when_called_and_scores_every_method():
    calls = []

    class Counted(ShapesCNN):
        def forward(self, x):
            calls.append(len(x))
            return super().forward(x)

    model = Counted().eval()
    x, y, masks = make_shapes(3, size=32, seed=16)
    states = run(model, x, y, masks=masks, steps=2, batch_size=2)
    assert calls == []  # nothing computed before the first next()
    first = next(states)
    assert calls and first.step == 1 and first.total == 10 and first.method == "Grad-CAM"
    last = list(states)[-1]
    assert last.step == 10 and list(last.table) == ["Grad-CAM", "Grad-CAM++", "Score-CAM", "CF-CAM", "random"]
    for bad, message in [
        ({"steps": 0}, "`steps`"),
        ({"substrate": "grey"}, "`substrate`"),
        ({"seed": -1}, "`seed`"),
        ({"batch_size": 0}, "`batch_size`"),
        ({"layer": "fc9"}, "`layer`"),
        ({"config": {"sigma": 2}}, "CFCAMConfig"),
        ({"masks": masks[:2]}, "`masks`"),
    ]:
        with pytest.raises(OptiscopeError, match=message):
            run(model, x, y, **{"masks": masks, **bad})
    with pytest.raises(OptiscopeError, match="`images`"):
        run(model, x[:1].expand(257, -1, -1, -1), y[:1].expand(257), masks=masks[:1].expand(257, -1, -1))


def test_budgets_refuse_work_past_their_limit(random_model):
    from core.cam.gradcam import MAX_SCORE_CAM_PASSES
    from core.cam.metrics import MAX_METRIC_PASSES

    many = torch.zeros(MAX_SCORE_CAM_PASSES // 128 + 1, 3, 16, 16)  # × 128 channels at block4: one past the limit
    with pytest.raises(OptiscopeError, match="Score-CAM forward passes"):
        score_cam(random_model, many, 0)
    x, y, masks = make_shapes(100, size=16, seed=17)
    steps = MAX_METRIC_PASSES // 200  # 100 images × 1 method × (2·steps + 4) > the budget
    with pytest.raises(OptiscopeError, match="images through the model"):
        M.metrics_table(random_model, x, y, masks, {"ones": lambda a, b: torch.ones(len(a), 16, 16)}, steps=steps)
    assert isinstance(M.metrics_table(random_model, x, y, masks, {"ones": lambda a, b: a[:, 0]}, steps=8), Iterator)


# --- the GPU path ------------------------------------------------------------------------------


@pytest.fixture
def exact_float32():
    """CUDA convolutions and matmuls in full float32 (no TF32) for the duration of a test."""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


@pytest.mark.gpu
def test_cam_core_path_on_cuda_matches_cpu(cuda, exact_float32):
    """explain() and run() on CUDA against the CPU, in float32 without TF32. Tolerances: maps within 1e-3
    (different conv kernels and summation orders); CF-CAM cluster labels ≥ 95% equal (DBSCAN thresholds on
    distances can tip) and maps within 2e-2; metrics-table means within 5% (or 0.05), with one image's flip
    allowed for the 0/1 metrics (pointing game, average increase). Every tensor is made on the inputs' device."""
    model = _shared_cnn()
    on_gpu = _shared_cnn().to(cuda)
    x, y, masks = make_shapes(8, seed=18)
    cpu = explain(model, x, y, masks=masks)
    gpu = explain(on_gpu, x.to(cuda), y.to(cuda), masks=masks.to(cuda))
    for name in ("Grad-CAM", "Grad-CAM++", "Score-CAM"):
        assert gpu.maps[name].device.type == "cuda" and gpu.hits[name].device.type == "cuda"
        torch.testing.assert_close(gpu.maps[name].cpu(), cpu.maps[name], atol=1e-3, rtol=0)
    assert all(t.device.type == "cuda" for t in (gpu.cf.map, gpu.cf.labels, gpu.cf.coefficients, gpu.cf.eps))
    assert (gpu.cf.labels.cpu() == cpu.cf.labels).float().mean() >= 0.95
    torch.testing.assert_close(gpu.cf.map.cpu(), cpu.cf.map, atol=2e-2, rtol=0)
    kwargs = {"steps": 4, "batch_size": 8, "seed": 1}
    table_cpu = list(run(model, x, y, masks=masks, **kwargs))[-1].table
    table_gpu = list(run(on_gpu, x.to(cuda), y.to(cuda), masks=masks.to(cuda), **kwargs))[-1].table
    one_flip = {"pointing_game": 1 / 8, "average_increase": 100 / 8}
    for method, row in table_cpu.items():
        for metric, value in row.items():
            allowed = max(0.05 * max(1.0, abs(value)), one_flip.get(metric, 0.0)) + 1e-9
            assert abs(table_gpu[method][metric] - value) <= allowed, (method, metric, value, table_gpu[method][metric])
