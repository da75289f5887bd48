"""Every page renders headless (AppTest), the sicarator way: one test per page."""

from __future__ import annotations

import pytest
import streamlit as st

from pages import _ui as ui
from pages._labs import LABS, by_topic

PAGES = ["pages/home.py"] + [f"pages/{lab.slug}.py" for lab in LABS]


@pytest.mark.parametrize("path", PAGES)
def test_page_renders_without_exception(open_page, path: str) -> None:
    at = open_page(path)
    assert not at.exception, [e.value for e in at.exception]
    assert at.title, "every page has a title"


def _cards(at) -> list[str]:
    return [m.value.removeprefix("#### ") for m in at.markdown if m.value.startswith("#### ")]


def test_gallery_has_a_card_per_lab_grouped_by_topic(open_page) -> None:
    at = open_page("pages/home.py")
    assert sorted(_cards(at)) == sorted(lab.title for lab in LABS)
    assert [s.value for s in at.subheader] == list(by_topic())


def test_gallery_filters_by_word_and_topic(open_page) -> None:
    at = open_page("pages/home.py", q="consensus")
    assert _cards(at) == ["Consensus-based optimization"]
    at = open_page("pages/home.py", topic="interpretability")
    assert sorted(_cards(at)) == sorted(lab.title for lab in LABS if lab.topic == "interpretability")
    assert "CF-CAM" in _cards(at)
    at = open_page("pages/home.py", q="nothing-matches-this")
    assert not _cards(at) and "No lab matches" in at.info[0].value


def test_sidebar_shows_device_and_seed(open_page) -> None:
    at = open_page("pages/home.py", seed="7")
    assert any("Compute:" in c.value and "cpu" in c.value for c in at.sidebar.caption)
    assert at.sidebar.number_input(key="seed").value == 7


def test_every_page_starts_the_browser_on_plotly_js_at_once(open_page) -> None:
    at = open_page("pages/cbo.py")
    (script,) = [h.proto.body for h in at.get("html") if "import(" in h.proto.body]
    chunk = script.split('"')[1]
    assert chunk.startswith("/static/js/PlotlyChart.") and chunk.endswith(".js")
    assert (ui._PLOTLY_CHUNK.parent / chunk.rsplit("/", 1)[1]).is_file()  # streamlit serves it: the page will ask


def test_share_box_renders_its_links_only_when_opened(open_page) -> None:
    at = open_page("pages/home.py", seed="7")
    assert not at.get("code")  # closed: no syntax highlighter for the browser to load on every first screen
    at.session_state["share-view"] = True
    at.run()
    assert [c.value for c in at.get("code")] == [
        "http://localhost:8501/?seed=7",
        "http://localhost:8501/?seed=7&teacher=1",
    ]


@pytest.mark.parametrize("slug", [lab.slug for lab in LABS])
def test_teacher_links_keep_the_seed(open_page, slug: str) -> None:
    """``?seed=3&teacher=1`` draws what ``?seed=3`` draws: the seed widget exists (hidden) in teacher mode."""

    def specs(**query: str) -> list[str]:
        at = open_page(f"pages/{slug}.py", seed="3", **query)
        assert not at.exception
        assert at.sidebar.number_input(key="seed").value == 3
        return [chart.proto.spec for chart in at.get("plotly_chart")]

    teacher = specs(teacher="1")
    assert teacher and teacher == specs()


# Not attention_svm: CLARABEL's SVM solutions differ in the last bits (~1e-12) from one solve to the next.
@pytest.mark.parametrize("slug", ["cbo", "guidance", "landscape", "cam"])
def test_same_url_gives_the_same_figures(open_page, slug: str) -> None:
    def specs() -> list[str]:
        st.cache_data.clear()  # recompute from scratch: equal figures must come from the seed, not a cache
        st.cache_resource.clear()
        at = open_page(f"pages/{slug}.py", seed="3")
        assert not at.exception
        return [chart.proto.spec for chart in at.get("plotly_chart")]

    first = specs()
    assert first and first == specs()


@pytest.mark.parametrize("path", PAGES[1:])
def test_every_preset_renders_without_exception(open_page, path: str) -> None:
    at = open_page(path)
    keys = [b.key for b in at.sidebar.button if b.key and b.key.startswith("preset-")]
    assert keys, "every lab offers presets"
    for key in keys:
        at.sidebar.button(key=key).click().run()
        assert not at.exception, (key, [e.value for e in at.exception])
