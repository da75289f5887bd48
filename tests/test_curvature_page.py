"""AppTest of the curvature page: the numbers each view displays."""

from __future__ import annotations

import json

import pytest

PAGE = "pages/curvature.py"


def _ok(at):
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.body for e in at.error]
    return at


def _metric(at, label: str) -> float:
    return float(next(m.value for m in at.metric if m.label == label))


def test_mfac_view_matches_the_exact_inverse_and_draws_both_pruning_curves(open_page) -> None:
    at = _ok(open_page(PAGE))
    assert _metric(at, "worst relative error") < 1e-8  # float64 M-FAC vs torch.linalg.solve on 650 parameters
    _, cost, pruning = (json.loads(chart.proto.spec) for chart in at.get("plotly_chart"))
    assert [trace["name"] for trace in cost["data"]] == ["mfac_s", "dense_s"]
    assert [trace["name"] for trace in pruning["data"]] == ["M-FAC (OBS)", "magnitude"]


def test_gns_logistic_converges_while_gradient_descent_lags(open_page) -> None:
    at = _ok(open_page(PAGE, view="gns", problem="logistic", steps="60"))
    assert _metric(at, "f*") == pytest.approx(0.2254124055, abs=1e-9)  # the note's f*
    assert _metric(at, "f − f* (exact)") < 1e-10
    assert _metric(at, "f − f* (gradient descent)") > 1e-4


def test_bohning_preset_shows_the_fixed_bound_behind_gradient_descent(open_page) -> None:
    at = _ok(open_page(PAGE))
    at = _ok(at.sidebar.button(key="preset-2").click().run())
    assert _metric(at, "f − f* (exact)") < 1e-10
    assert _metric(at, "f − f* (bohning_bound)") > 2 * _metric(at, "f − f* (gradient descent)")  # 1.8e-3 vs 5.9e-4


def test_live_gns_steps_through_the_iterations_of_the_core(open_page) -> None:
    import torch

    from core.curvature import gns, logistic_digits

    at = _ok(open_page(PAGE, view="gns", problem="logistic", hessian="fisher", steps="20"))
    for _ in range(3):
        at = _ok(at.button(key="gns-live-step").click().run())
    problem = logistic_digits()
    third = list(gns(problem, torch.zeros(problem.d, dtype=torch.float64), hessian="fisher", steps=3))[-1]
    assert _metric(at, "f − f* (live)") == pytest.approx(third.f - 0.2254124055, rel=1e-2)
