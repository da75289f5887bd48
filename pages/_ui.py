"""Optiscope's shared UI kit: every lab page builds its controls, charts and runs from these pieces.

Nothing here computes anything a notebook would need: the math lives in ``core``. What lives here:
URL-bound sidebar widgets (a copied link reproduces the view), teacher mode, charts with downloads,
explainers, the error boundary, client-side replay, and (in ``pages/_jobs.py``) the live player and
background jobs.
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import logging
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import plotly.colors
import plotly.graph_objects as go
import streamlit as st
import torch
from PIL import Image
from plotly.subplots import make_subplots
from streamlit.runtime.pages_manager import PagesManager
from streamlit.runtime.scriptrunner import get_script_run_ctx

from core import store, zoo
from core.device import pick_device
from core.errors import OptiscopeError
from pages import _lesson_kit as _lessons
from pages._jobs import RUNS, Player, background, job_wanted
from pages._labs import LABS_BY_SLUG, Lab

__all__ = [
    "RUNS",
    "preload_charts",
    "Player",
    "animate",
    "background",
    "job_wanted",
    "chart",
    "after_first_paint",
    "errors",
    "explainer",
    "header",
    "heatmap_png",
    "image_grid",
    "metrics",
    "number",
    "presets",
    "radio",
    "device",
    "zoo_model",
    "seed",
    "select",
    "slider",
    "stored",
    "teacher_mode",
    "text",
    "toggle",
    "upload",
]

log = logging.getLogger("optiscope")
TEACHER_PARAM = "teacher"
SEED_KEY = "seed"
HIDE_SIDEBAR = """<style>
[data-testid="stSidebar"], [data-testid="stSidebarCollapsedControl"], [data-testid="stExpandSidebarButton"]
{display: none !important;}
</style>"""


# streamlit's own plotly.js chunk (~4.7 MB): its file name carries a build hash, so it is looked up, not written down
_PLOTLY_CHUNK = next(
    iter(sorted((Path(st.__file__).parent / "static" / "static" / "js").glob("PlotlyChart.*.js"))), None
)


def preload_charts() -> None:
    """Have the browser fetch and evaluate plotly.js while the page computes its first chart.

    Streamlit imports plotly.js only when the first chart arrives, and evaluating it costs a fresh browser
    2-3 CPU-s on this machine: started with the run, that overlaps the server's work instead of following it.
    A static script (no user input); where the chunk is not found (another streamlit build) nothing is sent.
    """
    if _PLOTLY_CHUNK is None:
        return
    base = (st.get_option("server.baseUrlPath") or "").strip("/")
    url = f"{'/' + base if base else ''}/static/js/{_PLOTLY_CHUNK.name}"
    st.sidebar.html(f"<script>import({json.dumps(url)})</script>", unsafe_allow_javascript=True)


def teacher_mode() -> bool:
    """``?teacher=1`` in the URL hides the controls: the view is whatever the link says."""
    return st.query_params.get(TEACHER_PARAM) == "1"


_ROUTER = threading.local()


@contextlib.contextmanager
def routed() -> Iterator[None]:
    """Marks this script run as dispatched by app.py's router (see :func:`require_router`)."""
    _ROUTER.active = True
    try:
        yield
    finally:
        _ROUTER.active = False


def require_router() -> None:
    """Run the page under app.py's router even for sessions that connect while the server is cold.

    Streamlit takes a folder named ``pages/`` for a v1 multipage app until some session has called
    ``st.navigation``, and a run that starts before then executes a linked page alone, without the
    router's sidebar (the seed!). That is decided per run, so a concurrent session can flip the switch
    while this run is still on the old path: check this run, not the switch, then rerun under the router.
    """
    ctx = get_script_run_ctx()
    under_app = ctx is not None and Path(ctx.pages_manager.main_script_path).name == "app.py"
    if under_app and not getattr(_ROUTER, "active", False):
        PagesManager.uses_pages_directory = False
        st.rerun()


