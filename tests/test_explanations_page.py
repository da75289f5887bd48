"""AppTest of the explanation-choice page: the numbers each view exists to show, and bad links."""

from __future__ import annotations

import json

import numpy as np

from tests.conftest import plotly_array

PAGE = "pages/explanations.py"


def _ok(at):
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    return at


def _metric(at, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


def _chart(at, title_word: str) -> dict:
    """The chart whose first trace or subplot titles mention ``title_word``."""
    for chart in at.get("plotly_chart"):
        spec = json.loads(chart.proto.spec)
        if title_word in json.dumps(spec, ensure_ascii=False):
            return spec
    raise AssertionError(f"no chart mentions {title_word!r}")


def _bars(at) -> dict[str, np.ndarray]:
    """Each method's attributions, as the features × methods map holds them (unscaled, in its hover data)."""
    heat = _chart(at, "scaled to the method's largest")["data"][0]
    raw = plotly_array(heat["customdata"])
    return {label.replace("<br>", " "): raw[:, j] for j, label in enumerate(heat["x"])}


def _stars(at) -> list[tuple[int, int]]:
    """(row, column) of the ★ winners in the loss matrix."""
    text = _chart(at, "neighbourhood and loss")["data"][0]["text"]
    return [(i, j) for i, row in enumerate(text) for j, cell in enumerate(row) if cell == "★"]


def test_default_view_recommends_by_neighbourhood_and_each_method_wins_its_own_column(open_page):
    at = _ok(open_page(PAGE))
    assert len(at.get("plotly_chart")) == 5  # attributions, σ replay, clouds, loss matrix, agreement
    assert _metric(at, "choose") == "SmoothGrad" and "SmoothGrad" in _metric(at, "most faithful here")
    stars = _stars(at)
    assert sum(i == j for i, j in stars) >= 6 and len({i for i, _ in stars}) >= 5  # no free lunch
    at.radio(key="question").set_value("remove-near").run()
    assert _metric(_ok(at), "choose") == "LIME" and _metric(at, "most faithful here") == "LIME"


def test_presets_show_the_guiding_principle_the_sigma_limit_and_patch_maps(open_page):
    at = _ok(open_page(PAGE))
    at = _ok(at.sidebar.button(key="preset-0").click().run())  # linear model on wine
    bars = _bars(at)
    np.testing.assert_allclose(bars["SmoothGrad"], bars["Vanilla gradients"], rtol=1e-5)  # both return w
    np.testing.assert_allclose(bars["C-LIME"], bars["Vanilla gradients"], rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(bars["LIME"], bars["Gradient × input"], rtol=1e-3, atol=1e-4)  # both w ⊙ x₀
    assert np.abs(bars["LIME"] - bars["SmoothGrad"]).max() > 0.1

    at = _ok(at.sidebar.button(key="preset-2").click().run())  # σ → 0 on diabetes
    replay = _chart(at, "SmoothGrad (σ)")
    last = plotly_array(replay["frames"][-1]["data"][0]["y"])
    first = plotly_array(replay["frames"][0]["data"][0]["y"])
    vanilla = plotly_array(replay["data"][1]["y"])
    assert np.abs(last - vanilla).max() < 0.02 * np.abs(vanilla).max() < np.abs(first - vanilla).max()
    assert _metric(at, "choose") == "Vanilla gradients"

    at = _ok(at.sidebar.button(key="preset-3").click().run())  # shapes CNN, 16 patches
    spec = _chart(at, "Gradient × input")
    assert sum(t["type"] == "heatmap" for t in spec["data"]) == 8 and _metric(at, "features d") == "16"
    assert _metric(at, "choose") == "Occlusion" and "Occlusion" in _metric(at, "most faithful here")


def test_too_few_samples_for_lime_say_what_to_change_and_bad_links_fall_back(open_page):
    at = open_page(PAGE, source="image", patch="8", n="40")
    assert not at.exception
    assert any("`n_samples` >= 65" in e.value for e in at.error)
    at = _ok(open_page(PAGE, dataset="iris", question="everything", n="99999"))
    assert _metric(at, "features d") == "30" and _metric(at, "choose") == "SmoothGrad"
