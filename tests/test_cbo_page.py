"""AppTest of the CBO page: each preset's displayed number, live mode, bad links and bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.conftest import plotly_array

PAGE = "pages/cbo.py"
CBO_ERROR = "CBO ‖v − x*‖∞"


def _ok(at):
    assert not at.exception, [e.value for e in at.exception]
    return at


def _metric(at, label: str) -> float:
    return float(next(m.value for m in at.metric if m.label == label))


def _explained(at, quantity: str) -> str:
    """A value in an explainer's table."""
    rows = [row for df in at.dataframe if "quantity" in df.value for row in df.value.to_dict("records")]
    return next(row["value"] for row in rows if row["quantity"] == quantity)


def _preset(open_page, index: int):
    at = _ok(open_page(PAGE))
    return _ok(at.sidebar.button(key=f"preset-{index}").click().run())


def test_default_view_draws_the_swarm_decay_and_weights(open_page):
    at = _ok(open_page(PAGE))
    assert not at.error
    assert len(at.get("plotly_chart")) >= 3
    assert _metric(at, CBO_ERROR) < 0.25  # Rastrigin d = 2, N = 200: the swarm finds x* = 0
    assert any("Effective sample size" in m.label for m in at.metric)


def test_grand_canyon_preset_shows_cbo_reaching_x_star_while_gd_stalls(open_page):
    at = _preset(open_page, 0)
    assert at.selectbox(key="objective").value == "GrandCanyon3noisy" and at.radio(key="noise").value == "isotropic"
    assert _metric(at, CBO_ERROR) < 0.25  # the success criterion ||v - x*||_inf < 0.25
    assert _metric(at, "CH ‖x − x*‖∞") < 0.25  # consensus hopping gets there too
    assert _metric(at, "GD ‖x − x*‖∞") > 5.0  # gradient descent stalls in a ripple near (6.6, 7.6)


def test_sigma_threshold_preset_shows_the_swarm_failing_at_sigma_5(open_page):
    at = _preset(open_page, 1)
    assert at.slider(key="sigma").value == 5.1 and at.number_input(key="d").value == 20
    assert _metric(at, CBO_ERROR) > 0.25  # below the threshold (CBXpy: sigma = 10.1 succeeds, 5.1 fails)


def test_isotropic_preset_shows_the_two_rates_and_a_slow_decay(open_page):
    at = _preset(open_page, 2)
    assert _explained(at, "2λ − dσ²") == "0.3616" and _explained(at, "2λ − σ²") == "1.898"
    spec = next(json.loads(c.proto.spec) for c in at.get("plotly_chart") if "V(t)" in c.proto.spec)
    t, v = (plotly_array(spec["data"][0][axis]) for axis in ("x", "y"))
    slope = np.polyfit(t, np.log(v), 1)[0]
    assert -slope < 1.8976 / 2  # isotropic noise in d = 16 decays far slower than the anisotropic rate


def test_isotropic_divergence_is_explained(open_page):
    at = _ok(open_page(PAGE, objective="Rastrigin", d="20", n="40", sigma="10.1", noise="isotropic", steps="200"))
    assert any("diverged" in e.value and "2λ < dσ²" in e.value for e in at.error)


def test_high_dimension_shows_projection_and_error_curve(open_page):
    at = _ok(open_page(PAGE, objective="Ackley", d="200", n="100", steps="50"))
    assert not at.error
    assert any("projection" in h.value for h in at.subheader)
    assert any("Error of the consensus point" in c.proto.spec for c in at.get("plotly_chart"))


def test_live_step_shows_step_1_and_holds_reduced_states(open_page):
    at = _ok(open_page(PAGE, mode="Live", n="1000", d="50", steps="20"))  # an old link's label maps to its key
    assert at.radio(key="mode").value == "live"
    assert next(m for m in at.metric if m.label == "Step").value == "0"
    _ok(at.button(key="cbo-live-step").click().run())
    assert next(m for m in at.metric if m.label == "Step").value == "1"
    held = at.session_state["cbo-live"].states
    assert len(held) == 1 and held[0].step == 0 and tuple(held[0].x.shape) == (300, 2)


@pytest.mark.parametrize(
    "params",
    [{"d": "1"}, {"n": "-5"}, {"objective": "Nope"}, {"mode": "Nope"}, {"noise": "pink"}, {"dt": "7"}, {"alpha": "x"}],
)
def test_garbage_link_values_render_with_a_notice(open_page, params):
    at = _ok(open_page(PAGE, **params))
    (key, raw), default = next(iter(params.items())), _ok(open_page(PAGE))
    assert any(f"`{key}={raw}`" in toast.value for toast in at.toast)
    assert not at.error and _metric(at, CBO_ERROR) == _metric(default, CBO_ERROR)  # the default was used


def test_work_past_the_budget_is_refused_with_a_message(open_page):
    at = _ok(open_page(PAGE, n="2000", d="1000", steps="5000"))
    assert any("particle-steps M·N·d·steps; the budget is 2e+09" in e.value for e in at.error)


def test_bad_input_is_a_message_not_a_traceback(open_page):
    at = _ok(open_page(PAGE, objective="GrandCanyon3noisy", d="3"))
    assert any("Expected d=2 for GrandCanyon3noisy" in e.value for e in at.error)