def header(slug: str) -> Lab:
    """Title, one-line pitch with the paper link, and teacher mode for the lab ``slug``."""
    require_router()
    lab = LABS_BY_SLUG[slug]
    st.title(lab.title)
    st.caption(f"{lab.pitch} After *{lab.paper}* ([arXiv:{lab.arxiv}]({lab.paper_url})).")
    lesson_keys = _lessons.panel(slug)
    if teacher_mode():
        st.html(_lesson_only_css(lesson_keys) if lesson_keys else HIDE_SIDEBAR)
    return lab


def _lesson_only_css(keys: list[str]) -> str:
    """Teacher mode in a lesson: the sidebar shows the lesson's controls only."""
    shown = "".join(f":not(.st-key-{key})" for key in keys)
    return f"""<style>[data-testid="stSidebar"] [data-testid="stElementContainer"]{shown} {{display: none;}}
[data-testid="stSidebarNav"] {{display: none;}}</style>"""


def seed() -> int:
    """The seed chosen in the router's sidebar (``?seed=`` in the URL; rendered, hidden, in teacher mode too)."""
    return int(st.session_state.get(SEED_KEY, 0))


@st.cache_resource
def device() -> torch.device:
    """The one compute device of this server (cuda, then mps, then cpu; ``OPTISCOPE_DEVICE`` forces one)."""
    return pick_device()


@st.cache_resource(max_entries=16)
def zoo_model(name: str) -> torch.nn.Module:
    """A shipped zoo model on :func:`device`, in eval mode, loaded once and shared by every session.

    Shared means read-only: core functions never swap its parameters or hook it (see core/README.md).
    """
    return zoo.load(name, device=device()).eval().requires_grad_(False)


def stored(
    key: str,
    lab: str,
    view: Mapping[str, Any],
    start: Callable[[], Iterator[Any]],
    progress: Callable[[Any], tuple[float, str]],
    kind: type,
    *,
    model: str | None = None,
    label: str = "Compute",
) -> Any | None:
    """:func:`background` for a heavy deterministic result shared by every replica (``core.store``).

    ``view`` holds the URL's registry keys and values that determine the result; with the lab's code
    version and ``model``'s sha256 it keys the store. A stored result shows at once; otherwise the job's
    final state (a ``kind`` dataclass) is stored when it ends, for every session on every replica.
    """
    view_key = store.view_key(lab, view, model=model)
    found = store.default_store().get(view_key, kind)
    if found is not None:
        return found
    return background(key, view_key, lambda: store.cached(view_key, start, kind), progress, label=label)


# --- Widgets bound to the URL ------------------------------------------------------------------
# Each takes `key` (also the query-parameter name) and renders in the sidebar unless `where` says
# otherwise. Defaults drop out of the URL, so a short link means "the defaults".


def _initial(key: str, **default: Any) -> dict[str, Any]:
    """The default, unless session state already holds a value (set by a preset): passing both warns."""
    return {} if key in st.session_state else default


def slider(
    label: str, min_value: Any, max_value: Any, value: Any, key: str, *, where: Any = None, **kwargs: Any
) -> Any:
    if not isinstance(value, (tuple, list)):
        _check_number_link(key, min_value, max_value, value)
    _lessons.record(key, low=min_value, high=max_value, value=st.session_state.get(key, value))
    return (where or st.sidebar).slider(
        label, min_value, max_value, key=key, bind="query-params", **_initial(key, value=value), **kwargs
    )


def select(
    label: str, options: Mapping[str, str] | Sequence[Any], value: Any, key: str, *, where: Any = None, **kwargs: Any
) -> Any:
    """A selectbox whose URL value is the option's registry key, shown by its label.

    ``options`` is ``{key: label}`` (or a sequence of keys shown as they are). Links that carry an old
    display label still select its key; an unknown value falls back to ``value`` with a notice.
    """
    return _choice((where or st.sidebar).selectbox, label, options, value, key, kwargs)


