"""Lessons: a teacher's guided path through a lab, one TOML file per lesson under ``assets/lessons/``.

A lesson is data, not code::

    title = "The σ threshold"
    lab = "cbo"                       # a lab's slug (pages/_labs.py)
    audience = "Optimization course, week 5"

    [[steps]]
    title = "A swarm that fails"
    controls = { sigma = 5.1, d = 20 }  # the lab's controls by URL key; the others keep their defaults
    narrative = "Markdown, with $\\\\sigma$ formulas."
    question = "Why does the swarm stall?"          # optional
    answer = "Because ..."                          # optional, revealed on click
    look_at = "cbo-phase"                           # optional: the key of a chart to look at
    expect = { metric = "Success rate", value = 0.0, tol = 0.05 }  # optional: what the narrative points at

Files are parsed with ``tomllib`` (no code runs, no object tags) and validated on load with messages that name
the step and the bad key; control values are checked against the lab's widgets when the step renders.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from typing import Any

import streamlit as st

from pages._labs import LABS_BY_SLUG, ROOT

LESSONS_DIR = ROOT / "assets" / "lessons"
MAX_LESSON_BYTES = 64 * 1024
MAX_STEPS = 20
_SCALARS = (bool, int, float, str)


class LessonError(ValueError):
    """A lesson file that cannot be played: the message names the step and the bad key or value."""


@dataclass(frozen=True)
class Step:
    title: str
    controls: dict[str, Any]
    narrative: str
    question: str = ""
    answer: str = ""
    look_at: str = ""
    expect: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Lesson:
    name: str  # file stem, the `?lesson=` value
    title: str
    lab: str
    audience: str
    steps: tuple[Step, ...]


def parse(name: str, data: bytes) -> Lesson:
    """A validated lesson from a TOML file's bytes (untrusted: size-capped, decoded and parsed safely)."""
    if len(data) > MAX_LESSON_BYTES:
        raise LessonError(f"Lesson `{name}` is {len(data) / 1024:.0f} KB; the limit is {MAX_LESSON_BYTES // 1024} KB.")
    try:
        raw = tomllib.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as err:
        raise LessonError(f"Lesson `{name}` is not valid TOML: {err}") from None
    for key in ("title", "lab", "steps"):
        if key not in raw:
            raise LessonError(f"Lesson `{name}` has no `{key}`.")
    if raw["lab"] not in LABS_BY_SLUG:
        raise LessonError(f"Lesson `{name}`: unknown lab `{raw['lab']}` (one of {', '.join(LABS_BY_SLUG)}).")
    steps = raw["steps"]
    if not isinstance(steps, list) or not 1 <= len(steps) <= MAX_STEPS:
        raise LessonError(f"Lesson `{name}` needs 1 to {MAX_STEPS} `[[steps]]`.")
    return Lesson(
        name,
        str(raw["title"]),
        raw["lab"],
        str(raw.get("audience", "")),
        tuple(_step(name, k, s) for k, s in enumerate(steps, start=1)),
    )


def _step(name: str, k: int, raw: Any) -> Step:
    where = f"Lesson `{name}`, step {k}"
    if not isinstance(raw, dict):
        raise LessonError(f"{where} is not a table.")
    unknown = set(raw) - {"title", "controls", "narrative", "question", "answer", "look_at", "expect"}
    if unknown:
        raise LessonError(f"{where}: unknown field `{sorted(unknown)[0]}`.")
    controls = raw.get("controls", {})
    if not isinstance(controls, dict):
        raise LessonError(f"{where}: `controls` must be a table of control keys and values.")
    for key, value in controls.items():
        if not isinstance(value, _SCALARS):
            raise LessonError(f"{where}: control `{key}` must be a number, a string or a boolean, not {value!r}.")
    expect = raw.get("expect", {})
    if expect and not ({"metric", "value"} <= set(expect) and isinstance(expect["value"], int | float)):
        raise LessonError(f"{where}: `expect` needs `metric` (a label) and a numeric `value`.")
    if not raw.get("narrative"):
        raise LessonError(f"{where} has no `narrative`.")
    return Step(
        str(raw.get("title", f"Step {k}")),
        dict(controls),
        str(raw["narrative"]),
        str(raw.get("question", "")),
        str(raw.get("answer", "")),
        str(raw.get("look_at", "")),
        dict(expect),
    )


def shipped() -> dict[str, Lesson]:
    """Every lesson under ``assets/lessons/``, by name."""
    return {path.stem: parse(path.stem, path.read_bytes()) for path in sorted(LESSONS_DIR.glob("*.toml"))}


def for_lab(slug: str) -> list[Lesson]:
    return [lesson for lesson in shipped().values() if lesson.lab == slug]


def check_controls(step: Step, k: int, specs: dict[str, dict[str, Any]]) -> list[str]:
    """Problems with a step's control values against the widgets the lab rendered (``{key: spec}``)."""
    problems = []
    for key, value in step.controls.items():
        spec = specs.get(key)
        if spec is None:
            problems.append(f"Step {k}: this lab has no control `{key}` (its controls: {', '.join(sorted(specs))}).")
        elif "options" in spec and value not in spec["options"] and str(value) not in map(str, spec["options"]):
            problems.append(f"Step {k}: `{key} = {value!r}` is not one of {', '.join(map(str, spec['options']))}.")
        elif "low" in spec and not _within(value, spec["low"], spec["high"]):
            problems.append(f"Step {k}: `{key} = {value!r}` is outside {spec['low']}…{spec['high']}.")
    return problems


