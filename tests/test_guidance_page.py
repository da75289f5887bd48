"""AppTest of the guidance page with non-default URL parameters."""

from __future__ import annotations

from pathlib import Path

from streamlit.testing.v1 import AppTest

APP = str(Path(__file__).resolve().parent.parent / "app.py")


def _page(**params) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120)
    for key, value in params.items():
        at.query_params[key] = value
    at.switch_page("pages/guidance.py")
    return at.run()


def test_page_defaults_render_both_guiders_without_errors():
    at = _page(steps="16")
    assert not at.exception and not at.error
    assert len(at.get("plotly_chart")) >= 4  # two scatters, norms, cos
    assert len(at.dataframe) >= 2  # one metrics table per guider


def test_page_digits_with_adaptive_guidance():
    at = _page(model="Digits, smoothed empirical (exact)", right="Adaptive guidance (AG)", steps="8", w="5.0", warmup="2")
    assert not at.exception and not at.error


def test_page_bad_pipeline_folder_shows_a_short_error():
    at = _page(model="Local diffusers pipeline", steps="4")
    assert not at.exception
    assert at.error and "pipeline" in at.error[0].value
