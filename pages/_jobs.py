"""Live runs and background jobs: a ``core`` iterator consumed in a worker thread, polled by a fragment.

A widget change reruns the page script and would kill work done inside it (streamlit#10578), so the
work runs in a thread that makes no ``st.*`` calls; the page only reads its progress.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Hashable, Iterator
from dataclasses import dataclass, field
from typing import Any

import streamlit as st

log = logging.getLogger("optiscope")


@dataclass
class _Run:
    """A live run: the iterator, the states it has yielded so far, and whether it is playing."""

    config: Hashable
    iterator: Iterator[Any]
    max_states: int
    delay: float
    states: list[Any] = field(default_factory=list)
    playing: bool = False
    done: bool = False
    error: str | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)
    thread: threading.Thread | None = None

    def advance(self) -> None:
        """Take one state from the iterator (under the lock, so Step and Play never interleave)."""
        with self.lock:
            if self.done:
                return
            try:
                self.states.append(next(self.iterator))
            except StopIteration:
                self.done = True
            except ValueError as err:
                self.done, self.error = True, str(err)
            except Exception as err:  # a bug in a run must end the run, not the server thread silently
                log.exception("Live run failed")
                self.done, self.error = True, f"{type(err).__name__}: {err}"
            if len(self.states) >= self.max_states:
                self.done = True
            if self.done:
                self.playing = False

    def play(self) -> None:
        self.playing = True
        if self.thread is None or not self.thread.is_alive():
            self.thread = threading.Thread(target=self._loop, daemon=True)
            self.thread.start()

    def _loop(self) -> None:
        while self.playing and not self.done:
            self.advance()
            time.sleep(self.delay)


class Player:
    """Play / pause / step / reset over a ``core`` iterator, rendered live.

    Args:
        key: a unique key for this player on the page.
        start: returns a fresh iterator of per-step states (called on reset and when ``config`` changes).
        config: a hashable summary of the settings; when it changes the run restarts and says so.
        render: draws the states so far (a list, oldest first); called on every poll.
        interval: seconds between polls while playing.
        delay: seconds the worker sleeps between steps, so a fast run stays watchable.
        max_states: the run stops after this many states (bounds memory and CPU).
    """

    def __init__(
        self,
        key: str,
        start: Callable[[], Iterator[Any]],
        config: Hashable,
        render: Callable[[list[Any]], None],
        *,
        interval: float = 0.3,
        delay: float = 0.02,
        max_states: int = 5000,
    ) -> None:
        self.key, self.start, self.config, self.render = key, start, config, render
        self.interval, self.delay, self.max_states = interval, delay, max_states

    def _new_run(self) -> _Run:
        return _Run(self.config, self.start(), self.max_states, self.delay)

    def run(self) -> _Run:
        """The session's run for this player, restarted if the settings changed."""
        run = st.session_state.get(self.key)
        if run is None:
            run = st.session_state[self.key] = self._new_run()
        elif run.config != self.config:
            run.playing = False
            run = st.session_state[self.key] = self._new_run()
            st.toast("Settings changed: the live run restarted from step 0.", icon=":material/restart_alt:")
        return run

    def show(self) -> None:
        polling = self.run().playing

        def current() -> _Run:
            return st.session_state[self.key]

        def toggle() -> None:
            run = current()
            if run.playing:
                run.playing = False
            else:
                run.play()

        def step() -> None:
            current().playing = False
            current().advance()

        def reset() -> None:
            current().playing = False
            st.session_state[self.key] = self._new_run()

        @st.fragment(run_every=self.interval if polling else None)
        def view() -> None:
            run = current()
            if run.playing != polling:
                st.rerun(scope="app")  # start or stop polling: only a full run can change `run_every`
            play, step_, reset_, count = st.columns([1, 1, 1, 2], vertical_alignment="bottom")
            play.button("❚❚ Pause" if run.playing else "▶ Play", key=f"{self.key}-play", on_click=toggle,
                        disabled=run.done, width="stretch")
            step_.button("Step", key=f"{self.key}-step", on_click=step, disabled=run.done, width="stretch")
            reset_.button("Reset", key=f"{self.key}-reset", on_click=reset, width="stretch")
            count.metric("Step", len(run.states))
            if run.error:
                st.error(run.error)
            with run.lock:
                states = list(run.states)
            self.render(states)

        view()


@dataclass
class _Job:
    """A shared background computation: the last state an iterator yielded, and its progress."""

    last: Any = None
    fraction: float = 0.0
    text: str = "starting…"
    done: bool = False
    error: str | None = None


@st.cache_resource(max_entries=64)
def _job(key: str, config: Hashable, _start: Callable[[], Iterator[Any]], _progress: Callable) -> _Job:
    """One job per (key, config), shared by every session: the result is computed once and cached."""
    job = _Job()

    def work() -> None:
        try:
            for state in _start():
                job.last = state
                job.fraction, job.text = _progress(state)
        except ValueError as err:
            job.error = str(err)
        except Exception as err:
            log.exception("Background job %s failed", key)
            job.error = f"{type(err).__name__}: {err}"
        job.done = True

    threading.Thread(target=work, daemon=True).start()
    return job


def background(
    key: str,
    config: Hashable,
    start: Callable[[], Iterator[Any]],
    progress: Callable[[Any], tuple[float, str]],
    *,
    label: str = "Compute",
    autostart: bool = False,
    interval: float = 0.5,
) -> Any | None:
    """Run ``start()`` (a ``core`` iterator of progress states) in a worker; returns its last state when done.

    Until then it shows a start button (unless ``autostart``) or a progress bar and returns None.
    ``progress(state) -> (fraction in [0, 1], text)``. Results are cached per ``(key, config)`` for all
    sessions, so a second visitor with the same settings gets the answer at once.
    """
    started_key = f"{key}-started"
    if not autostart and st.session_state.get(started_key) != config:
        if not st.button(label, key=f"{key}-start", icon=":material/play_arrow:"):
            return None
        st.session_state[started_key] = config
    job = _job(key, config, start, progress)
    if job.done:
        if job.error:
            st.error(job.error)
            return None
        return job.last

    @st.fragment(run_every=interval)
    def poll() -> None:
        st.progress(min(max(job.fraction, 0.0), 1.0), text=job.text)
        if job.done:
            st.rerun(scope="app")

    poll()
    return None
