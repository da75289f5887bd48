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
    ui.Player(
        "demo",
        lambda: itertools.count(0, speed),
        config=speed,
        render=lambda states: st.write(f"last={states[-1] if states else None}"),
    ).show()


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
    run = at.session_state["demo"]
    deadline = time.monotonic() + 10
    while len(run.states) <= 3 and time.monotonic() < deadline:
        time.sleep(0.05)
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

    from core.errors import OptiscopeError
    from pages import _ui as ui

    with ui.errors():
        raise OptiscopeError("Expected `sigma` >= 0, but got -1.")
    with ui.errors("the bug"):
        raise KeyError("boom")
    with ui.errors("the shape bug"):
        raise ValueError("operands could not be broadcast together")
    st.write("after")


def test_error_boundary_shows_user_mistakes_and_logs_bugs(caplog) -> None:
    at = AppTest.from_function(error_script, default_timeout=30).run()
    assert not at.exception
    assert at.error[0].value == "Expected `sigma` >= 0, but got -1."
    assert "Could not compute the bug" in at.error[1].value
    assert "Could not compute the shape bug: ValueError" in at.error[2].value  # a numpy ValueError is a bug
    assert "the shape bug" in caplog.text
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


def test_animate_paints_the_last_frame_first_unless_asked_to_start_at_the_first() -> None:
    def replay(**kwargs) -> go.Figure:
        fig = go.Figure([go.Contour(z=[[0, 1], [1, 0]]), go.Scatter(x=[0.0], y=[0.0])])
        frames = [go.Frame(data=[go.Scatter(x=[0.0, i], y=[0.0, -i])], traces=[1], name=str(i)) for i in range(4)]
        return ui.animate(fig, frames, **kwargs)

    end = replay()
    assert end.layout.sliders[0].active == 3 and list(end.data[1].x) == [0.0, 3.0] and list(end.data[1].y) == [0, -3]
    assert end.data[0].type == "contour"  # a trace no frame touches stays as it was
    start = replay(at_end=False)
    assert start.layout.sliders[0].active == 0 and list(start.data[1].x) == [0.0]


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


def test_play_pause_play_never_leaves_a_run_playing_without_a_worker() -> None:
    import itertools

    from pages._jobs import _Run

    run = _Run("cfg", itertools.count(), max_states=10**9, delay=0.0, keep=lambda s: s, session_id="x")
    for _ in range(300):  # pause and play again while the worker may be exiting
        run.play()
        run.stop()
        run.play()
        with run.lock:
            assert run.thread is not None and run.playing
    count = len(run.states)
    time.sleep(0.2)
    assert len(run.states) > count  # still advancing
    run.stop()
    deadline = time.monotonic() + 5
    while run.thread is not None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert run.thread is None and not run.playing


def test_player_keeps_reduced_states_only() -> None:
    from pages._jobs import _Run

    run = _Run("cfg", iter(range(5)), max_states=3, delay=0.0, keep=lambda s: -s, session_id="x")
    for _ in range(5):
        run.advance()
    assert run.states == [0, -1, -2] and run.done


def test_a_job_whose_settings_change_is_cancelled_and_a_failure_is_not_cached() -> None:
    import threading

    from pages import _jobs

    release = threading.Event()

    def slow():
        for i in range(1000):
            release.wait(0.01)
            yield i

    job = _jobs._subscribe("t-slow", 1, slow, lambda s: (s / 1000, ""), "session-a")
    _jobs._unsubscribe(job, "session-a")  # the only session moved on
    deadline = time.monotonic() + 5
    while not job.done and time.monotonic() < deadline:
        time.sleep(0.01)
    assert job.done and job.error == "Cancelled." and ("t-slow", 1) not in _jobs._JOBS

    def broken():
        yield 1
        raise KeyError("boom")

    failed = _jobs._subscribe("t-broken", 1, broken, lambda s: (1.0, ""), "session-a")
    while not failed.done:
        time.sleep(0.01)
    assert "KeyError" in failed.error and ("t-broken", 1) not in _jobs._JOBS
    again = _jobs._subscribe("t-broken", 1, broken, lambda s: (1.0, ""), "session-b")
    assert again is not failed  # the next visitor recomputes


