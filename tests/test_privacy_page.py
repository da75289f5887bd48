"""AppTest of the private optimization page: presets' displayed numbers, the replay and ledger charts, bad links."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.conftest import plotly_array

PAGE = "pages/privacy.py"


def _ok(at):
    assert not at.exception, [e.value for e in at.exception]
    return at


def _metric(at, label: str) -> float:
    return float(next(m.value for m in at.metric if m.label == label))


def _spec(at, title: str) -> dict:
    specs = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    return next(s for s in specs if title in json.dumps(s["layout"].get("title", "")))


def test_sawtooth_preset_shows_diff2_error_far_below_dp_gd_within_the_budget(open_page):
    at = _ok(open_page(PAGE, rounds="20"))
    _ok(at.sidebar.button(key="preset-0").click().run())
    assert at.slider(key="rounds").value == 100 and not at.error
    assert _metric(at, "error ratio DP-GD / DIFF2") > 5  # measured 7.5 (N = 3000, R = 100, T = 25, ε = 1)
    assert _metric(at, "ε spent, DIFF2 (opacus)") <= 1.0 < _metric(at, "ε spent, DIFF2 (opacus)") + 0.25
    assert _metric(at, "ε spent, DIFF2 (opacus)") < _metric(at, "ε, DIFF2 (classic conversion)") <= 1.0
    assert _metric(at, "bound ratio DIFF2 / DP-GD") < 1  # nε = 3000 ≫ √21
    replay = _spec(at, "squared error")
    assert replay["layout"]["sliders"][0]["currentvalue"]["prefix"] == "rounds shown: " and len(replay["frames"]) > 10
    last = replay["frames"][-1]["data"]
    first_paint = [len(plotly_array(trace["y"])) for trace in replay["data"]]  # every round, the scrubber at the end
    assert first_paint == [100, 100] and replay["layout"]["sliders"][0]["active"] == len(replay["frames"]) - 1
    dp, diff2 = (plotly_array(trace["y"]) for trace in last)
    assert len(dp) == 100 and dp.mean() > 5 * diff2.mean()
    assert diff2[25] < diff2[24]  # the restart at r = 25 resets DIFF2's accumulated difference noise


def test_dp_gd_wins_preset_shows_diff2_worse_with_active_clipping(open_page):
    at = _ok(open_page(PAGE, rounds="20"))
    _ok(at.sidebar.button(key="preset-2").click().run())
    assert _metric(at, "DP-GD: final loss") < _metric(at, "DIFF2-GD: final loss")
    assert _metric(at, "error ratio DP-GD / DIFF2") < 1


def test_ledger_chart_rises_to_at_most_the_target(open_page):
    at = _ok(open_page(PAGE, rounds="30", samples="1000", epsilon="3.0", restart="10", seeds="1"))
    ledger = _spec(at, "Privacy spent")
    curves = [plotly_array(trace["y"]) for trace in ledger["data"]]
    assert all(len(c) == 30 and (np.diff(c) >= 0).all() and c[-1] <= 3.0 for c in curves)
    assert curves[0][-1] > 2.0  # most of the budget is spent by the last round (opacus ≈ 80% of the target)


@pytest.mark.parametrize("params", [{"dataset": "california_housing"}, {"clip": "0"}, {"rounds": "-3"}])
def test_garbage_link_values_render_with_a_notice(open_page, params):
    at = _ok(open_page(PAGE, **({"rounds": "20", "samples": "500", "seeds": "1"} | params)))
    (key, raw) = next(iter(params.items()))
    assert any(f"`{key}={raw}`" in toast.value for toast in at.toast)
    assert not at.error
