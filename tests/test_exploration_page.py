"""AppTest of the reward-free exploration page: presets' displayed numbers, the planning chart, bad links."""

from __future__ import annotations

import json

import pytest

from tests.conftest import plotly_array

PAGE = "pages/exploration.py"


def _ok(at):
    assert not at.exception, [e.value for e in at.exception]
    return at


def _metric(at, label: str) -> float:
    return float(next(m.value for m in at.metric if m.label == label))


def test_preset_shows_random_stuck_and_ucrl_rfe_reaching_the_far_segment(open_page):
    at = _ok(open_page(PAGE, episodes="5"))  # a light first paint; the preset sets K = 40
    _ok(at.sidebar.button(key="preset-0").click().run())
    assert at.slider(key="episodes").value == 40 and not at.error
    assert _metric(at, "Random: visits to states 9–11") == 0
    assert _metric(at, "Random: worst gap at K=40") == pytest.approx(0.0798, abs=0.005)  # the notes' 0.080 plateau
    assert _metric(at, "UCRL-RFE: visits to states 9–11") > 100
    assert _metric(at, "UCRL-RFE: worst gap at K=40") <= 0.005
    assert _metric(at, "θ̂4 Random") == 0.0  # never tried: ridge's prior


def test_planning_chart_follows_the_picked_reward_and_replays_episodes(open_page):
    at = _ok(open_page(PAGE, episodes="10", reward="goal-3"))
    specs = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    plan = next(s for s in specs if "goal state 3" in json.dumps(s["layout"].get("title", "")))
    curves = {trace["name"]: plotly_array(trace["y"]) for trace in plan["data"]}
    assert len(curves) == 3 and all(len(c) == 11 for c in curves.values())  # K + 1 points per explorer
    assert abs(curves["Random"][-1]) < 1e-12 and curves["UCRL-RFE"][0] > 0.01  # goal 3 is near: random finds it too
    visits = next(s for s in specs if s.get("frames"))
    assert len(visits["frames"]) == 11 and visits["layout"]["sliders"][0]["currentvalue"]["prefix"] == "episode "


@pytest.mark.parametrize("params", [{"reward": "nope"}, {"horizon": "0"}, {"episodes": "-3"}])
def test_garbage_link_values_render_with_a_notice(open_page, params):
    at = _ok(open_page(PAGE, **({"episodes": "5"} | params)))
    (key, raw) = next(iter(params.items()))
    assert any(f"`{key}={raw}`" in toast.value for toast in at.toast)
    assert not at.error
