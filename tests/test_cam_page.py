"""AppTest of the CAM page with non-default URL parameters."""

from __future__ import annotations

import time

from streamlit.testing.v1 import AppTest

from tests.conftest import ROOT


def test_cam_page_default_view_renders(open_page):
    at = open_page("pages/cam.py")
    assert not at.exception and not at.error
    assert len(at.get("plotly_chart")) >= 4  # maps, cluster scatter, weights, cluster gradients


def test_cam_page_non_default_settings(open_page):
    at = open_page("pages/cam.py", image="5", target="star", layer="block3", filter="bilateral", sigma="1.5",
                   dominant="0.0", eps="40", combine="linear")
    assert not at.exception and not at.error
    assert any("star" in m.value for m in at.markdown)


def test_cam_page_other_explanations_panel(open_page):
    at = open_page("pages/cam.py", image="3")
    at.toggle(key="other").set_value(True).run()
    assert not at.exception and not at.error
    assert len(at.get("plotly_chart")) >= 5


def test_cam_page_upload_mode_waits_for_a_file(open_page):
    at = open_page("pages/cam.py", source="Upload")
    assert not at.exception and not at.error
    assert at.info


def test_cam_page_metrics_job_finishes():
    # The page file on its own: through the router + switch_page, AppTest did not deliver this button's click.
    at = AppTest.from_file(str(ROOT / "pages" / "cam.py"), default_timeout=120)
    at.query_params["n_metrics"] = "8"
    at.run()
    assert not at.exception
    at.button(key="cam-metrics-start").click().run()
    deadline = time.monotonic() + 90

    def table():
        return [d.value for d in at.dataframe if "method" in d.value.columns]

    while not table() and time.monotonic() < deadline:
        time.sleep(1.0)
        at.run()
    assert not at.exception and not at.error
    methods = list(table()[0]["method"])
    assert {"Grad-CAM", "Grad-CAM++", "Score-CAM", "CF-CAM", "random"} <= set(methods)
