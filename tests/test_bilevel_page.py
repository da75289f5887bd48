"""AppTest of the bilevel page: each part shows its reference number, live distillation steps, bad links are messages."""

from __future__ import annotations

import json

import pytest

from tests.conftest import plotly_array

PAGE = "pages/bilevel.py"


def _ok(at):
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    return at


def _metrics(at) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def _chart(at, key: str) -> dict:
    return json.loads(next(c for c in at.get("plotly_chart") if c.proto.id and key in c.proto.id).proto.spec)


def test_ridge_view_shows_the_closed_form_and_implicit_beating_unrolled(open_page):
    at = _ok(open_page(PAGE))
    values = _metrics(at)
    assert float(values["exact dL/dθ"]) == pytest.approx(-59.0, abs=0.01)
    assert float(values["implicit / unrolled error"]) == pytest.approx(0.127, abs=0.002)  # k = 1000
    spec = _chart(at, "bilevel-errors")
    implicit, unrolled = (
        next(t["y"] for t in spec["data"] if t["name"].startswith(n)) for n in ("implicit", "unrolled")
    )
    assert (plotly_array(implicit)[2:] < plotly_array(unrolled)[2:]).all()  # k >= 30


def test_logistic_preset_url(open_page):
    at = _ok(open_page(PAGE, task="logistic", theta="-3.0"))
    assert float(_metrics(at)["exact dL/dθ"]) == pytest.approx(0.03504, rel=1e-3)


def test_distillation_steps_live(open_page):
    at = _ok(open_page(PAGE, part="distill", di_steps="10"))
    assert any("Press Play" in i.value for i in at.info)
    step = next(b for b in at.button if b.label == "Step")
    at = _ok(step.click().run())
    values = _metrics(at)
    assert values["Step"] == "1" and values["outer step"] == "0"
    assert float(values["test accuracy"]) < 0.2  # the images start as noise


def test_lvhba_fork_settings_converge_and_the_authors_defaults_do_not(open_page):
    values = _metrics(_ok(open_page(PAGE, part="lvhba")))
    assert float(values["‖x − x*‖/‖x*‖"]) == pytest.approx(0.0778, abs=0.001)  # k = 2000, note: 0.0778
    assert values["λ"] == "-1"
    authors = dict(lv_steps="1500", lv_alpha="0.008", lv_beta="0.02", lv_eta="0.01", lv_bound="1000", lv_c0="0.025")
    values = _metrics(_ok(open_page(PAGE, part="lvhba", **authors)))
    assert float(values["‖x − x*‖/‖x*‖"]) > 10  # note: 119 at k = 1500


def test_borep_converges_where_aid_diverges(open_page):
    at = _ok(open_page(PAGE, part="borep"))
    values = _metrics(at)
    assert values["BO-REP: first ‖∇Φ‖ < 0.1"] == "1113"
    assert values["AID"] == "diverged"
    assert values["∇g / HVP / ∇f calls (BO-REP)"] == "3050 / 2400 / 1200"
    assert any(b.label.startswith("Compute AID's step-size wall") for b in at.button)


def test_out_of_range_step_in_a_link_is_refused_with_a_notice(open_page):
    at = open_page(PAGE, part="lvhba", lv_alpha="5")  # would diverge: the widget's range stops at 0.1
    assert not at.exception and not at.error
    assert any("lv_alpha=5" in t.value for t in at.toast)
    assert float(_metrics(at)["‖x − x*‖/‖x*‖"]) == pytest.approx(0.0778, abs=0.001)


def test_unknown_link_values_fall_back_with_a_notice(open_page):
    at = open_page(PAGE, part="nope", task="nope")
    assert not at.exception and not at.error
    assert "exact dL/dθ" in _metrics(at)
    assert any("not available here" in t.value for t in at.toast)
