"""Lessons: a teacher's guided paths through the labs, and a lesson file of your own to play."""

import streamlit as st

from pages import _lesson_kit as _lessons
from pages import _ui as ui
from pages._labs import LABS_BY_SLUG

ui.require_router()
st.title("Lessons")
st.markdown(
    "A lesson walks a class through a lab step by step: each step sets the lab's controls, tells what to look at "
    "and asks a question. Every step has its own link (`?lesson=…&step=k`); add `teacher=1` to show only the "
    "lesson's controls. A lesson is a short TOML file: download any view as a step from the lab's sidebar "
    "(*This view as a lesson step*), write the narrative, and upload the file here."
)


def card(lesson: _lessons.Lesson) -> None:
    lab = LABS_BY_SLUG[lesson.lab]
    with st.container(border=True):
        st.markdown(f"#### {lesson.title}")
        st.caption(f"{lab.title} · {len(lesson.steps)} steps" + (f" · {lesson.audience}" if lesson.audience else ""))
        st.markdown(" → ".join(step.title for step in lesson.steps))
        st.page_link(
            lab.page,
            label="Start the lesson",
            icon=":material/play_arrow:",
            query_params={_lessons.LESSON_PARAM: lesson.name, _lessons.STEP_PARAM: "1"},
        )


with st.expander("Play a lesson file of your own", icon=":material/upload:"):
    upload = st.file_uploader(f"Lesson (.toml, ≤ {_lessons.MAX_LESSON_BYTES // 1024} KB)", type=["toml"], key="upload")
    if upload is not None:
        try:
            lesson = _lessons.parse(
                upload.name.removesuffix(".toml"), upload.getvalue()[: _lessons.MAX_LESSON_BYTES + 1]
            )
        except _lessons.LessonError as err:
            st.error(str(err), icon=":material/error:")
        else:
            st.session_state.setdefault(_lessons.UPLOADED, {})[lesson.name] = lesson
            st.success(f"Loaded `{lesson.name}` for this session ({len(lesson.steps)} steps).")

for slug, lab in LABS_BY_SLUG.items():
    lessons = [lesson for lesson in _lessons.available().values() if lesson.lab == slug]
    if lessons:
        st.subheader(lab.title)
        for lesson in lessons:
            card(lesson)
