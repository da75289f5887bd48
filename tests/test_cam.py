"""CAM lab: reference behaviours of issue 6 (Grad-CAM parity with captum, CF-CAM limits, metric sanity)."""

from __future__ import annotations

import io

import pytest
import torch
from captum.attr import LayerAttribution, LayerGradCam
from PIL import Image
from scipy.stats import wilcoxon
from torch import nn

from core.cam import cf_cam, grad_cam, grad_cam_pp, score_cam
from core.cam import metrics as M
from core.cam.cfcam import CFCAMConfig, cluster_channels
from core.cam.gradcam import layer_forward, upsample_normalize
from core.cam.images import decode_image
from core.cam.models import ShapesCNN
from core.cam.torchvision_models import available, build, prepare
from core.data.shapes import CLASSES, make_shapes


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
        ours = grad_cam(model, layer, x, target)
        raw = LayerGradCam(model, getattr(model, layer)).attribute(x, target=target, relu_attributions=True)
        up = LayerAttribution.interpolate(raw, (64, 64), interpolate_mode="bilinear")[:, 0]
        lo = up.flatten(1).min(1).values[:, None, None]
        hi = up.flatten(1).max(1).values[:, None, None]
        live = (hi > lo).flatten()  # a map that is all zero after the ReLU stays all zero (no 0/0)
        assert live.sum() >= 2
        ref = torch.where(hi > lo, (up - lo) / (hi - lo).clamp_min(1e-300), torch.zeros_like(up))
        assert ours.dtype == torch.float64 and ours.shape == (4, 64, 64)
        torch.testing.assert_close(ours, ref, atol=1e-10, rtol=0)
        acts, grads, _, _ = layer_forward(model, layer, x, target)  # and at layer resolution, before scaling
        ours_raw = torch.relu((grads.mean((2, 3), keepdim=True) * acts).sum(1))
        torch.testing.assert_close(ours_raw, raw[:, 0], atol=1e-12, rtol=1e-10)
    finally:
        model.float()


def test_gap_head_gradients_are_constant_and_equal_fc_weight(random_model):
    x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    acts, grads, _, _ = layer_forward(random_model, "block4", x, 3)
    hw = acts.shape[-1] * acts.shape[-2]
    expected = (random_model.fc.weight[3] / hw).detach()[None, :, None, None].expand_as(grads)
    torch.testing.assert_close(grads, expected, atol=1e-9, rtol=1e-6)


def test_grad_cam_pp_and_score_cam_are_valid_maps(random_model):
    x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(3))
    for maps in (grad_cam_pp(random_model, "block4", x, [0, 4]), score_cam(random_model, "block4", x, [0, 4])):
        assert maps.shape == (2, 64, 64) and torch.isfinite(maps).all()
        assert maps.min() >= 0 and maps.max() <= 1
    # Batching over channels changes nothing.
    torch.testing.assert_close(
        score_cam(random_model, "block3", x[:1], 1, batch_size=7), score_cam(random_model, "block3", x[:1], 1)
    )


def test_constant_map_is_zero_not_nan():
    out = upsample_normalize(torch.full((2, 4, 4), 3.0), (8, 8))
    assert torch.equal(out, torch.zeros(2, 8, 8))


# --- CF-CAM ------------------------------------------------------------------------------------


def test_cf_cam_grad_cam_limit(random_model):
    x = torch.rand(3, 3, 64, 64, generator=torch.Generator().manual_seed(4))
    for layer in ("block3", "block4"):
        out = cf_cam(random_model, layer, x, [1, 2, 3], dominant_frac=1.0, combine="linear")
        assert out.dominant.all() and (out.labels == -2).all()
        torch.testing.assert_close(out.map, grad_cam(random_model, layer, x, [1, 2, 3]), atol=1e-6, rtol=0)


def test_single_cluster_without_dominant_channels_is_class_agnostic(shipped, random_model, fresh):
    x = fresh[0][:2]
    kwargs = {"dominant_frac": 0.0, "eps_percentile": 100, "min_samples_frac": 0.0, "filter": None}
    for model in (random_model, shipped):
        lin = [cf_cam(model, "block4", x, c, combine="linear", **kwargs) for c in range(len(CLASSES))]
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
        soft = [cf_cam(model, "block4", x, c, **kwargs).map for c in range(len(CLASSES))]
        for m in soft[1:]:
            torch.testing.assert_close(m, soft[0], atol=1e-5, rtol=0)
        # While Grad-CAM does depend on the class.
        assert (grad_cam(model, "block4", x, 0) - grad_cam(model, "block4", x, 1)).abs().max() > 0.05


