"""AppTest of the loss-landscape page: each preset's number, old links, garbage links, refusals shown as messages."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from core import zoo
from pages import _ui as ui
from tests.conftest import plotly_array


def _ok(at) -> None:
    assert not at.exception, [e.value for e in at.exception]


def _metric(at, label: str) -> float:
    return float(next(m.value for m in at.metric if m.label == label))


def _specs(at) -> list[dict]:
    return [json.loads(chart.proto.spec) for chart in at.get("plotly_chart")]


def _preset(open_page, index: int):
    at = open_page("pages/landscape.py", n="11")
    at.sidebar.button(key=f"preset-{index}").click().run()
    _ok(at)
    assert not at.error, [e.value for e in at.error]
    return at


def test_default_view_shows_the_exact_centre_loss_and_lambda_max(open_page) -> None:
    at = open_page("pages/landscape.py")
    _ok(at)
    assert not at.error, [e.value for e in at.error]
    metrics = zoo.info("digits-mlp-converged")["metrics"]
    assert _metric(at, "λmax (digits-mlp-converged)") == pytest.approx(metrics["lambda_max"], rel=1e-3)
    contours = _specs(at)[0]
    assert "41×41 grid" in contours["layout"]["title"]["text"]
    contour = plotly_array(contours["data"][0]["z"])
    assert contour.shape == (41, 41) and contour[20, 20] == pytest.approx(metrics["train_loss"], rel=1e-4)
    assert contour.min() == pytest.approx(contour[20, 20], rel=1e-6)  # a converged network: θ is the minimum here


def test_the_3d_surface_is_drawn_after_the_first_paint_then_in_place(open_page) -> None:
    at = open_page("pages/landscape.py")
    assert all(spec["data"][0]["type"] != "surface" for spec in _specs(at))  # the browser has not said it painted
    assert any("3-D surface" in c.value for c in at.caption)
    at.session_state[ui.PAINTED_KEY] = {"landscape-surface"}  # what the browser's "painted" trigger does, then a rerun
    at.run()
    _ok(at)
    contours, surface = _specs(at)[:2]  # the 2-D contours (left column), then the 3-D surface (right)
    assert surface["data"][0]["type"] == "surface"
    assert plotly_array(surface["data"][0]["z"]) == pytest.approx(plotly_array(contours["data"][0]["z"]))
    assert not any("3-D surface" in c.value for c in at.caption)


def test_preset_sharp_vs_flat_shows_a_larger_lambda_max_for_full_batch_gd(open_page) -> None:
    at = _preset(open_page, 0)
    sharp, flat = _metric(at, "λmax (digits-mlp-sharp)"), _metric(at, "λmax (digits-mlp-flat)")
    assert sharp == pytest.approx(1.09, abs=0.01) and flat == pytest.approx(0.68, abs=0.01)  # models.py's claim


def test_preset_saddles_early_shows_negative_curvature(open_page) -> None:
    at = _preset(open_page, 1)
    title = _specs(at)[0]["layout"]["title"]["text"]
    lam_min = float(re.search(r"λmin = (-?[\d.e+-]+)", title).group(1))
    assert lam_min < -0.1 and _metric(at, "re (digits-mlp-early)") > 0.03


def test_preset_init_vs_converged_shows_the_criteria_falling_with_training(open_page) -> None:
    at = _preset(open_page, 2)
    assert _metric(at, "re (digits-mlp-init)") > 100 * _metric(at, "re (digits-mlp-converged)")
    assert _metric(at, "Kh₀.₅ (digits-mlp-init)") > 5 * _metric(at, "Kh₀.₅ (digits-mlp-converged)")


def test_old_label_links_select_the_registry_keys(open_page) -> None:
    """Links made before the registry keys carried display labels: they still select the same view."""
    at = open_page(
        "pages/landscape.py",
        model="digits-mlp-sharp",
        compare="digits-mlp-flat",
        axes="Hessian (λmax, λmin)",
        view="1-D slices",
        n="15",
        extent="0.5",
        k="3",
    )
    _ok(at)
    assert not at.error, [e.value for e in at.error]
    assert at.sidebar.selectbox(key="axes").value == "hessian" and at.sidebar.radio(key="view").value == "slices"
    slices = _specs(at)[0]
    assert [t["name"] for t in slices["data"]][:2] == ["digits-mlp-sharp along d1", "digits-mlp-sharp along d2"]
    assert len(slices["data"]) == 4 and len(plotly_array(slices["data"][0]["y"])) == 15


def test_eigen_pair_axes_with_log_scale(open_page) -> None:
    at = open_page("pages/landscape.py", axes="pair", i="2", j="3", n="11", log="true")
    _ok(at)
    assert not at.error, [e.value for e in at.error]
    title = _specs(at)[0]["layout"]["title"]["text"]
    assert "λ2 = " in title and "λ3 = " in title and "z: log₁₀ loss" in title


def test_the_same_eigenvalue_twice_is_refused_with_a_message(open_page) -> None:
    at = open_page("pages/landscape.py", axes="pair", i="2", j="2", n="11")
    _ok(at)
    assert any("`i` ≠ `j`" in e.value for e in at.error)
    assert _metric(at, "λmax (digits-mlp-converged)") > 0  # the spectrum still renders


def test_garbage_links_render_with_notices_and_defaults(open_page) -> None:
    at = open_page(
        "pages/landscape.py",
        model="bogus",
        compare="nope",
        axes="Nope",
        view="xyz",
        bn="train",
        n="-5",
        extent="abc",
        k="999",
        log="maybe",
        seed="-1",
    )
    _ok(at)
    assert not at.error, [e.value for e in at.error]
    notices = " ".join(t.value for t in at.toast)
    for key in ("model", "axes", "view", "n", "extent", "k"):
        assert f"`{key}=" in notices, (key, notices)
    assert _metric(at, "λmax (digits-mlp-converged)") == pytest.approx(0.2987, abs=1e-4)


def test_an_even_resolution_from_a_link_is_explained(open_page) -> None:
    at = open_page("pages/landscape.py", n="12")
    _ok(at)
    assert any("odd" in e.value for e in at.error) or "12" not in _specs(at)[0]["layout"]["title"]["text"]


def test_the_shipped_default_view_matches_a_fresh_slice_of_it() -> None:
    """The default link is served from assets/precomputed/: a 5×5 slice of its surface and its spectrum, recomputed.

    After a change to core/landscape that moves these numbers, rerun `python -m pages._landscape_shipped`.
    """
    from core import landscape as ll
    from core.landscape import models
    from pages import _landscape_shipped as shipped

    served, view = shipped.load(), shipped.VIEW
    assert served is not None, "run `python -m pages._landscape_shipped`"
    model = zoo.load(view["model"]).requires_grad_(False)
    loss_fn, params = ll.loss_fn_for(model, *models.batch_for(view["model"]), bn=view["bn"]), ll.params_of(model)
    p = ll.plane(loss_fn, params, axes=view["axes"], seed=view["seed"])
    fresh = ll.surface(loss_fn, params, (p.d1, p.d2), extent=view["extent"], n=5).loss.double().numpy()
    np.testing.assert_allclose(served.loss[::10, ::10], fresh, rtol=1e-5)  # linspace(−1, 1, 5) ⊂ linspace(−1, 1, 41)
    spectrum, stale = ll.spectrum_summary(loss_fn, params, k=view["k"], seed=view["seed"]), "rerun the shipping module"
    assert served.spectrum.top == pytest.approx(spectrum.top, rel=1e-4), stale
    assert served.spectrum.trace.trace == pytest.approx(spectrum.trace.trace, rel=1e-4), stale
    assert served.spectrum.criteria == pytest.approx(spectrum.criteria, rel=1e-4, abs=1e-9), stale
    assert served.label == p.label and served.path.shape == (2000 // shipped.EVERY + 1, 2)


@pytest.mark.slow
def test_the_shipped_default_view_equals_a_fresh_computation() -> None:
    from pages import _landscape_shipped as shipped

    served, fresh = shipped.load(), shipped.compute()
    np.testing.assert_allclose(served.loss, fresh.loss, rtol=1e-5)  # float32 sums reorder on another CPU (~1e-6)
    np.testing.assert_allclose(served.path, fresh.path, atol=1e-6)
    # the tails (1e-8 against a peak near 1) carry the float32 eigenvalues' rounding on another CPU
    np.testing.assert_allclose(served.spectrum.density, fresh.spectrum.density, rtol=1e-4, atol=1e-7)
    assert served.spectrum.criteria == pytest.approx(fresh.spectrum.criteria, rel=1e-4, abs=1e-9)
    assert served.spectrum.trace.trace == pytest.approx(fresh.spectrum.trace.trace, rel=1e-6)


def test_a_view_other_than_the_default_is_computed_live(open_page) -> None:
    at = open_page("pages/landscape.py", extent="0.5", n="11")
    _ok(at)
    contour = plotly_array(_specs(at)[0]["data"][0]["z"])
    assert contour.shape == (11, 11) and "11×11 grid" in _specs(at)[0]["layout"]["title"]["text"]
