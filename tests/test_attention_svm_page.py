"""AppTest of the Transformers-as-SVM page: each preset shows the number it exists for; links map and degrade."""

from __future__ import annotations

import json

import numpy as np
import pytest
import streamlit as st

from core import attention_svm as asvm

PAGE = "pages/attention_svm.py"
OWN_CORR = "corr with own SVM ({})"
GLOBAL = "selected = global optimum"


def _metrics(at) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def _figures(at) -> list[dict]:
    return [json.loads(chart.proto.spec) for chart in at.get("plotly_chart")]


def _trace(figure: dict, name: str) -> dict:
    return next(t for t in figure["data"] if t.get("name") == name)


def _ok(at) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def _preset(open_page, index: int):
    at = open_page(PAGE)
    at.sidebar.button(key=f"preset-{index}").click().run()
    _ok(at)
    return at


def test_default_view_draws_the_plane_strip_curves_and_badge(open_page):
    at = open_page(PAGE)
    _ok(at)
    figures = _figures(at)
    assert len(figures) >= 6  # plane, heat strip, curves, two singular-value charts, conventions
    plane = figures[0]
    assert plane["frames"] and plane["layout"]["xaxis"]["range"] == [-1.6, 1.6]
    assert any(t.get("marker", {}).get("symbol") == "star" for t in plane["data"])
    assert any("global optimum selected" in m.value for m in at.markdown)
    assert float(_metrics(at)[OWN_CORR.format("fro")]) >= 0.99
    corr = {label: float(value) for label, value in _metrics(at).items() if " SVM" in label and " vs " in label}
    assert corr["W vs Frobenius SVM"] - corr["W vs nuclear SVM"] >= 0.05  # 0.9993 vs 0.918: the SVMs differ
    assert corr["KᵀQ vs nuclear SVM"] - corr["KᵀQ vs Frobenius SVM"] >= 0.05  # 0.9995 vs 0.939


def test_token_plane_preset_turns_the_ray_onto_the_svm_ray(open_page):
    """Preset 1 exists to show W(k)z_i turning onto W^mm z_i: the last frame's ray is the SVM's direction."""
    at = _preset(open_page, 0)
    plane = _figures(at)[0]
    svm = _trace(plane, "W^mm z_i (SVM)")
    last = plane["frames"][-1]["data"][0]
    ray, svm_ray = np.array([last["x"][1], last["y"][1]]), np.array([svm["x"][1], svm["y"][1]])
    cosine = ray @ svm_ray / np.linalg.norm(ray) / np.linalg.norm(svm_ray)
    assert cosine > 0.999
    assert _metrics(at)[GLOBAL] == "3/3"


def test_local_optimum_preset_says_local(open_page):
    at = _preset(open_page, 1)
    assert any("local optimum selected" in m.value for m in at.markdown)
    assert _metrics(at)[GLOBAL] == "3/4"  # one sequence settles on a locally optimal token


def test_infeasible_global_optimum_preset_says_so(open_page):
    at = _preset(open_page, 2)
    assert any("cannot be separated" in i.value for i in at.info)
    assert any("global optimum infeasible" in m.value for m in at.markdown)
    assert _metrics(at)[GLOBAL] == "2/3"


def test_paper_preset_reaches_its_own_svm_and_tells_the_biases_apart(open_page):
    """The note's A3: corr with the own SVM ≥ .99 at k = 2000, the mismatched SVM clearly lower."""
    at = _preset(open_page, 3)
    assert float(_metrics(at)[OWN_CORR.format("fro")]) >= 0.99
    assert any("needs d = 2" in c.value for c in at.caption)
    line = next(m.value for m in at.markdown if m.value.startswith("**W (one d×d matrix)**"))
    own, other = (float(x.rstrip(",")) for x in line.split()[-3::2])
    assert own - other >= 0.05


def test_old_and_new_param_links_select_kq(open_page):
    """`?param=KQ` (the old key) selects KQ: the radio, the SVM it is compared with, and its numbers."""
    w = open_page(PAGE, param="w")
    assert w.radio(key="param").value == "w"
    for link in ("KQ", "kq", "(K, Q), W = KᵀQ"):
        kq = open_page(PAGE, param=link)
        _ok(kq)
        assert kq.radio(key="param").value == "kq", link
        assert OWN_CORR.format("nuc") in _metrics(kq)
        assert _metrics(kq)["‖W(k)‖ at the end"] != _metrics(w)["‖W(k)‖ at the end"]  # 166.6 vs 177.1


def test_garbage_links_render_with_notices(open_page):
    at = open_page(PAGE, param="Nope", n="-5", T="abc", d="99", lr="7", steps="3", ngd="maybe", seq="42")
    _ok(at)
    notices = " ".join(t.value for t in at.toast)
    for value in ("param=Nope", "n=-5", "d=99", "lr=7", "steps=3"):
        assert value in notices, value
    assert at.radio(key="param").value == "w" and at.sidebar.slider(key="n").value == 2  # the default n
    assert float(_metrics(at)[OWN_CORR.format("fro")]) >= 0.99  # the defaults were used instead


@pytest.mark.parametrize("d", ["1", "3"])
def test_other_dimensions_render(open_page, d):
    at = open_page(PAGE, d=d, steps="200")
    _ok(at)
    assert any("needs d = 2" in c.value for c in at.caption)


def test_live_step_shows_the_first_state(open_page):
    at = open_page(PAGE, steps="200")
    at.button(key="asvm-live-step").click().run()
    _ok(at)
    metrics = _metrics(at)
    assert metrics["Step"] == "1"
    first = next(asvm.run(asvm.make_problem(n=2, T=6, d=2, seed=0), steps=200))  # the page's defaults
    assert float(metrics["loss"]) == pytest.approx(float(first.loss), rel=1e-3)  # shown to 4 digits


def test_the_same_link_draws_the_same_figures_from_scratch(open_page):
    """SVM solves are bit-reproducible (fresh CLARABEL solvers), so cleared caches redraw identical figures."""

    def specs() -> list[str]:
        st.cache_data.clear()
        st.cache_resource.clear()
        at = open_page(PAGE, seed="3")
        _ok(at)
        return [chart.proto.spec for chart in at.get("plotly_chart")]

    first = specs()
    assert len(first) >= 6 and first == specs()
