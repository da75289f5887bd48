"""The gallery: one card per lab, grouped by topic, with a filter by topic or word."""

import streamlit as st

from pages import _lesson_kit as _lessons
from pages import _ui as ui
from pages._labs import LABS, TOPICS, by_topic

ui.require_router()
st.title("Optiscope")
st.markdown(
    "Pick a method from recent optimization and interpretability research and **watch it work, live**: "
    "real algorithms on small models that run on this machine, every view reproducible from its link."
)
search, topic = st.columns([2, 1])
word = ui.text("Filter", "", "q", where=search, placeholder="a word: Hessian, diffusion, swarm…")
chosen = ui.select("Topic", {"all": "All topics", **TOPICS}, "all", "topic", where=topic)
words = word.lower().split()
shown = tuple(
    lab
    for lab in LABS
    if (chosen == "all" or lab.topic == chosen)
    and all(w in f"{lab.title} {lab.pitch} {lab.paper} {lab.arxiv} {TOPICS[lab.topic]}".lower() for w in words)
)
if not shown:
    st.info("No lab matches this filter.")
for heading, labs in by_topic(shown).items():
    st.subheader(heading)
    for row in range(0, len(labs), 3):
        for column, lab in zip(st.columns(3), labs[row : row + 3], strict=False):
            with column.container(border=True):
                if lab.thumbnail.exists():
                    st.image(str(lab.thumbnail), width="stretch")
                st.markdown(f"#### {lab.title}")
                st.write(lab.pitch)
                st.caption(f"*{lab.paper}* — [arXiv:{lab.arxiv}]({lab.paper_url})")
                st.page_link(lab.page, label=f"Open {lab.title}", icon=":material/arrow_forward:")
                for lesson in _lessons.for_lab(lab.slug):
                    st.page_link(
                        lab.page,
                        label=f"Start lesson: {lesson.title}",
                        icon=":material/school:",
                        query_params={_lessons.LESSON_PARAM: lesson.name, _lessons.STEP_PARAM: "1"},
                    )