def radio(
    label: str, options: Mapping[str, str] | Sequence[Any], value: Any, key: str, *, where: Any = None, **kwargs: Any
) -> Any:
    """A radio bound to the URL by registry key (see :func:`select`)."""
    return _choice((where or st.sidebar).radio, label, options, value, key, kwargs)


def _choice(widget: Any, label: str, options: Any, value: Any, key: str, kwargs: dict[str, Any]) -> Any:
    keys, fmt = _options(options)
    index = _bind_choice(key, keys, options, value)
    return widget(
        label,
        keys,
        **_initial(key, index=index),
        key=key,
        format_func=fmt,
        on_change=_write_choice,
        args=(key, value),
        **kwargs,
    )


def _options(options: Mapping[str, str] | Sequence[Any]) -> tuple[list[Any], Any]:
    if isinstance(options, Mapping):
        return list(options), lambda k: options[k]
    return list(options), str


def _bind_choice(key: str, keys: list[Any], options: Any, default: Any) -> int:
    """Seed the widget from ``?key=`` once per session (key, old label, or str of a number); keep the URL in sync."""
    if key not in st.session_state:
        raw = st.query_params.get(key)
        if raw is not None:
            chosen = _match_choice(raw, keys, options)
            if chosen is None:
                _notice(key, raw, default)
                chosen = default
            st.session_state[key] = chosen
    if key in st.session_state and st.session_state[key] not in keys:  # a preset or an old value
        _notice(key, st.session_state[key], default)
        st.session_state[key] = default
    _write_choice(key, default)
    _lessons.record(key, options=keys, value=st.session_state.get(key, default))
    return keys.index(default)


def _match_choice(raw: str, keys: list[Any], options: Any) -> Any:
    for k in keys:
        if raw == str(k) or (isinstance(options, Mapping) and raw == options[k]):
            return k
    return None


def _write_choice(key: str, default: Any) -> None:
    value = st.session_state.get(key, default)
    if value == default:
        if key in st.query_params:
            del st.query_params[key]
    elif st.query_params.get(key) != str(value):
        st.query_params[key] = str(value)


def _notice(key: str, raw: Any, used: Any) -> None:
    """Say that a link's value could not be used, and what was used instead."""
    shown = str(raw) if len(str(raw)) <= 40 else f"{str(raw)[:37]}…"
    st.toast(f"The link's `{key}={shown}` is not available here; using `{used}`.", icon=":material/link_off:")


def _check_number_link(key: str, low: Any, high: Any, default: Any) -> None:
    """Streamlit drops an out-of-range ``?key=`` silently and raises on an out-of-range preset: say so, use the default."""
    held = st.session_state.get(key)
    if held is not None and not isinstance(held, (tuple, list)) and not _within(held, low, high):
        _notice(key, held, default)
        st.session_state[key] = default
    raw = st.query_params.get(key)
    if key in st.session_state or raw is None:
        return
    try:
        ok = _within(float(raw), low, high)
    except ValueError:
        ok = False
    if not ok:
        _notice(key, raw, default)
        del st.query_params[key]
        _forget_initial_param(key)


def _forget_initial_param(key: str) -> None:
    """Streamlit 1.67 seeds a bound widget from the URL it was opened with, even after the parameter is deleted,
    and its int deserializer raises OverflowError on ``inf`` or a 3000-digit number: drop that initial value."""
    ctx = get_script_run_ctx()
    if ctx is not None:
        with ctx.session_state.query_params() as params:
            params._initial_query_params.pop(key, None)


def _within(value: Any, low: Any, high: Any) -> bool:
    return value == value and (low is None or value >= low) and (high is None or value <= high)


def number(
    label: str, min_value: Any, max_value: Any, value: Any, key: str, *, where: Any = None, **kwargs: Any
) -> Any:
    _check_number_link(key, min_value, max_value, value)
    _lessons.record(key, low=min_value, high=max_value, value=st.session_state.get(key, value))
    return (where or st.sidebar).number_input(
        label,
        min_value=min_value,
        max_value=max_value,
        key=key,
        bind="query-params",
        **_initial(key, value=value),
        **kwargs,
    )


