"""AppTest of the steering page: each preset shows its numbers, the live player steps, the digits job judges."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from tests.conftest import plotly_array

ROOT = Path(__file__).resolve().parent.parent
PAGE = "pages/steering.py"


def _metrics(at, label: str) -> list[float]:
    """The displayed values of ``label``, one per sampler row: [method, CFG at equal calls, (CFG at w = 1.5)]."""
    return [float(m.value) for m in at.metric if m.label == label]


def _titles(at, title: str) -> list[dict]:
    """The plotly specs of the charts whose title starts with ``title``."""
    specs = [json.loads(chart.proto.spec) for chart in at.get("plotly_chart")]
    return [spec for spec in specs if spec["layout"].get("title", {}).get("text", "").startswith(title)]


def _figure(at, title: str) -> dict:
    return _titles(at, title)[0]


def _preset(open_page, name: str):
    at = open_page(PAGE)
    at = next(b for b in at.sidebar.button if b.label == name).click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    return at


def test_dynamic_cfg_preset_is_accurate_with_a_lower_nll_than_cfg(open_page):
    at = _preset(open_page, "Dynamic CFG: alignment + fidelity")
    accuracy, nll = _metrics(at, "accuracy"), _metrics(at, "NLL")
    assert accuracy[0] >= 0.99 and nll[0] < min(nll[1:])  # measured 2.53 against 4.39 (w = 4) and 2.59 (w = 1.5)
    assert len(set(_metrics(at, "model calls"))) == 1  # every sampler at 64 calls


def test_alignment_alone_overshoots(open_page):
    at = _preset(open_page, "Dynamic CFG: alignment alone overshoots")
    assert _metrics(at, "radius")[0] > 3.2  # the modes sit at radius 2


def test_cfg_mp_preset_counts_calls_and_guides_more_than_cfg_at_equal_calls(open_page):
    at = _preset(open_page, "CFG-MP+ against CFG at equal calls")
    calls, steps = _metrics(at, "model calls"), _metrics(at, "steps")
    assert calls[0] == calls[1] > 2 * steps[0] and steps[1] > steps[0]  # 166 calls: CFG gets 83 steps
    radius = _metrics(at, "radius")
    assert radius[0] > radius[1] + 0.03  # extra early guidance (measured 2.374 against 2.305)


@pytest.mark.parametrize(
    ("preset", "low", "high"),
    [("EluCD against oracle and naive", 1.97, 2.03), ("EluCD with τ2 = ½τ1 overshoots", 2.3, 3.0)],
)
def test_elucd_presets_land_on_or_past_the_circle(open_page, preset, low, high):
    at = _preset(open_page, preset)
    assert low <= _metrics(at, "radius")[0] <= high and _metrics(at, "accuracy")[0] >= 0.99
    assert _metrics(at, "model calls")[0] == 32  # one unconditional call per step (the oracle is telemetry)


def test_live_player_draws_the_chosen_scale_strip(open_page):
    at = open_page(PAGE, method="dynamic", std="0.4", steps="16")
    for _ in range(3):
        at = at.button(key="steering-live-step").click().run()
    assert not at.exception
    assert next(m for m in at.metric if m.label == "Step").value == "3"
    z = _figure(at, "Chosen scale")["data"][0]["z"]  # plotly's typed array
    assert z["shape"] == "64, 3"  # 64 samples × 3 steps
    assert (plotly_array(z) == 1.0).all()  # high σ: fidelity keeps w = 1


def test_live_player_shows_picard_and_anderson_residuals(open_page):
    at = open_page(PAGE, method="cfg-mp+", std="0.15", steps="32", iters="3")
    for _ in range(12):  # step 12 sits at flow t ≈ 0.34, inside the projected region
        at = at.button(key="steering-live-step").click().run()
    spec = _figure(at, "Residual per inner iteration")
    residuals = {trace["name"]: plotly_array(trace["y"]) for trace in spec["data"]}
    assert set(residuals) == {"picard", "anderson"} and all(len(r) == 4 for r in residuals.values())
    assert residuals["anderson"][:2] == pytest.approx(residuals["picard"][:2])  # Anderson starts with Picard steps
    # on the sampler's own path G(z) − z ≈ h(v_c − v_u) hardly shrinks: neither solver converges (measured ≈ 1%/it)
    assert residuals["picard"][3] > 0.9 * residuals["picard"][0]


def test_a_bad_link_shows_a_message_not_a_traceback(open_page):
    at = open_page(PAGE, method="no-such-method", iters="-3", s="nan")
    assert not at.exception


def test_digits_job_puts_dynamic_cfg_beside_cfg_at_equal_calls():
    at = AppTest.from_file(str(ROOT / PAGE), default_timeout=180)
    at.query_params["method"] = "dynamic"
    at.run()
    at.button(key="steering-digits-start").click().run()
    deadline = time.monotonic() + 300
    while not at.dataframe and time.monotonic() < deadline:
        time.sleep(1.0)
        at.run()
    assert not at.exception and not at.error
    table = at.dataframe[-1].value
    assert table["model calls"].nunique() == 1  # 50 each
    assert table["judge accuracy"].iloc[0] >= 0.9  # judged by digits-mlp-converged, not the evaluator


def test_elucd_sweep_shows_accuracy_rising_with_the_scale():
    at = AppTest.from_file(str(ROOT / PAGE), default_timeout=180)
    at.query_params.update({"method": "elucd", "std": "0.15"})
    at.run()
    at.button(key="steering-sweep-start").click().run()
    deadline = time.monotonic() + 300
    while not _titles(at, "Final accuracy") and time.monotonic() < deadline:
        time.sleep(1.0)
        at.run()
    assert not at.exception and not at.error
    accuracy = {trace["name"]: plotly_array(trace["y"]) for trace in _figure(at, "Final accuracy")["data"]}
    assert accuracy["x0"][0] < 0.2 and accuracy["x0"][2] >= 0.99  # s = 0 (unguided) and s = 0.1
    radius = {trace["name"]: plotly_array(trace["y"]) for trace in _figure(at, "Final radius")["data"]}
    assert radius["xt"][2] < radius["x0"][2]  # the naive guide falls short of the circle
