"""AppTest of the learning-rules page: the shipped numbers it displays, the live players, and the seeds job."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from core.data.digits import load_digits_split
from core.learning_rules import boolean_task, noprop_run, rrr_run, shipped, theory
from tests.conftest import plotly_array

PAGE = "pages/learning_rules.py"
ROOT = Path(__file__).resolve().parent.parent


def _metric(at, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


def _spec(at, text: str) -> dict:
    return next(json.loads(c.proto.spec) for c in at.get("plotly_chart") if text in c.proto.spec)


def test_noprop_default_view_shows_the_shipped_comparison(open_page):
    at = open_page(PAGE)
    assert not at.exception, [e.value for e in at.exception]
    runs = shipped.load()["noprop"]
    assert float(_metric(at, "NoProp-DT")) == pytest.approx(runs["noprop"][-1]["accuracy_noise_free"], abs=1e-3)
    assert float(_metric(at, "NoProp-DT")) >= 0.965  # N1, 60 epochs (the note: .975)
    table = next(d.value for d in at.dataframe if "block 1 alone" in d.value.columns)
    assert list(table["method"]) == ["NoProp-DT", "Backprop through the same chain", "Plain MLP"]
    assert table["block 1 alone"][0] >= 0.9  # the honest point: block 1 alone already classifies
    chain = _spec(at, "z_t of one test image per class")
    assert len(chain["frames"]) == 11  # z_0 .. z_T for T = 10
    points = chain["frames"][-1]["data"][0]
    angles = np.arctan2(plotly_array(points["y"]), plotly_array(points["x"]))
    landed = np.round(angles / (2 * np.pi / 10)).astype(int) % 10  # the class whose circle point z_T is at
    assert (landed == np.arange(10)).sum() >= 8  # measured 9 of 10 (the first test 3 is read as a 5)
    bars = plotly_array(chain["frames"][-1]["data"][1]["y"])
    assert int(bars.argmax()) == 2  # the default digit 2 ends at its own class


def test_noprop_live_step_shows_the_core_accuracy(open_page):
    at = open_page(PAGE, method="mlp", epochs="2")
    at.button(key="lr-noprop-step").click().run()
    assert not at.exception
    first = next(noprop_run(load_digits_split(0.2), method="mlp", steps=2, seed=0))
    assert _metric(at, "epoch") == "1"
    assert float(_metric(at, "test acc (noise-free)")) == pytest.approx(first.accuracy_noise_free, abs=1e-3)


def test_rrr_default_view_draws_the_solved_xor_net_and_its_truth_table(open_page):
    at = open_page(PAGE, part="rrr")
    assert not at.exception, [e.value for e in at.exception]
    run = shipped.load()["rrr"]["run"]
    assert _metric(at, "status") == f"solved at iteration {run[-1]['solved_at'][0]}"
    assert float(_metric(at, "truth-table accuracy")) == 1.0
    assert int(_metric(at, "solved runs (of 20 seeds)")) >= 18  # B1 (the note: 20/20)
    table = next(d.value for d in at.dataframe if "target 1" in d.value.columns)
    assert (table["y1"] == table["target 1"]).all() and list(table["target 1"]) == [-1, 1, 1, -1]
    net = _spec(at, "as gates")
    labels = [t for trace in net["data"] for t in trace.get("text", []) if t.startswith("y1 = ")]
    assert len(labels) == 1 and labels[0].split(" = ")[1].split("(")[0] in {"AND", "OR", "MAJ"}


def test_rrr_live_step_shows_the_core_gap(open_page):
    at = open_page(PAGE, part="rrr", seed="3")
    at.button(key="lr-rrr-step").click().run()
    assert not at.exception
    x, y = boolean_task("xor")
    first = next(rrr_run(x, y, hidden=(3,), steps=1000, every=5, seed=3))
    assert _metric(at, "status") == "not solved yet"
    assert float(_metric(at, "gap")) == pytest.approx(float(first.gap[0]), rel=1e-3)


def test_estimator_error_and_cosine_follow_theory(open_page):
    at = open_page(PAGE, part="zo")
    assert not at.exception, [e.value for e in at.exception]
    spec = _spec(at, "theory")
    d = plotly_array(spec["data"][0]["x"])
    rel, rel_theory = plotly_array(spec["data"][0]["y"]), plotly_array(spec["data"][1]["y"])
    assert list(d) == [10, 100, 1000, 10000]
    assert rel_theory == pytest.approx([theory(int(n), 10)["rel_mse"] for n in d])
    assert np.abs(rel / rel_theory - 1).max() < 0.2  # 100 repeats per d (Z1's 10 % needs more; the core test)
    assert float(_metric(at, "worst |cos/theory − 1|")) < 0.1
    rules = next(d.value for d in at.dataframe if "mean cosine" in d.value.columns).set_index("rule")
    assert rules.loc["Node perturbation", "mean cosine"] > 4 * rules.loc["Weight perturbation", "mean cosine"]
    assert rules.loc["Backprop", "test acc"] > rules.loc["Node perturbation", "test acc"] > 0.85


def test_live_rule_run_steps_from_the_page(open_page):
    at = open_page(PAGE, part="zo", rule="backprop")
    at.button(key="lr-rules-live-step").click().run()
    assert not at.exception
    assert _metric(at, "step") == "50" and float(_metric(at, "cosine")) == pytest.approx(1.0)


def test_unsolvable_net_reports_no_solution_from_the_seeds_job():
    # The page file on its own: through the router + switch_page, AppTest did not deliver a job's button click.
    at = AppTest.from_file(str(ROOT / PAGE), default_timeout=120)
    at.query_params["part"], at.query_params["width"] = "rrr", "1"
    at.run()
    assert not at.exception
    at.button(key="lr-rrr-seeds-start").click().run()
    deadline = time.monotonic() + 300
    while not any(m.label == "solved runs (of 20 seeds)" for m in at.metric) and time.monotonic() < deadline:
        time.sleep(1.0)
        at.run()
    assert _metric(at, "solved runs (of 20 seeds)") == "no solution within 1000 iterations"