def toggle(label: str, value: bool, key: str, *, where: Any = None, **kwargs: Any) -> bool:
    _lessons.record(key, options=[False, True], value=st.session_state.get(key, value))
    return (where or st.sidebar).toggle(label, key=key, bind="query-params", **_initial(key, value=value), **kwargs)


def text(label: str, value: str, key: str, *, where: Any = None, **kwargs: Any) -> str:
    _lessons.record(key, value=st.session_state.get(key, value))
    return (where or st.sidebar).text_input(label, key=key, bind="query-params", **_initial(key, value=value), **kwargs)


def upload(label: str, types: Sequence[str], key: str, *, max_mb: float, where: Any = None) -> bytes | None:
    """An untrusted file's bytes, or None; files over ``max_mb`` are refused with a message."""
    file = (where or st.sidebar).file_uploader(f"{label} (≤ {max_mb:g} MB)", type=list(types), key=key)
    if file is None:
        return None
    if file.size > max_mb * 2**20:
        st.error(f"`{file.name}` is {file.size / 2**20:.1f} MB; the limit here is {max_mb:g} MB.")
        return None
    return file.getvalue()


def presets(options: Mapping[str, Mapping[str, Any]], *, key: str = "preset", where: Any = None) -> None:
    """One-click presets: each button sets the named widgets (by key) to the preset's values.

    Call it before the widgets it sets, so they pick up the new values in the same run.
    """

    def apply(values: Mapping[str, Any]) -> None:
        for widget_key, widget_value in values.items():
            st.session_state[widget_key] = widget_value

    container = where or st.sidebar
    container.markdown("**Presets**")
    for i, (name, values) in enumerate(options.items()):
        container.button(name, key=f"{key}-{i}", on_click=apply, args=(values,), width="stretch")


# --- Output -------------------------------------------------------------------------------------


@contextlib.contextmanager
def errors(what: str = "this view") -> Iterator[None]:
    """Error boundary: a bad value shows a short message saying what to change, never a traceback.

    ``core`` raises ``OptiscopeError`` with a message naming the bad value; anything else (a numpy
    shape bug is a ``ValueError`` too) is a bug, logged on the server with its traceback and shown to
    the user as one line.
    """
    try:
        yield
    except OptiscopeError as err:
        st.error(f"{err}", icon=":material/error:")
    except Exception as err:  # the boundary: a bug must not take the page down
        log.exception("Unexpected error in %s", what)
        st.error(f"Could not compute {what}: {type(err).__name__}: {err}", icon=":material/bug_report:")


def _table_bytes(data: pd.DataFrame | Mapping[str, Any]) -> bytes:
    if isinstance(data, pd.DataFrame):
        return data.to_csv(index=False).encode()
    return json.dumps(data, indent=1, default=_jsonable).encode()


