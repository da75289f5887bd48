"""AppTest of the black-box page: the numbers each preset shows, bad links and bad input."""

from __future__ import annotations

import json

import pytest

PAGE = "pages/blackbox.py"


def _ok(at):
    assert not at.exception, [e.value for e in at.exception]
    return at


def _metric(at, label: str) -> float:
    return float(next(m.value for m in at.metric if m.label == label))


def _table(at) -> dict[str, dict]:
    """The comparison table, by method label."""
    df = next(d.value for d in at.dataframe if "method" in d.value)
    return {row["method"]: row for row in df.to_dict("records")}


def _preset(open_page, index: int):
    return _ok(_ok(open_page(PAGE)).sidebar.button(key=f"preset-{index}").click().run())


def test_default_view_replays_the_search_and_draws_curves_and_profiles(open_page):
    at = _ok(open_page(PAGE))
    assert not at.error
    specs = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    assert len(specs) == 3
    slice_spec = specs[0]
    assert slice_spec["data"][0]["type"] == "contour" and len(slice_spec["data"]) == 6
    assert 2 <= len(slice_spec["frames"]) <= 40  # the replay: poll points, attack arrow, frame, mesh per iteration
    assert _metric(at, "f(Φ(x)) final") < 1e-6  # d = 2 surrogate: the hybrid reaches the optimum 0 (measured 8e-13)
    assert _metric(at, "attack successes") >= 1 and _metric(at, "poll successes") >= 1
    names = {trace.get("name") for trace in specs[1]["data"]}
    assert {"Hybrid (attack + direct search)", "CMA-ES (cma)", "CBO (core.cbo)"} <= names


def test_d1_preset_shows_the_hybrid_reaching_the_target_and_direct_search_not(open_page):
    at = _preset(open_page, 0)
    assert at.number_input(key="d").value == 10 and at.slider(key="budget").value == 2000
    table = _table(at)
    hybrid, direct = table["Hybrid (attack + direct search)"], table["Direct search (MADS poll)"]
    assert hybrid["reached f ≤ 0.0001"] == "3/3" and direct["reached f ≤ 0.0001"] == "0/3"  # measured
    assert hybrid["median evaluations to solve"] < direct["median evaluations to solve"]  # 320 vs 1814


def test_pitfall_preset_shows_the_centred_attack_stalling(open_page):
    at = _preset(open_page, 1)
    assert at.radio(key="attack").value == "centred" and at.toggle(key="centred").value
    assert _metric(at, "evaluations") < 200 and _metric(at, "f(Φ(x)) final") > 1e-3  # stalled at 85 evals, f 0.04
    table = _table(at)
    assert table["Attacks only, centred"]["reached f ≤ 0.0001"] == "0/3"
    assert table["Attacks only"]["reached f ≤ 0.0001"] == "3/3"


def test_zoo_preset_finds_a_counterfactual_digit(open_page):
    at = _preset(open_page, 3)
    assert at.selectbox(key="problem").value == "zoo"
    assert _metric(at, "f(Φ(x)) final") < 0.01  # cross-entropy toward class 3: the zoo MLP now calls it a 3
    assert any("blackbox-image" in str(c.proto.id) or "heatmap" in c.proto.spec for c in at.get("plotly_chart"))


@pytest.mark.parametrize("params", [{"problem": "nope"}, {"budget": "0"}, {"method": "newton"}])
def test_garbage_link_values_render_with_a_notice(open_page, params):
    at = _ok(open_page(PAGE, **params))
    (key, raw) = next(iter(params.items()))
    assert any(f"`{key}={raw}`" in toast.value for toast in at.toast)
    assert not at.error


def test_bad_input_is_a_message_not_a_traceback(open_page):
    at = _ok(open_page(PAGE, problem="landscape", landscape="GrandCanyon3noisy", d="3"))
    assert any("Expected d=2 for GrandCanyon3noisy" in e.value for e in at.error)
