"""AppTest of the guidance page: each preset shows its number, links by registry key, garbage links, the pipeline root."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from tests.conftest import plotly_array

ROOT = Path(__file__).resolve().parent.parent
PAGE = "pages/guidance.py"


def _metrics(at, label: str) -> list[float]:
    """The displayed values of the metric ``label``: [left guider, right guider]."""
    return [float(m.value) for m in at.metric if m.label == label]


def _preset(open_page, name: str, **query: str):
    at = open_page(PAGE, **query)
    button = next(b for b in at.sidebar.button if b.label == name)
    at = button.click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    return at


def test_preset_cfg_burns_cfg_leaves_the_circle_apg_stays_on_it(open_page):
    at = _preset(open_page, "CFG burns at w = 15")
    cfg, apg = _metrics(at, "mean_radius")
    assert cfg > 2.5 and abs(apg - 2.0) <= 0.05  # the modes sit at radius 2
    assert _metrics(at, "accuracy") == [1.0, 1.0]


def test_preset_apg_with_rescale_and_momentum_halves_the_unet_saturation(open_page):
    at = _preset(open_page, "APG with r and β (paper)")
    assert at.sidebar.selectbox(key="model").value == "unet" and at.sidebar.slider(key="steps").value == 25
    cfg, apg = _metrics(at, "saturation")
    assert apg < 0.5 * cfg
    assert min(_metrics(at, "accuracy")) >= 0.95


def test_preset_adaptive_guidance_uses_fewer_than_two_model_calls_per_step(open_page):
    at = _preset(open_page, "Adaptive guidance")
    steps = at.sidebar.slider(key="steps").value
    cfg, adaptive = _metrics(at, "model calls")
    assert cfg == 2 * steps and adaptive < 2 * steps
    assert _metrics(at, "accuracy")[1] >= 0.95


def test_default_link_shows_the_shipped_final_digits_cfg_saturated_apg_not(open_page):
    at = open_page(PAGE)
    assert not at.exception and not at.error
    assert at.sidebar.selectbox(key="model").value == "unet" and at.slider(key="t").value == 24  # the final step
    cfg, apg = _metrics(at, "saturation")
    assert cfg > 0.3 and apg < 0.5 * cfg  # shipped: 0.438 vs 0.062 (the paper's APG, η = 0, r = 2, β = −0.5)
    finals = [json.loads(chart.proto.spec) for chart in at.get("plotly_chart")[:2]]
    assert ["saturated" in f["layout"]["title"]["text"] for f in finals] == [True, True]
    assert finals[0]["data"][0]["colorscale"][0][1] in ("rgb(0,0,0)", "#000000", "rgb(0, 0, 0)")  # grey, not RdBu


def test_defaults_render_both_guiders_and_their_curves(open_page):
    at = open_page(PAGE, model="mixture", steps="16")
    assert not at.exception and not at.error
    assert len(at.get("plotly_chart")) == 4  # two views, norms, cos
    assert _metrics(at, "model calls") == [32.0, 32.0]
    norms = json.loads(at.get("plotly_chart")[2].proto.spec)
    assert plotly_array(norms["data"][0]["x"]).tolist() == list(range(16))  # one point per step


def test_scrubber_range_follows_steps(open_page):
    at = open_page(PAGE, steps="8", t="5")
    scrubber = at.slider(key="t")
    assert (scrubber.min, scrubber.max, scrubber.value) == (0, 7, 5)
    at.sidebar.slider(key="steps").set_value(4).run()
    assert not at.exception and at.slider(key="t").max == 3 and at.slider(key="t").value == 3


def test_old_label_links_select_the_registry_keys(open_page):
    at = open_page(
        PAGE, model="Digits, smoothed empirical (exact)", right="Adaptive guidance (AG)", steps="8", warmup="2"
    )
    assert not at.exception and not at.error
    assert at.sidebar.selectbox(key="model").value == "empirical"
    assert at.sidebar.selectbox(key="right").value == "adaptive"
    assert at.query_params["model"] == "empirical"


@pytest.mark.parametrize(
    "query",
    [
        {"model": "Nope", "left": "xyz", "right": ""},
        {"w": "abc", "steps": "-5", "t": "1e9", "gamma": "nan", "warmup": "0.5", "eta": "inf"},
        {"steps": "100000", "r": "-1", "beta": "2", "phi": "😀" * 50, "seed": "-3"},
    ],
)
def test_garbage_links_render_with_a_notice_and_no_exception(open_page, query):
    at = open_page(PAGE, **query)
    assert not at.exception, [e.value for e in at.exception]
    assert not any(e.value.startswith("Could not compute") for e in at.error)
    assert at.toast, "the page says which link values it could not use"
    assert len(at.get("plotly_chart")) == 6  # the default model (digits): final samples ×2, step views ×2, norms, cos


def test_pipeline_is_not_offered_without_a_server_root(open_page, monkeypatch):
    monkeypatch.delenv("OPTISCOPE_PIPELINE_ROOT", raising=False)
    at = open_page(PAGE, model="pipeline", pipeline="/etc")
    assert "pipeline" not in at.sidebar.selectbox(key="model").options
    assert at.sidebar.selectbox(key="model").value == "unet" and at.toast
    assert not at.text_input  # no folder field at all


def test_pipeline_folder_is_refused_outside_the_root_and_never_read_from_the_url(open_page, monkeypatch, tmp_path):
    from test_guidance import _tiny_dit

    _tiny_dit(tmp_path / "dit")
    monkeypatch.setenv("OPTISCOPE_PIPELINE_ROOT", str(tmp_path))
    at = open_page(PAGE, model="pipeline", pipeline="dit", steps="4")
    assert at.sidebar.text_input(key="pipeline").value == ""  # the URL does not fill a server path
    at = at.sidebar.text_input(key="pipeline").input("../../etc").run()
    assert not at.exception and "inside the pipeline root" in at.error[0].value
    at = at.sidebar.text_input(key="pipeline").input("dit").run()
    assert not at.exception and not at.error
    assert _metrics(at, "model calls") == [8.0, 8.0] and len(at.get("plotly_chart")) == 4


def test_sweep_job_shows_cfg_leaving_the_circle_as_w_grows():
    # The page file on its own: through the router + switch_page, AppTest does not deliver a main-area click.
    at = AppTest.from_file(str(ROOT / PAGE), default_timeout=120)
    at.query_params["model"] = "mixture"
    at.run()  # 64 steps: APG at w = 15 is not stiff
    at.button(key="guidance-sweep-start").click().run()
    deadline = time.monotonic() + 120
    while len(at.get("plotly_chart")) < 6 and time.monotonic() < deadline:
        time.sleep(0.5)
        at.run()
    assert not at.exception and not at.error
    sweep = json.loads(at.get("plotly_chart")[4].proto.spec)  # mean radius against w
    radius = {trace["name"]: plotly_array(trace["y"]) for trace in sweep["data"]}
    assert radius["CFG"][-1] > radius["APG"][-1] + 0.3  # at w = 15