def _jsonable(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def chart(
    fig: go.Figure,
    key: str,
    *,
    data: pd.DataFrame | Mapping[str, Any] | None = None,
    name: str | None = None,
    where: Any = None,
) -> None:
    """A plotly chart with download buttons for its data (CSV or JSON) and the figure (standalone HTML)."""
    where = where or st
    where.plotly_chart(fig, key=key, width="stretch", config={"displaylogo": False})
    stem = name or key
    left, right = where.columns(2)
    if data is not None:
        ext, mime = ("csv", "text/csv") if isinstance(data, pd.DataFrame) else ("json", "application/json")
        left.download_button(  # serialized on click, not on every rerun
            f"Data ({ext.upper()})",
            lambda: _table_bytes(data),
            f"{stem}.{ext}",
            mime,
            key=f"{key}-data",
            on_click="ignore",
            icon=":material/download:",
        )

    def figure_html() -> bytes:
        buffer = io.StringIO()
        fig.write_html(buffer, include_plotlyjs=True, full_html=True)
        return buffer.getvalue().encode()

    right.download_button(
        "Figure (HTML)",
        figure_html,
        f"{stem}.html",
        "text/html",
        key=f"{key}-html",
        on_click="ignore",
        icon=":material/download:",
    )


PAINTED_KEY = "_optiscope_painted"  # session state: the deferred pieces this session has drawn once
# In the browser: once every plotly chart on the page has its SVG and one more frame has passed (it is painted), say so.
_AFTER_PAINT_JS = """
export default function ({ setTriggerValue }) {
  let frames = 0;
  const drawn = () => [...document.querySelectorAll("[data-testid='stPlotlyChart']")].every(
    (chart) => chart.querySelector(".main-svg"));
  const check = () => {
    if (drawn() || ++frames > 600) requestAnimationFrame(() => setTimeout(() => setTriggerValue("painted", true)));
    else requestAnimationFrame(check);
  };
  requestAnimationFrame(check);
}
"""
_after_paint = st.components.v2.component("optiscope_after_paint", js=_AFTER_PAINT_JS)


def after_first_paint(key: str, draw: Callable[[], None], *, where: Any = None, note: str = "Drawing…") -> None:
    """Call ``draw()`` once the browser has painted the page's charts, then in place on every later run.

    For a heavy piece (a WebGL scene holds a software-rendered browser 2–3 s) that would otherwise arrive in the same
    batch as the first chart and hold its paint back. The first run leaves ``note`` and a script that waits until every
    chart on the page is drawn and a frame has passed, then reruns the app, which draws the piece in its place.
    """
    drawn = st.session_state.setdefault(PAINTED_KEY, set())
    if key in drawn:
        draw()
        return
    with where or contextlib.nullcontext():
        st.caption(note)
        _after_paint(key=f"after-paint-{key}", on_painted_change=lambda: drawn.add(key))


def explainer(
    title: str,
    formula: str | Sequence[str],
    values: Mapping[str, Any] | None = None,
    reference: str | None = None,
    *,
    text: str | None = None,
    where: Any = None,
) -> None:
    """An expander beside a chart: the formula in LaTeX, the live values, the paper reference."""
    with (where or st).expander(f"How to read: {title}", icon=":material/school:"):
        if text:
            st.markdown(text)
        for line in [formula] if isinstance(formula, str) else formula:
            st.latex(line)
        if values:
            rows = [{"quantity": k, "value": _fmt(v)} for k, v in values.items()]
            st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
        if reference:
            st.caption(reference)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def heatmap_png(z: np.ndarray, colorscale: str = "Viridis") -> str:
    """``z`` (rows = increasing y) as a PNG data URI for ``fig.add_layout_image``, low values dark.

    A picture instead of a heatmap trace: replay frames redraw every trace, never the layout images.
    """
    scale = np.array([plotly.colors.hex_to_rgb(c) for c in getattr(plotly.colors.sequential, colorscale)], dtype=float)
    t = (z - z.min()) / (np.ptp(z) or 1.0) * (len(scale) - 1)
    lo = np.floor(t).astype(int).clip(0, len(scale) - 2)
    rgb = scale[lo] + (t - lo)[..., None] * (scale[lo + 1] - scale[lo])  # (rows, cols, 3)
    buffer = io.BytesIO()
    Image.fromarray(rgb[::-1].astype(np.uint8)).save(buffer, format="PNG")  # image row 0 is the top (largest y)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def animate(
    fig: go.Figure,
    frames: Sequence[go.Frame],
    *,
    duration_ms: int = 50,
    labels: Sequence[str] | None = None,
    prefix: str = "step ",
    at_end: bool = True,
) -> go.Figure:
    """Client-side replay: ``frames`` played by the browser with play (▶), pause (❚❚) and a scrubber.

    No server round trip per frame, so 1,000+ WebGL points replay smoothly. Frames replace trace data
    by index (set ``traces=[...]`` on a frame to update only some). Fix the axis ranges on ``fig``
    so the view does not jump between frames. ``at_end`` (the default): the first paint is the last
    frame, with the scrubber there (where the run went answers the lab's question; ▶ replays from the
    first frame); otherwise ``fig`` as given, the scrubber at the first frame.
    """
    names = [f.name or str(i) for i, f in enumerate(frames)]
    for frame, frame_name in zip(frames, names, strict=True):
        frame.name = frame_name
    labels = labels or names
    play = {
        "frame": {"duration": duration_ms, "redraw": True},
        "transition": {"duration": 0},
        "fromcurrent": True,
        "mode": "immediate",
    }
    pause = {"frame": {"duration": 0, "redraw": False}, "mode": "immediate", "transition": {"duration": 0}}
    if at_end and frames:
        _show_frame(fig, frames[-1])
    fig.frames = list(frames)
    fig.update_layout(
        updatemenus=[
            {
                "type": "buttons",
                "direction": "left",
                "x": 0.0,
                "y": -0.1,
                "xanchor": "left",
                "yanchor": "top",
                "showactive": False,
                "pad": {"r": 8, "t": 8},
                "buttons": [
                    {"label": "▶", "method": "animate", "args": [None, play]},
                    {"label": "❚❚", "method": "animate", "args": [[None], pause]},
                ],
            }
        ],
        sliders=[
            {
                "active": len(frames) - 1 if at_end else 0,
                "x": 0.0,
                "len": 1.0,
                "y": -0.1,
                "yanchor": "top",
                "pad": {"t": 8, "l": 100},  # px: clears ▶ ❚❚
                "currentvalue": {"prefix": prefix},
                "steps": [
                    {
                        "label": str(label),
                        "method": "animate",
                        "args": [
                            [frame_name],
                            {
                                "frame": {"duration": 0, "redraw": True},
                                "mode": "immediate",
                                "transition": {"duration": 0},
                            },
                        ],
                    }
                    for frame_name, label in zip(names, labels, strict=True)
                ],
            }
        ],
    )
    return fig


