"""Optiscope: watch optimization and interpretability methods work, live.

The router: the gallery plus one page per lab, and the sidebar every page shares (compute device,
seed, a link to share the current view). Kept in ``run()`` so tests can import it.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import threading
from urllib.parse import urlencode

import streamlit as st

from core.device import device_label, set_threads
from pages import _lesson_kit as _lessons
from pages import _ui as ui
from pages._labs import LABS, ROOT, by_topic
from pages._ui import SEED_KEY, TEACHER_PARAM, teacher_mode


@st.cache_resource
def _device_label() -> str:
    set_threads()  # once per server process
    if os.environ.get("OPTISCOPE_PREIMPORT", "1") != "0":
        threading.Thread(target=_import_labs, name="optiscope-import-labs", daemon=True).start()
    return device_label(ui.device())


def _import_labs() -> None:
    """Import every lab's core once per server, off the visitors' clocks: only while no script runs."""
    for lab in LABS:
        ui.RUNS.wait_quiet(seconds=1.0)  # an import holds the GIL: it would slow a visitor's first screen
        if importlib.util.find_spec(f"core.{lab.slug}") is not None:
            importlib.import_module(f"core.{lab.slug}")


def _sidebar() -> None:
    st.sidebar.caption(f"Compute: **{_device_label()}** (every lab's models, swarms and samplers run here)")
    ui.number("Seed", 0, 2**31 - 1, 0, SEED_KEY, help="Every random choice on the page follows this seed.")
    # stateful, so the links (st.code, whose highlighter costs the browser ~0.5 CPU-s) render only once opened
    share = st.sidebar.expander("Share this view", icon=":material/link:", key="share-view", on_change="rerun")
    if not share.open:
        return
    with share:
        params = {k: v for k, v in st.query_params.to_dict().items() if k != TEACHER_PARAM}
        base = (st.context.url or "http://localhost:8501/").split("?")[0]
        link = f"{base}?{urlencode(params)}" if params else base
        st.caption("This link reproduces every control on the page:")
        st.code(link, language=None, wrap_lines=True)
        st.caption("Teacher mode (controls hidden):")
        st.code(f"{base}?{urlencode({**params, TEACHER_PARAM: 1})}", language=None, wrap_lines=True)


def run() -> None:
    st.set_page_config(page_title="Optiscope", page_icon=":material/biotech:", layout="wide")
    home = st.Page(ROOT / "pages" / "home.py", title="Gallery", icon=":material/grid_view:", default=True)
    lessons = st.Page(ROOT / "pages" / "lessons.py", title="Lessons", icon=":material/school:", url_path="lessons")
    groups = {
        heading: [st.Page(lab.page, title=lab.title, icon=lab.icon, url_path=lab.slug) for lab in labs]
        for heading, labs in by_topic().items()
    }
    page = st.navigation({"Optiscope": [home, lessons], **groups}, position="hidden" if teacher_mode() else "sidebar")
    with ui.routed(), ui.RUNS.running():
        ui.preload_charts()
        _lessons.begin(page.url_path)
        if teacher_mode() and _lessons.active() is None:
            st.html(ui.HIDE_SIDEBAR)  # every page, the gallery too (a lesson shows its own controls instead)
        _sidebar()  # in teacher mode too (hidden by CSS): the seed widget reads ?seed= only when it exists
        page.run()
        _lessons.finish()  # checks a lesson step's controls against the widgets the page rendered


if __name__ == "__main__":
    run()
