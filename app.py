"""Optiscope: watch optimization and interpretability methods work, live.

The router: the gallery plus one page per lab, and the sidebar every page shares (compute device,
seed, a link to share the current view). Kept in ``run()`` so tests can import it.
"""

from __future__ import annotations

from urllib.parse import urlencode

import streamlit as st

from core.device import device_label, pick_device, set_threads
from pages._labs import LABS, ROOT
from pages._ui import SEED_KEY, TEACHER_PARAM, teacher_mode


@st.cache_resource
def _device_label() -> str:
    set_threads()  # once per server process
    return device_label(pick_device())


def _sidebar() -> None:
    st.sidebar.caption(f"Compute: **{_device_label()}**")
    st.sidebar.number_input("Seed", 0, 2**31 - 1, 0, key=SEED_KEY, bind="query-params",
                            help="Every random choice on the page follows this seed.")
    with st.sidebar.expander("Share this view", icon=":material/link:"):
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
    labs = [st.Page(lab.page, title=lab.title, icon=lab.icon, url_path=lab.slug) for lab in LABS]
    page = st.navigation({"Optiscope": [home], "Labs": labs}, position="hidden" if teacher_mode() else "sidebar")
    if not teacher_mode():
        _sidebar()
    page.run()


if __name__ == "__main__":
    run()
