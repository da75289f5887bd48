"""Every page, given garbage in every URL parameter it binds, renders without an exception box.

A hand-edited or truncated link must never show a traceback or the kit's bug message ("Could not
compute ..."): the page uses its defaults (with a notice) or shows an ``OptiscopeError`` message.
The keys are discovered from the page's own widgets, so new controls and new labs are covered.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pages._labs import LABS
from pages._lesson_kit import LESSON_PARAM, STEP_PARAM

ROOT = Path(__file__).resolve().parent.parent
# every routed page: the gallery, the labs, and any other page beside them (lessons)
PAGES = sorted(f"pages/{p.name}" for p in (ROOT / "pages").glob("*.py") if not p.name.startswith("_"))
WIDGETS = (
    "slider",
    "number_input",
    "selectbox",
    "radio",
    "toggle",
    "checkbox",
    "text_input",
    "select_slider",
    "multiselect",
    "text_area",
)
# negative, NaN, infinite, empty, an unknown option, and a very long string that is also a huge number
GARBAGE = ("-5", "nan", "inf", "", "Nope", "9" * 3000)
UNKNOWN_PARAMS = {"no_such_option": "1", "teacher": "maybe"}
READ_DIRECTLY = (LESSON_PARAM, STEP_PARAM)  # URL parameters the kit reads without a widget, on every page
BUG_PREFIX = "Could not compute"  # pages/_ui.py errors(): an exception that is not an OptiscopeError


def bound_keys(at) -> list[str]:
    """The keys of every widget the page rendered: with the kit, each is also its URL parameter."""
    return sorted({w.key for kind in WIDGETS for w in at.get(kind) if w.key and not w.key.startswith("preset-")})


def garbage_queries(keys: list[str]) -> list[dict[str, str]]:
    """len(GARBAGE) queries that give every key every garbage value once (a Latin square), plus unknown names."""
    return [
        {**UNKNOWN_PARAMS, **{key: GARBAGE[(i + j) % len(GARBAGE)] for j, key in enumerate(keys)}}
        for i in range(len(GARBAGE))
    ]


def problems(at) -> list[str]:
    found = [f"exception: {e.value}" for e in at.exception]
    return found + [f"bug message: {e.value}" for e in at.error if str(e.value).startswith(BUG_PREFIX)]


@pytest.mark.parametrize("path", PAGES)
def test_garbage_query_parameters_render_without_an_exception_box(open_page, path: str) -> None:
    at = open_page(path)
    assert not problems(at), problems(at)
    keys = bound_keys(at)
    assert keys or path in ("pages/home.py", "pages/lessons.py"), f"{path} binds no widget to the URL"
    keys = sorted({*keys, *READ_DIRECTLY})
    failures = []
    for query in garbage_queries(keys):
        found = problems(open_page(path, **query))
        if found:
            failures.append(({key: value[:20] for key, value in query.items()}, found))
    assert not failures, f"{path}: {len(failures)} of {len(GARBAGE)} garbage links failed: {failures}"


def test_every_lab_page_is_covered() -> None:
    assert {"pages/home.py", *(f"pages/{lab.slug}.py" for lab in LABS)} <= set(PAGES)


def test_each_key_gets_each_garbage_value() -> None:
    queries = garbage_queries(["a", "b", "c"])
    for key in "abc":
        assert sorted(q[key] for q in queries) == sorted(GARBAGE)
