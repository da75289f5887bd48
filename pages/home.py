"""The gallery: one card per lab."""

import streamlit as st

from pages._labs import LABS

st.title("Optiscope")
st.markdown(
    "Pick a method from recent optimization and interpretability research and **watch it work, live**: "
    "real algorithms on small models that run on this machine, every view reproducible from its link."
)
for row in range(0, len(LABS), 3):
    for column, lab in zip(st.columns(3), LABS[row : row + 3], strict=False):
        with column.container(border=True):
            if lab.thumbnail.exists():
                st.image(str(lab.thumbnail), width="stretch")
            st.subheader(lab.title)
            st.write(lab.pitch)
            st.caption(f"*{lab.paper}* — [arXiv:{lab.arxiv}]({lab.paper_url})")
            st.page_link(lab.page, label=f"Open {lab.title}", icon=":material/arrow_forward:")
