"""AppTest of the learning-rules page: displayed accuracies, the RRR verdict, and the estimator chart vs theory."""

from __future__ import annotations

import base64
import json

import numpy as np

PAGE = "pages/learning_rules.py"


def _array(values) -> np.ndarray:
    """A trace's data from a chart spec: a list, or plotly's typed array ``{"dtype", "bdata"}``."""
    if isinstance(values, dict):
        return np.frombuffer(base64.b64decode(values["bdata"]), dtype=values["dtype"])
    return np.asarray(values, dtype=float)


def _metric(at, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


def test_page_shows_noprop_accuracies_and_xor_solved(open_page):
    at = open_page(PAGE, epochs="3", hidden="3")
    assert not at.exception, [e.value for e in at.exception]
    assert float(_metric(at, "NoProp accuracy")) >= 0.6  # 3 epochs (measured .716); 60 epochs reach .98 (core test)
    assert float(_metric(at, "MLP")) >= 0.8
    assert int(_metric(at, "solved runs (of 20 seeds)")) >= 18  # measured 20/20 in the core test
    assert float(_metric(at, "truth-table accuracy (shown run)")) == 1.0
    spec = next(json.loads(c.proto.spec) for c in at.get("plotly_chart") if "Relative error" in c.proto.spec)
    measured, theory = _array(spec["data"][0]["y"]), _array(spec["data"][1]["y"])
    assert np.abs(measured / theory - 1).max() < 0.25  # 100 repeats per d on the page


def test_page_reports_no_solution_for_one_gate(open_page):
    at = open_page(PAGE, epochs="1", hidden="1")
    assert not at.exception
    assert _metric(at, "solved runs (of 20 seeds)") == "no solution within 1000 iterations"
