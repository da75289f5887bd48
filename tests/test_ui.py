"""The shared UI kit, headless: player, background jobs, error boundary, presets, replay figures."""

from __future__ import annotations

import time

import plotly.graph_objects as go
from streamlit.testing.v1 import AppTest

from pages import _ui as ui


def player_script() -> None:
    import itertools

    import streamlit as st

    from pages import _ui as ui

    speed = st.sidebar.slider("speed", 1, 3, 1, key="speed")
    ui.Player("demo", lambda: itertools.count(0, speed), config=speed,
              render=lambda states: st.write(f"last={states[-1] if states else None}")).show()


def test_player_steps_resets_and_restarts_on_new_settings() -> None:
    at = AppTest.from_function(player_script, default_timeout=30).run()
    assert at.metric[0].value == "0"
    at.button(key="demo-step").click().run()
    at.button(key="demo-step").click().run()
    assert at.metric[0].value == "2"
    assert "last=1" in at.markdown[-1].value
    at.button(key="demo-reset").click().run()
    assert at.metric[0].value == "0"
    at.button(key="demo-step").click().run()
    at.sidebar.slider(key="speed").set_value(3).run()  # a settings change restarts the run and says so
    assert at.metric[0].value == "0"
    assert "restarted" in at.toast[0].value


def test_player_plays_in_a_worker_until_paused() -> None:
    at = AppTest.from_function(player_script, default_timeout=30).run()
    at.button(key="demo-play").click().run()
    time.sleep(0.5)
    run = at.session_state["demo"]
    assert run.playing and len(run.states) > 3
    at.button(key="demo-play").click().run()  # now "Pause"
    frozen = len(run.states)
    time.sleep(0.2)
    assert not run.playing and len(run.states) <= frozen + 1


def job_script() -> None:
    import streamlit as st

    from pages import _ui as ui

    def work():
        for i in range(1, 4):
            yield {"done": i, "of": 3}

    result = ui.background("job", "cfg", work, lambda s: (s["done"] / s["of"], f"{s['done']}/3"), label="Go")
    st.write(f"result={result}")


def test_background_job_starts_on_click_and_returns_the_last_state() -> None:
    at = AppTest.from_function(job_script, default_timeout=30).run()
    assert at.markdown[-1].value == "result=None"
    at.button(key="job-start").click().run()
    deadline = time.monotonic() + 10
    while "done" not in at.markdown[-1].value and time.monotonic() < deadline:
        time.sleep(0.1)
        at.run()
    assert at.markdown[-1].value == "result={'done': 3, 'of': 3}"


def error_script() -> None:
    import streamlit as st

    from pages import _ui as ui

    with ui.errors():
        raise ValueError("Expected `sigma` >= 0, but got -1.")
    with ui.errors("the bug"):
        raise KeyError("boom")
    st.write("after")


def test_error_boundary_shows_messages_not_tracebacks() -> None:
    at = AppTest.from_function(error_script, default_timeout=30).run()
    assert not at.exception
    assert at.error[0].value == "Expected `sigma` >= 0, but got -1."
    assert "Could not compute the bug" in at.error[1].value
    assert at.markdown[-1].value == "after"


def preset_script() -> None:
    from pages import _ui as ui

    ui.presets({"Hot": {"temp": 90}})
    ui.slider("temp", 0, 100, 20, key="temp")


def test_preset_sets_bound_widgets_and_the_url() -> None:
    at = AppTest.from_function(preset_script, default_timeout=30).run()
    assert at.sidebar.slider(key="temp").value == 20
    at.sidebar.button(key="preset-0").click().run()
    assert at.sidebar.slider(key="temp").value == 90
    assert at.query_params["temp"] == "90"


def test_animate_adds_frames_play_controls_and_a_scrubber() -> None:
    fig = go.Figure(go.Scattergl(x=[0.0], y=[0.0]))
    frames = [go.Frame(data=[go.Scattergl(x=[float(i)], y=[0.0])]) for i in range(5)]
    fig = ui.animate(fig, frames, duration_ms=40)
    assert len(fig.frames) == 5
    assert [b.label for b in fig.layout.updatemenus[0].buttons] == ["▶", "❚❚"]
    assert len(fig.layout.sliders[0].steps) == 5
    assert fig.layout.updatemenus[0].buttons[0].args[1]["frame"]["duration"] == 40


def test_heatmap_png_maps_low_values_dark_and_puts_large_y_on_top() -> None:
    import base64
    import io

    import numpy as np
    from PIL import Image

    z = np.array([[0.0, 0.0], [1.0, 1.0]])  # row 0 is the smallest y
    uri = ui.heatmap_png(z)
    image = np.asarray(Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1]))))
    assert image.shape == (2, 2, 3)
    assert image[0].sum() > image[1].sum()  # the top row is the large-y, high (bright yellow) one
