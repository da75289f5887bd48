"""Every page renders headless (AppTest), the sicarator way: one test per page."""

from __future__ import annotations

import pytest
import streamlit as st

from pages._labs import LABS

PAGES = ["pages/home.py"] + [f"pages/{lab.slug}.py" for lab in LABS]


@pytest.mark.parametrize("path", PAGES)
def test_page_renders_without_exception(open_page, path: str) -> None:
    at = open_page(path)
    assert not at.exception, [e.value for e in at.exception]
    assert at.title, "every page has a title"


def test_gallery_has_a_card_per_lab(open_page) -> None:
    at = open_page("pages/home.py")
    titles = [s.value for s in at.subheader]
    assert titles == [lab.title for lab in LABS]


def test_sidebar_shows_device_and_seed(open_page) -> None:
    at = open_page("pages/home.py", seed="7")
    assert any("Compute:" in c.value and "cpu" in c.value for c in at.sidebar.caption)
    assert at.sidebar.number_input(key="seed").value == 7


def test_teacher_mode_hides_the_sidebar(open_page) -> None:
    at = open_page("pages/home.py", teacher="1")
    assert not at.exception
    assert len(at.sidebar.number_input) == 0


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