def test_cf_cam_internals_are_consistent(random_model):
    x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(5))
    for flt in (None, "gaussian", "bilateral"):
        out = cf_cam(random_model, "block4", x, 0, filter=flt, sigma=1.5)
        k = out.activations.shape[1]
        assert out.dominant.sum(1).tolist() == [k // 4] * 2  # top quarter by norm (no ties in random data)
        assert torch.equal(out.labels == -2, out.dominant)
        assert (out.coefficients[out.labels == -1] == 0).all()  # noise channels are dropped
        for i in range(2):
            n_clusters = int(out.labels[i].max()) + 1
            assert out.filtered_grads[i].shape == (n_clusters, 8, 8)
            for m in range(n_clusters):  # all members of a cluster share the filtered cluster weight
                torch.testing.assert_close(out.weights[i][out.labels[i] == m], out.filtered_grads[i][m].mean().expand(
                    int((out.labels[i] == m).sum())))
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
    x = torch.rand(1, 3, 64, 64)
    for kwargs, word in [({"dominant_frac": 1.5}, "dominant_frac"), ({"filter": "median"}, "filter"),
                         ({"sigma": -1}, "sigma"), ({"combine": "max"}, "combine"), ({"eps_percentile": 101}, "eps")]:
        with pytest.raises(ValueError, match=word):
            cf_cam(random_model, "block4", x, 0, **kwargs)


def test_bad_layer_and_target_raise_clear_errors(random_model):
    x = torch.rand(1, 3, 64, 64)
    with pytest.raises(ValueError, match="convolutional"):
        grad_cam(random_model, "fc", x, 0)
    with pytest.raises(ValueError, match="Unknown layer"):
        grad_cam(random_model, "block9", x, 0)
    with pytest.raises(ValueError, match="out of range"):
        cf_cam(random_model, "block4", x, 6)
    with pytest.raises(ValueError, match="out of range"):
        score_cam(random_model, "block4", x, -1)
    with pytest.raises(ValueError, match="N, C, H, W"):
        grad_cam(random_model, "block4", torch.rand(3, 64, 64), 0)


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
    d_gt, d_rnd = M.deletion_auc(shipped, x, gt, y, 10), M.deletion_auc(shipped, x, rnd, y, 10)  # blurred substrate
    i_gt, i_rnd = M.insertion_auc(shipped, x, gt, y, 10), M.insertion_auc(shipped, x, rnd, y, 10)
    assert d_gt.mean() < d_rnd.mean() and i_gt.mean() > i_rnd.mean()
    assert wilcoxon(d_gt, d_rnd, alternative="less").pvalue < 0.01
    assert wilcoxon(i_gt, i_rnd, alternative="greater").pvalue < 0.01


def test_shipped_cnn_is_accurate_and_grad_cam_points_at_the_object(shipped, fresh):
    from core.zoo import info

    assert info("shapes-cnn")["metrics"]["test_accuracy"] >= 0.95
    x, y, masks = fresh
    assert (shipped(x).argmax(1) == y).float().mean() >= 0.9
    hits = M.pointing_game(grad_cam(shipped, None, x, y), masks).float().mean()
    chance = masks.flatten(1).float().mean()  # a random peak lands in the mask this often
    assert hits > max(0.6, 3 * chance)


def test_metrics_table_yields_progress(shipped, fresh):
    x, y, m = (t[:4] for t in fresh)
    states = list(M.metrics_table(shipped, x, y, m, {"Grad-CAM": lambda a, b: grad_cam(shipped, None, a, b),
                                                     "mask": lambda a, b: m.float()}, batch_size=4, n_steps=8))
    assert [s.done for s in states] == [1, 2] and states[-1].total == 2
    assert states[-1].table["mask"]["pointing_game"] == 1.0 and set(states[-1].table["Grad-CAM"]) == set(M.METRICS)


# --- uploads and other models ------------------------------------------------------------------


def _png(img: Image.Image, fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt)
    return buf.getvalue()


def test_decode_image_handles_modes_and_rejects_bad_uploads():
    grey = decode_image(_png(Image.new("L", (100, 80), 128)), 64)
    assert grey.shape == (1, 3, 64, 64) and torch.allclose(grey, torch.full_like(grey, 128 / 255))
    clear = decode_image(_png(Image.new("RGBA", (10, 10), (0, 0, 0, 0))), 16)
    assert torch.allclose(clear, torch.ones_like(clear))  # transparent → white
    assert decode_image(_png(Image.new("RGB", (20, 20), (255, 0, 0)), "JPEG"), 8).shape == (1, 3, 8, 8)
    with pytest.raises(ValueError, match="PNG or JPEG"):
        decode_image(b"GIF89a" + bytes(100))
    with pytest.raises(ValueError, match="PNG or JPEG"):
        decode_image(b"%PDF-1.4 not an image")
    with pytest.raises(ValueError, match="empty"):
        decode_image(b"")
    with pytest.raises(ValueError, match="limit"):
        decode_image(bytes(11 * 2**20))
    with pytest.raises(ValueError, match="megapixels"):
        decode_image(_png(Image.new("1", (6000, 5000))))
    with pytest.raises(ValueError, match="decode"):
        decode_image(_png(Image.new("RGB", (50, 50)))[:60])


def test_torchvision_path_or_its_torch_only_twin():
    if available():
        model = build("resnet18", num_classes=10, size=64)
    else:  # the same `prepare` code path on an equivalent tiny torch-only CNN: no skip hides it
        torch.manual_seed(0)
        net = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.ReLU(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10),
        )
        model = prepare(net, size=64)
        assert model.cam_layers == ("net.0", "net.1", "net.2", "net.3")
        with pytest.raises(ValueError, match="torchvision"):
            build("resnet18")
    x = torch.rand(2, 3, 64, 64)
    assert grad_cam(model, None, x, 3).shape == (2, 64, 64)
    assert cf_cam(model, model.cam_layer, x, 3).map.shape == (2, 64, 64)
    with pytest.raises(ValueError, match="out of range"):
        grad_cam(model, None, x, 10)


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
    fast = cf_cam(random_model, "block3", x, 1, eps_percentile=15)
    slow = cf_cam(random_model, "block3", x, 1, eps_percentile=15, clusterer="sklearn")
    assert torch.equal(fast.labels, slow.labels) and torch.equal(fast.map, slow.map)