def choice_script() -> None:
    import streamlit as st

    from pages import _ui as ui

    value = ui.radio("Parameterization", {"w": "W (one matrix)", "kq": "(K, Q), W = KᵀQ"}, "w", "param")
    st.write(f"param={value}")


def test_select_binds_the_registry_key_and_reads_old_labels_and_says_when_a_link_value_is_unknown() -> None:
    for raw, expected in (("kq", "kq"), ("(K, Q), W = KᵀQ", "kq"), ("w", "w")):
        at = AppTest.from_function(choice_script, default_timeout=30)
        at.query_params["param"] = raw
        at.run()
        assert at.markdown[-1].value == f"param={expected}"
        assert at.query_params.get("param", "w") == expected
    at = AppTest.from_function(choice_script, default_timeout=30)
    at.query_params["param"] = "Nope"
    at.run()
    assert at.markdown[-1].value == "param=w"
    assert "param=Nope" in at.toast[0].value


def number_script() -> None:
    import streamlit as st

    from pages import _ui as ui

    st.write(f"n={ui.number('N', 2, 5000, 200, 'n')}")


def test_an_out_of_range_link_value_is_reported() -> None:
    at = AppTest.from_function(number_script, default_timeout=30)
    at.query_params["n"] = "-5"
    at.run()
    assert at.markdown[-1].value == "n=200"
    assert "n=-5" in at.toast[0].value


def test_script_runs_wait_quiet_waits_for_the_last_run_to_end_and_a_quiet_spell() -> None:
    import threading

    runs = ui.RUNS.__class__()
    quiet_s, ends = 1.0, []

    def two_runs() -> None:
        with runs.running():
            time.sleep(0.4)
        ends.append(time.perf_counter())
        time.sleep(0.2)  # far shorter than the quiet spell (a loaded machine's scheduling delay included)
        with runs.running():
            time.sleep(0.2)
        ends.append(time.perf_counter())

    worker = threading.Thread(target=two_runs)
    worker.start()
    time.sleep(0.05)
    runs.wait_quiet(seconds=quiet_s)
    returned, ended = time.perf_counter(), len(ends)
    worker.join()
    assert ended == 2, "wait_quiet returned before the second run had ended"
    assert returned >= ends[1] + quiet_s - 0.05  # a quiet spell after the last run, not after the first


def test_script_runs_trim_the_heap_when_the_last_run_ends_at_most_every_so_often() -> None:
    trims = []
    runs = ui.RUNS.__class__(trim=lambda: trims.append(time.monotonic()), trim_every_s=0.3)
    with runs.running():
        with runs.running():
            pass
        assert not trims  # another run is still going
    assert len(trims) == 1
    with runs.running():
        pass
    assert len(trims) == 1  # too soon after the last trim
    time.sleep(0.35)
    with runs.running():
        pass
    assert len(trims) == 2


def test_script_runs_collect_and_trim_once_the_server_is_idle_and_not_again_until_new_runs() -> None:
    trims = []
    runs = ui.RUNS.__class__(trim=lambda: trims.append(time.monotonic()), trim_every_s=60, idle_s=0.3)

    def idle_trims_reach(count: int) -> bool:  # a full collection can take a while on a loaded machine
        deadline = time.monotonic() + 20
        while runs.idle_trims < count and time.monotonic() < deadline:
            time.sleep(0.02)
        return runs.idle_trims == count

    with runs.running():
        pass
    ended = time.monotonic()
    assert len(trims) == 1  # the trim at the run's end
    assert idle_trims_reach(1) and trims[1] - ended >= 0.3  # after a quiet spell
    time.sleep(0.6)
    assert runs.idle_trims == 1  # no new run, nothing new to free
    with runs.running():
        pass
    assert idle_trims_reach(2)