def _within(value: Any, low: Any, high: Any) -> bool:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return (low is None or value >= low) and (high is None or value <= high)


def step_toml(slug: str, controls: dict[str, Any]) -> str:
    """The current view as a lesson step to paste into a lesson file (values by URL key, an empty narrative)."""
    lines = [f'# a step of a lesson for lab = "{slug}"', "[[steps]]", 'title = ""']
    values = ", ".join(f"{key} = {_toml_value(value)}" for key, value in sorted(controls.items()))
    lines += [f"controls = {{ {values} }}", 'narrative = """\n"""', 'question = ""', 'answer = ""']
    return "\n".join(lines) + "\n"


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


# --- In the app ------------------------------------------------------------------------------------
# The lesson panel sits above a lab (``ui.header`` calls ``panel``); the kit's widgets record their specs
# while the page renders; ``app.py`` calls ``finish`` after the page to check the step's controls against them.

LESSON_PARAM, STEP_PARAM = "lesson", "step"
_APPLIED, _SPECS, UPLOADED, _PROBLEMS = "_lesson_applied", "_lesson_specs", "_lessons_uploaded", "_lesson_problems"
_RENDERED, LAB = "_lesson_rendered", "_lab"


def begin(slug: str) -> None:
    """At the start of every run, before any widget: apply a newly linked step of a lesson on lab ``slug``.

    Forgets the last run's lab and widgets, keeping them for moving between steps.
    """
    st.session_state[_RENDERED] = st.session_state.get(_SPECS, {})
    st.session_state[_SPECS] = {}
    st.session_state.pop(LAB, None)
    st.session_state.pop(_PROBLEMS, None)
    found = active(notify=True)
    if found is not None and found[0].lab == slug and st.session_state.get(_APPLIED) != (found[0].name, found[1]):
        _go(*found)


def available() -> dict[str, Lesson]:
    """The shipped lessons plus those uploaded in this session."""
    return {**shipped(), **st.session_state.get(UPLOADED, {})}


def record(key: str, **spec: Any) -> None:
    """A kit widget says what it accepts (``low``/``high`` or ``options``) and its current value."""
    st.session_state.setdefault(_SPECS, {})[key] = spec


def active(*, notify: bool = False) -> tuple[Lesson, int] | None:
    name = st.query_params.get(LESSON_PARAM)
    if name is None:
        return None
    lesson = available().get(name)
    if lesson is None:
        if notify:
            st.toast(f"The link's lesson `{name}` does not exist here.", icon=":material/link_off:")
        return None
    try:
        k = int(st.query_params.get(STEP_PARAM, "1"))
    except ValueError:
        k = 1
    return lesson, min(max(k, 1), len(lesson.steps))


def _go(lesson: Lesson, k: int) -> None:
    """Move to step ``k``: its controls replace the current ones (the others return to their defaults)."""
    rendered = {**st.session_state.get(_RENDERED, {}), **st.session_state.get(_SPECS, {})}
    for key in set(rendered) - {"seed"}:
        st.session_state.pop(key, None)
        if key in st.query_params:
            del st.query_params[key]
    st.session_state.update(lesson.steps[k - 1].controls)
    st.query_params[LESSON_PARAM], st.query_params[STEP_PARAM] = lesson.name, str(k)
    st.session_state[_APPLIED] = (lesson.name, k)


def panel(slug: str) -> list[str]:
    """The lesson player above the lab (step k of n, previous/next, narrative, question); returns the step's keys."""
    st.session_state[LAB] = slug
    found = active()
    if found is None or found[0].lab != slug:
        return []
    lesson, k = found
    step = lesson.steps[k - 1]
    with st.container(border=True):
        head, back, forward = st.columns([6, 1, 1], vertical_alignment="center")
        head.markdown(f"**{lesson.title}** · step {k} of {len(lesson.steps)}: *{step.title}*")
        back.button("Previous", key="lesson-prev", disabled=k == 1, on_click=_go, args=(lesson, k - 1), width="stretch")
        forward.button(
            "Next",
            key="lesson-next",
            disabled=k == len(lesson.steps),
            on_click=_go,
            args=(lesson, k + 1),
            width="stretch",
        )
        st.markdown(step.narrative)
        if step.question:
            st.markdown(f"**Question.** {step.question}")
            if step.answer:
                with st.expander("Answer"):
                    st.markdown(step.answer)
        if step.look_at:
            st.caption(f"Look at the chart *{step.look_at}* below.")
        st.session_state[_PROBLEMS] = st.empty()
    return list(step.controls)


def finish() -> None:
    """After the page: check the step's controls against the widgets it rendered; offer the view as a lesson step."""
    slug, specs = st.session_state.get(LAB), st.session_state.get(_SPECS, {})
    found = active()
    if found is not None and found[0].lab == slug and _PROBLEMS in st.session_state:
        lesson, k = found
        problems = check_controls(lesson.steps[k - 1], k, specs)
        if problems:
            st.session_state[_PROBLEMS].error(f"Lesson `{lesson.name}`: " + " ".join(problems))
    if slug and specs:
        values = {key: st.session_state.get(key, spec["value"]) for key, spec in specs.items()}
        values = {key: value for key, value in values.items() if isinstance(value, _SCALARS)}
        st.sidebar.download_button(
            "This view as a lesson step (TOML)",
            step_toml(slug, values),
            f"{slug}-step.toml",
            "application/toml",
            key="lesson-step-download",
            icon=":material/school:",
            on_click="ignore",
        )
