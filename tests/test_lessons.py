"""Lessons: the file format and its validation, the lesson player, and every step of every shipped lesson."""

from __future__ import annotations

import math

import pytest
from streamlit.testing.v1 import AppTest

from pages import _lesson_kit as lessons
from pages._labs import LABS_BY_SLUG

GOOD = b"""
title = "Test"
lab = "cbo"
[[steps]]
title = "one"
controls = { sigma = 2.0 }
narrative = "Step one."
question = "Why?"
answer = "Because."
[[steps]]
title = "two"
controls = { sigma = 3.0, lam = 2.0 }
narrative = "Step two."
[[steps]]
title = "three"
controls = { sigma = 99.0, bogus = 1 }
narrative = "Step three."
"""


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"title = 'x'\nlab = 'cbo'\nsteps = [", "not valid TOML"),
        (b"\xff\xfe", "not valid TOML"),
        (b"title = 'x'\nlab = 'nope'\n[[steps]]\nnarrative = 'n'", "unknown lab `nope`"),
        (b"title = 'x'\nlab = 'cbo'", "has no `steps`"),
        (b"title = 'x'\nlab = 'cbo'\n[[steps]]\ntitle = 't'", "step 1 has no `narrative`"),
        (b"title = 'x'\nlab = 'cbo'\n[[steps]]\nnarrative = 'n'\ncontrols = { d = [1, 2] }", "control `d`"),
        (
            b"title = 'x'\nlab = 'cbo'\n[[steps]]\nnarrative = 'n'\n[[steps]]\nnarative = 'typo'",
            "step 2: unknown field",
        ),
        (b"title = 'x'\nlab = 'cbo'\n[[steps]]\nnarrative = 'n'\nexpect = { metric = 'm' }", "`expect` needs"),
        (b"#" * (lessons.MAX_LESSON_BYTES + 1), "the limit is 64 KB"),
    ],
)
def test_bad_lesson_files_are_refused_with_a_message_naming_the_step_and_key(data: bytes, message: str) -> None:
    with pytest.raises(lessons.LessonError, match=message.replace("(", r"\(").replace("[", r"\[")):
        lessons.parse("bad", data)


def test_a_step_is_checked_against_the_widgets_the_lab_rendered() -> None:
    lesson = lessons.parse("t", GOOD)
    specs = {"sigma": {"low": 0.0, "high": 12.0}, "lam": {"low": 0.0, "high": 5.0}, "noise": {"options": ["a", "b"]}}
    assert lessons.check_controls(lesson.steps[1], 2, specs) == []
    problems = lessons.check_controls(lesson.steps[2], 3, specs)
    assert "Step 3: `sigma = 99.0` is outside 0.0…12.0." in problems
    assert any("no control `bogus`" in p for p in problems)


def test_the_current_view_downloads_as_a_step_that_parses_back() -> None:
    text = lessons.step_toml("cbo", {"sigma": 5.1, "noise": 'iso"tropic', "live": True, "d": 20})
    step_only = text.replace('narrative = """\n"""', 'narrative = "filled in"')
    lesson = lessons.parse("mine", f'title = "Mine"\nlab = "cbo"\n{step_only}'.encode())
    assert lesson.steps[0].controls == {"sigma": 5.1, "noise": 'iso"tropic', "live": True, "d": 20}


def lesson_script() -> None:
    from pages import _lesson_kit as lessons
    from pages import _ui as ui

    lessons.begin("cbo")
    ui.header("cbo")
    ui.slider("σ", 0.0, 12.0, 1.0, "sigma")
    ui.slider("λ", 0.0, 5.0, 1.0, "lam")
    lessons.finish()


def test_the_lesson_player_moves_between_steps_and_reports_bad_controls() -> None:
    at = AppTest.from_function(lesson_script, default_timeout=30)
    at.session_state[lessons.UPLOADED] = {"t": lessons.parse("t", GOOD)}
    at.query_params["lesson"], at.query_params["step"] = "t", "1"
    at.run()
    assert not at.exception
    assert at.sidebar.slider(key="sigma").value == 2.0 and at.sidebar.slider(key="lam").value == 1.0
    assert any("step 1 of 3" in m.value for m in at.markdown)
    at.button(key="lesson-next").click().run()
    assert at.sidebar.slider(key="sigma").value == 3.0 and at.sidebar.slider(key="lam").value == 2.0
    assert at.query_params["step"] == "2"
    at.button(key="lesson-prev").click().run()
    assert at.sidebar.slider(key="lam").value == 1.0  # a control the step does not set returns to its default
    at.query_params["step"] = "3"
    at.run()
    assert not at.exception
    assert at.sidebar.slider(key="sigma").value == 1.0  # out of range: the default, with a notice
    assert "outside 0.0…12.0" in at.error[0].value and "no control `bogus`" in at.error[0].value


SHIPPED = [(lesson.name, k) for lesson in lessons.shipped().values() for k in range(1, len(lesson.steps) + 1)]


def test_every_lab_has_a_lesson_of_four_to_eight_steps() -> None:
    by_lab = {lesson.lab: lesson for lesson in lessons.shipped().values()}
    missing = {"cbo", "guidance", "cam", "attention_svm", "landscape"} - set(by_lab)
    assert not missing, f"labs without a lesson: {missing}"
    assert all(4 <= len(lesson.steps) <= 8 for lesson in lessons.shipped().values())


@pytest.mark.parametrize(("name", "k"), SHIPPED)
def test_every_step_of_every_shipped_lesson_renders_and_shows_its_number(open_page, name: str, k: int) -> None:
    lesson = lessons.shipped()[name]
    at = open_page(f"pages/{LABS_BY_SLUG[lesson.lab].slug}.py", lesson=name, step=str(k))
    assert not at.exception, [e.value for e in at.exception]
    assert not [e.value for e in at.error if e.value.startswith(("Lesson", "Could not compute"))]
    expect = lesson.steps[k - 1].expect
    if expect:
        shown = _displayed_numbers(at)
        assert expect["metric"] in shown, (expect["metric"], list(shown))
        value = shown[expect["metric"]]
        assert math.isclose(value, expect["value"], abs_tol=expect.get("tol", 1e-9)), (name, k, value, expect)


def _displayed_numbers(at) -> dict[str, float]:
    """Every number on the page by its label: metrics, and the explainers' (quantity, value) tables."""
    pairs = [(m.label, m.value) for m in at.metric]
    for frame in at.dataframe:
        table = frame.value
        if {"quantity", "value"} <= set(table.columns):
            pairs += list(zip(table["quantity"], table["value"], strict=True))
    return {str(label): number for label, text in pairs if (number := _number(str(text))) is not None}


def _number(text: str) -> float | None:
    """``"0.2987"``, ``"98%"``, ``"3/4"`` or ``"1.5×"`` as a number (a percentage as a fraction)."""
    head = text.split()[0] if text.split() else ""
    try:
        if "/" in head:
            top, bottom = head.split("/")
            return float(top) / float(bottom)
        if head.endswith("%"):
            return float(head[:-1]) / 100
        return float(head.rstrip("×"))
    except ValueError:
        return None
