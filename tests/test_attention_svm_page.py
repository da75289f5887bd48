"""AppTest of the Transformers-as-SVM page with non-default URL parameters."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parent.parent


def _page(params: dict[str, str]) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=90)
    for key, value in params.items():
        at.query_params[key] = value
    at.switch_page(str(ROOT / "pages" / "attention_svm.py"))
    return at.run()


def _figures(at: AppTest) -> list[dict]:
    return [json.loads(chart.proto.spec) for chart in at.get("plotly_chart")]


def test_default_d2_view_renders_plane_strip_and_badge():
    at = _page({"steps": "500"})
    assert not at.exception, at.exception
    figures = _figures(at)
    assert len(figures) >= 5  # plane, heat strip, curves, two singular-value charts, conventions
    plane = figures[0]
    assert plane["frames"] and plane["layout"]["xaxis"]["range"] == [-1.6, 1.6]
    assert any("star" == (t.get("marker") or {}).get("symbol") for t in plane["data"])
    assert any("global optimum" in m.value or "local optimum" in m.value for m in at.markdown)
    assert not at.error


def test_paper_size_kq_without_normalization():
    at = _page({"param": "KQ", "ngd": "false", "n": "6", "T": "8", "d": "10", "steps": "200", "lr": "0.3"})
    assert not at.exception, at.exception
    assert any("needs d = 2" in c.value for c in at.caption)
    assert not at.error


def test_infeasible_global_optimum_is_said():
    at = _page({"n": "3", "T": "4", "d": "2", "seed": "9", "steps": "500"})
    assert not at.exception, at.exception
    assert any("cannot be separated" in i.value for i in at.info)


@pytest.mark.parametrize("d", ["1"])
def test_degenerate_dimension_does_not_crash(d):
    at = _page({"d": d, "steps": "200"})
    assert not at.exception, at.exception
