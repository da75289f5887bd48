"""AppTest of the diffusion-training page: the displayed numbers, the clamped w slider, live steps, each part."""

from __future__ import annotations

import json
import time

import pytest

from tests.conftest import plotly_array

PAGE = "pages/diffusion_training.py"
TINY = {"steps": "100", "steps2": "50", "width": "16"}


def _ok(at) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def _metric(at, label: str) -> float:
    return float(next(m.value for m in at.metric if m.label == label))


def _click(at, label: str):
    return next(b for b in at.button if b.label == label).click().run()


def test_default_view_shows_the_exact_teachers_cfg_radius(open_page) -> None:
    at = open_page(PAGE)
    _ok(at)
    assert _metric(at, "teacher radius at w = 3") == pytest.approx(2.24, abs=0.02)  # notes §4: 2.241
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    radii = plotly_array(spec["data"][0]["y"])
    assert len(radii) == 6 and radii[-1] > radii[0] + 0.4  # CFG pushes outward as w grows (1.99 → 2.51)


def test_the_distilled_digits_unet_shows_beside_its_teacher_with_its_shipped_accuracy(open_page) -> None:
    from core import zoo

    at = open_page(PAGE)
    shipped = zoo.info("digits-unet-distilled")["metrics"]
    assert _metric(at, "accuracy student 4 steps") == pytest.approx(shipped["accuracy_student_4_steps"], abs=1e-3)
    assert _metric(at, "accuracy student 4 steps") >= _metric(at, "accuracy teacher 32 steps") - 0.02
    chart = next(c for c in at.get("plotly_chart") if c.key == "dt-digits")
    assert len(json.loads(chart.proto.spec)["data"]) == 20  # 10 teacher digits above 10 student digits


def test_the_w_slider_stops_at_the_students_training_range_and_says_why(open_page) -> None:
    at = open_page(PAGE, w="7.5")
    slider = at.sidebar.slider(key="w")
    assert slider.max == 5.0 and slider.value == 3.0
    assert any("cannot extrapolate" in c.value for c in at.sidebar.caption)


def test_a_live_step_trains_and_scores_the_students_samples(open_page) -> None:
    at = _click(open_page(PAGE, **TINY), "Step")
    _ok(at)
    assert _metric(at, "Step") == 1 and _metric(at, "sampler steps") == 32
    assert 0.0 <= _metric(at, "precision") <= 1.0 and _metric(at, "radius") > 0


def test_a_finished_run_compares_distilled_and_naive_4_step_sampling(open_page) -> None:
    at = _click(open_page(PAGE, **TINY), "▶ Play")
    deadline = time.monotonic() + 240
    while not any(c.key == "dt-sweep-radius" for c in at.get("plotly_chart")) and time.monotonic() < deadline:
        time.sleep(2)
        at.run()
    _ok(at)
    chart = next(c for c in at.get("plotly_chart") if c.key == "dt-sweep-radius")
    names = {trace["name"] for trace in json.loads(chart.proto.spec)["data"]}
    assert {"distilled, 4 steps", "naive stage-1, 4 steps", "teacher, 32 steps (64 calls)"} <= names
    assert _metric(at, "sampler steps") == 4  # 32 → 16 → 8 → 4


def test_the_self_npo_part_says_there_is_no_preference_signal(open_page) -> None:
    at = open_page(PAGE, part="npo", **TINY)
    _ok(at)
    assert any("no preference signal" in i.value for i in at.info)
    assert at.sidebar.slider(key="w_neg").value == -1.0
    at = _click(at, "Step")
    assert _metric(at, "Step") == 1


def test_the_ntk_part_shows_the_noise_floor_and_the_interpolant(open_page) -> None:
    at = open_page(PAGE, part="ntk", ntk_width="256", ntk_steps="100", n="50")
    _ok(at)
    noise, interpolant = _metric(at, "label noise E‖x0 − D*‖²"), _metric(at, "NTK interpolant vs D*")
    assert 0.1 < noise < 0.5 and interpolant > 2 * _metric(at, "NTK early-stopped vs D*")
    at = _click(at, "Step")
    _ok(at)
    assert _metric(at, "early-stop T") == 1