def _show_frame(fig: go.Figure, frame: go.Frame) -> None:
    """Draw ``frame`` as the figure's own state, as the player would: its traces by index, then its layout."""
    indices = frame.traces if frame.traces is not None else range(len(frame.data))
    for index, trace in zip(indices, frame.data, strict=True):
        fig.data[index].update(trace.to_plotly_json())
    if frame.layout is not None:
        fig.update_layout(frame.layout)


def metrics(values: Mapping[str, Any], *, where: Any = None, help: Mapping[str, str] | None = None) -> None:
    """A row of ``st.metric``s, one per ``{label: value}`` (floats shown to 4 significant digits)."""
    help = help or {}
    for column, (label, value) in zip((where or st).columns(len(values)), values.items(), strict=True):
        column.metric(label, _fmt(value), help=help.get(label))


def image_grid(
    images: Sequence[np.ndarray] | np.ndarray,
    titles: Sequence[str] | None = None,
    *,
    columns: int | None = None,
    colorscale: str = "Gray",
    zmin: float | None = None,
    zmax: float | None = None,
    height: int = 220,
    showscale: bool = False,
) -> go.Figure:
    """Images side by side with hidden axes: (H, W) arrays as heatmaps, (H, W, 3) uint8 arrays as pictures."""
    columns = columns or len(images)
    rows = -(-len(images) // columns)
    fig = make_subplots(
        rows, columns, subplot_titles=list(titles) if titles else None, horizontal_spacing=0.01, vertical_spacing=0.04
    )
    for i, image in enumerate(images):
        row, col = divmod(i, columns)
        image = np.asarray(image)
        if image.ndim == 3:
            fig.add_trace(go.Image(z=image, hoverinfo="skip"), row + 1, col + 1)
        else:
            fig.add_trace(
                go.Heatmap(
                    z=image,
                    colorscale=colorscale,
                    zmin=zmin,
                    zmax=zmax,
                    showscale=showscale and i == 0,
                    hovertemplate="%{z:.3g}<extra></extra>",
                ),
                row + 1,
                col + 1,
            )
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False, autorange="reversed")
    return fig.update_layout(height=height * rows, margin={"l": 0, "r": 0, "t": 30, "b": 0})
