"""AppTest of the structured lab: the numbers each section displays, the presets' URLs, and bad input."""

from __future__ import annotations

import base64
import json

import numpy as np
import pytest

PAGE = "pages/structured.py"


def _ok(at):
    assert not at.exception, [e.value for e in at.exception]
    return at


def metric(at, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


def spec(at, key: str) -> dict:
    return json.loads(
        next(c for c in at.get("plotly_chart") if c.proto.id.endswith(key) or key in c.proto.id).proto.spec
    )


def values(array) -> np.ndarray:
    """A plotly JSON array: a list, or numpy's typed-array form ``{"dtype", "bdata"[, "shape"]}``."""
    if isinstance(array, dict):
        flat = np.frombuffer(base64.b64decode(array["bdata"]), dtype=array["dtype"])
        return flat.reshape([int(n) for n in str(array.get("shape", flat.size)).split(",")])
    return np.asarray(array)


def test_default_view_shows_the_three_sections_numbers(open_page):
    at = _ok(open_page(PAGE))
    assert not at.error
    assert metric(at, "GSL: updates to 1e-6") == "390"  # the note's count on dataset A, seed 1
    assert metric(at, "RANDOM: updates to 1e-6") == "—"  # random needs ~3000
    assert (metric(at, "Newton iterations"), metric(at, "status")) == ("8", "converged")  # HS7 from (2, 2)
    assert int(metric(at, "∇f calls, sliding")) < int(metric(at, "∇f calls, subgradient"))
    assert len(at.get("plotly_chart")) == 6


def test_newton_iterates_on_hs7_end_at_the_solution(open_page):
    at = _ok(open_page(PAGE))
    figure = spec(at, "structured-newton")
    path = next(t for t in figure["data"] if t.get("name") == "iterates")
    last = figure["frames"][-1]["data"][0]
    assert values(path["x"])[0] == 2.0 and values(last["x"])[-1] == pytest.approx(0.0, abs=1e-8)
    assert values(last["y"])[-1] == pytest.approx(3**0.5, abs=1e-8)


def test_heat_strip_counts_every_update(open_page):
    at = _ok(open_page(PAGE, strip_rule="cyclic"))
    strip = np.expm1(values(spec(at, "structured-strip")["data"][0]["z"]))  # the page shows log(1 + picks)
    assert strip.shape == (60, 300)  # bins x coordinates
    assert strip.sum() == pytest.approx(400)  # cyclic: one coordinate per update, 400 updates


def test_variable_blocks_with_matrix_updates_preset_url(open_page):
    at = _ok(open_page(PAGE, block="5", update="Hb", cd_steps="200"))
    assert metric(at, "GSL: updates to 1e-6") == "179"  # note: GSD (d = L_i) + Hb, tau = 5


def test_sliding_with_the_true_gap(open_page):
    at = _ok(open_page(PAGE, restart="oracle", sl_tol="4"))
    assert int(metric(at, "∇f calls, sliding")) <= 100
    assert int(metric(at, "phases")) == 2


@pytest.mark.parametrize(
    ("params", "needle"),
    [
        ({"cn_problem": "logreg", "radius": "0.3"}, "misses the plane"),
        ({"cd_problem": "lasso", "update": "Hb"}, "'Lb' on an l1 problem"),
    ],
)
def test_bad_input_is_a_message_not_a_traceback(open_page, params, needle):
    at = _ok(open_page(PAGE, **params))
    assert any(needle in e.value for e in at.error)


def test_the_default_link_is_served_from_the_shipped_runs(open_page, monkeypatch) -> None:
    """Its three runs (~5 CPU-s cold: cvxpy, torch.func's first call) come from assets/precomputed/, none live."""
    import functools

    import streamlit as st

    from core.structured import traces

    def live(fn):
        @functools.wraps(fn)  # the same name, so the shipped call is found by it
        def refused(*args, **kwargs):
            raise AssertionError(f"{fn.__name__} computed live")

        return refused

    st.cache_data.clear()
    for name in ("compare_rules", "newton_trace", "sliding_traces"):
        monkeypatch.setattr(traces, name, live(getattr(traces, name)))
    at = _ok(open_page(PAGE))
    assert not at.error, [e.value for e in at.error]
    assert metric(at, "GSL: updates to 1e-6") == "390" and len(at.get("plotly_chart")) == 6
