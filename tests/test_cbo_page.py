"""AppTest of the CBO page: the default view, the presets' URL parameters, high d, live mode and bad input."""

from __future__ import annotations

import pytest

PAGE = "pages/cbo.py"


def _ok(at):
    assert not at.exception, at.exception
    return at


def test_default_view_draws_the_swarm_decay_and_weights(open_page):
    at = _ok(open_page(PAGE))
    assert not at.error
    assert len(at.get("plotly_chart")) >= 3
    assert any("Effective sample size" in m.label for m in at.metric)


def test_grand_canyon_preset_url(open_page):
    at = _ok(open_page(PAGE, objective="GrandCanyon3noisy", n="200", sigma="1.6", alpha="100.0", noise="isotropic", steps="250"))
    assert not at.error


def test_isotropic_divergence_is_explained(open_page):
    at = _ok(open_page(PAGE, objective="Rastrigin", d="20", n="40", sigma="10.1", noise="isotropic", steps="200"))
    assert any("diverged" in e.value and "2λ < dσ²" in e.value for e in at.error)


def test_high_dimension_shows_projection_and_error_curve(open_page):
    at = _ok(open_page(PAGE, objective="Ackley", d="200", n="100", steps="50"))
    assert not at.error
    assert any("projection" in h.value for h in at.subheader)


def test_live_mode_steps(open_page):
    at = _ok(open_page(PAGE, mode="Live", steps="20"))
    step = next(b for b in at.button if b.label == "Step")
    _ok(step.click().run())
    assert not at.error


@pytest.mark.parametrize(("params", "needle"), [({"objective": "Rosenbrock", "d": "1"}, "d >= 2"),
                                               ({"objective": "GrandCanyon3noisy", "d": "3"}, "d=2")])  # fmt: skip
def test_bad_input_is_a_message_not_a_traceback(open_page, params, needle):
    at = _ok(open_page(PAGE, **params))
    assert any(needle in e.value for e in at.error)
