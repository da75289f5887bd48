"""Live runs and background jobs: a ``core`` iterator consumed in a worker thread, polled by a fragment.

A widget change reruns the page script and would kill work done inside it (streamlit#10578), so the
work runs in a thread that makes no ``st.*`` calls (resolve cached resources before starting it); the
page only reads its progress. Workers stop when their settings change, when no session that wants
them is still connected, or when their run ends; a failed job is never served to another session.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import gc
import logging
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator
from dataclasses import dataclass, field
from typing import Any

import streamlit as st
from streamlit.runtime import Runtime
from streamlit.runtime.scriptrunner import get_script_run_ctx

from core.errors import OptiscopeError

log = logging.getLogger("optiscope")
MAX_JOBS = 64  # finished jobs kept for other sessions (oldest evicted first)


def malloc_trim() -> Callable[[], object] | None:
    """glibc's ``malloc_trim(0)``, where there is one (not on macOS or musl)."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None
    trim = getattr(libc, "malloc_trim", None)
    return (lambda: trim(0)) if trim is not None else None


class ScriptRuns:
    """How many page scripts run right now, so that optional server work can wait for a quiet moment.

    When the last running script ends, the C heap's free pages go back to the OS (at most every ``trim_every_s``):
    glibc otherwise keeps a run's transient arrays resident, and a server's memory would creep up run after run
    (the soak measured ~50 MB on the CAM page) with nothing alive in it. A trim costs ~5-12 ms. Garbage that only
    the cycle collector frees (figures, autograd graphs) dies after that trim, so once the server has been idle
    for ``idle_s`` a background thread collects it and trims again (the soak measured +17% raw RSS without it).
    """

    def __init__(
        self, trim: Callable[[], object] | None = None, trim_every_s: float = 2.0, idle_s: float | None = None
    ) -> None:
        self._changed = threading.Condition()
        self._active = 0
        self._started = 0
        self._trim, self._trim_every_s, self._trimmed_at = trim, trim_every_s, -math.inf
        self.idle_trims = 0
        if trim is not None and idle_s is not None:
            threading.Thread(
                target=self._trim_when_idle, args=(idle_s,), name="optiscope-idle-trim", daemon=True
            ).start()

    @contextlib.contextmanager
    def running(self) -> Iterator[None]:
        with self._changed:
            self._active += 1
            self._started += 1
            self._changed.notify_all()
        try:
            yield
        finally:
            with self._changed:
                self._active -= 1
                self._changed.notify_all()
                due = time.monotonic() - self._trimmed_at >= self._trim_every_s
                trim = self._trim is not None and self._active == 0 and due
                if trim:
                    self._trimmed_at = time.monotonic()
            if trim:
                self._trim()

    def _trim_when_idle(self, idle_s: float) -> None:
        trimmed_after = 0  # the run count at the last idle trim: trim again only after new runs
        while True:
            with self._changed:
                self._changed.wait_for(lambda seen=trimmed_after: self._started != seen)
            self.wait_quiet(idle_s)
            trimmed_after = self._started
            gc.collect()
            gc.collect()  # what the first pass freed can free more (weakref callbacks, finalizers)
            self._trim()
            self.idle_trims += 1

    def wait_quiet(self, seconds: float) -> None:
        """Block until no script has run or started for ``seconds``."""
        with self._changed:
            while True:
                self._changed.wait_for(lambda: self._active == 0)
                started = self._started
                if not self._changed.wait_for(lambda seen=started: self._started != seen, timeout=seconds):
                    return


RUNS = ScriptRuns(trim=malloc_trim(), idle_s=1.0)  # every script run of this server process, counted by app.py's router


def _session_id() -> str:
    ctx = get_script_run_ctx()
    return ctx.session_id if ctx else "no-session"


def _session_alive(session_id: str) -> bool:
    """Whether the browser session is still connected (always true outside a server, e.g. in AppTest)."""
    return not Runtime.exists() or Runtime.instance().is_active_session(session_id)


def _describe(err: Exception, what: str) -> str:
    """A user's mistake (``OptiscopeError``) as its message; anything else is a bug, logged with its traceback."""
    if isinstance(err, OptiscopeError):
        return str(err)
    log.error("%s failed", what, exc_info=err)
    return f"{type(err).__name__}: {err} (a bug, logged on the server)"


@dataclass
class _Run:
    """A live run: the iterator, the (reduced) states it has yielded so far, and whether it is playing."""

    config: Hashable
    iterator: Iterator[Any]
    max_states: int
    delay: float
    keep: Callable[[Any], Any]
    session_id: str
    states: list[Any] = field(default_factory=list)
    playing: bool = False
    done: bool = False
    error: str | None = None
    lock: threading.RLock = field(default_factory=threading.RLock)
    thread: threading.Thread | None = None

    def advance(self) -> None:
        """Take one state from the iterator (under the lock, so Step and Play never interleave)."""
        with self.lock:
            if self.done:
                return
            try:
                self.states.append(self.keep(next(self.iterator)))
            except StopIteration:
                self.done = True
            except Exception as err:  # a bug in a run must end the run, not the server thread silently
                self.done, self.error = True, _describe(err, "Live run")
            if len(self.states) >= self.max_states:
                self.done = True
            if self.done:
                self.playing = False

    def play(self) -> None:
        """Start playing; the worker's exit and this check share the lock, so a worker always exists while playing."""
        with self.lock:
            if self.done:
                return
            self.playing = True
            if self.thread is None:
                self.thread = threading.Thread(target=self._loop, daemon=True)
                self.thread.start()

    def stop(self) -> None:
        self.playing = False

    def _loop(self) -> None:
        while True:
            with self.lock:
                if not self.playing or self.done or not _session_alive(self.session_id):
                    self.playing, self.thread = False, None
                    return
            self.advance()
            time.sleep(self.delay)


class Player:
    """Play / pause / step / reset over a ``core`` iterator, rendered live.

    Args:
        key: a unique key for this player on the page.
        start: returns a fresh iterator of per-step states (called on reset and when ``config`` changes).
            Resolve cached resources before: it is called here, but iterated in a worker thread.
        config: a hashable summary of the settings; when it changes the run restarts and says so.
        render: draws the states so far (a list, oldest first); called on every poll.
        interval: seconds between polls while playing.
        delay: seconds the worker sleeps between steps, so a fast run stays watchable.
        max_states: the run stops after this many states (bounds memory and CPU).
        keep: reduces each state before it is held in the session (e.g. 300 particles of 2 coordinates),
            so that ``max_states`` held states stay small.
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
        keep: Callable[[Any], Any] = lambda state: state,
    ) -> None:
        self.key, self.start, self.config, self.render = key, start, config, render
        self.interval, self.delay, self.max_states, self.keep = interval, delay, max_states, keep

    def _new_run(self) -> _Run:
        return _Run(self.config, self.start(), self.max_states, self.delay, self.keep, _session_id())

    def run(self) -> _Run:
        """The session's run for this player, restarted if the settings changed."""
        run = st.session_state.get(self.key)
        if run is None:
            run = st.session_state[self.key] = self._new_run()
        elif run.config != self.config:
            run.stop()
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
                run.stop()
            else:
                run.play()

        def step() -> None:
            current().stop()
            current().advance()

        def reset() -> None:
            current().stop()
            st.session_state[self.key] = self._new_run()

        @st.fragment(run_every=self.interval if polling else None)
        def view() -> None:
            run = current()
            if run.playing != polling:
                st.rerun(scope="app")  # start or stop polling: only a full run can change `run_every`
            play, step_, reset_, count = st.columns([1, 1, 1, 2], vertical_alignment="bottom")
            play.button(
                "❚❚ Pause" if run.playing else "▶ Play",
                key=f"{self.key}-play",
                on_click=toggle,
                disabled=run.done,
                width="stretch",
            )
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
    """A background computation shared by the sessions that asked for it: its last state and progress."""

    last: Any = None
    fraction: float = 0.0
    text: str = "starting…"
    done: bool = False
    error: str | None = None
    cancel: threading.Event = field(default_factory=threading.Event)
    sessions: set[str] = field(default_factory=set)


_JOBS: OrderedDict[tuple[str, Hashable], _Job] = OrderedDict()
_JOBS_LOCK = threading.Lock()


def _work(name: tuple[str, Hashable], job: _Job, start: Callable[[], Iterator[Any]], progress: Callable) -> None:
    try:
        for state in start():
            job.last = state
            job.fraction, job.text = progress(state)
            with _JOBS_LOCK:
                wanted = any(_session_alive(s) for s in job.sessions)
            if job.cancel.is_set() or not wanted:
                job.error = "Cancelled."
                break
    except Exception as err:
        job.error = _describe(err, f"Background job {name[0]}")
    if job.error:  # failures and cancellations are not cached for anyone else
        with _JOBS_LOCK:
            if _JOBS.get(name) is job:
                del _JOBS[name]
    job.done = True


def _subscribe(key: str, config: Hashable, start: Callable, progress: Callable, session_id: str) -> _Job:
    name = (key, config)
    with _JOBS_LOCK:
        job = _JOBS.get(name)
        if job is None:
            job = _JOBS[name] = _Job()
            threading.Thread(target=_work, args=(name, job, start, progress), daemon=True).start()
            finished = [n for n, j in _JOBS.items() if j.done]
            for evicted in finished[: max(0, len(_JOBS) - MAX_JOBS)]:
                del _JOBS[evicted]
        job.sessions.add(session_id)
        _JOBS.move_to_end(name)
        return job


def _unsubscribe(job: _Job, session_id: str) -> None:
    """This session no longer wants ``job``: cancel it if nobody else does."""
    with _JOBS_LOCK:
        job.sessions.discard(session_id)
        if not job.sessions and not job.done:
            job.cancel.set()


def job_wanted(key: str) -> bool:
    """Whether this run may start or show ``key``'s :func:`background` job (its button was just pressed, or this
    session holds one): resolve the job's heavy resources (a model to load) only then, not on every first screen."""
    return st.session_state.get(f"{key}-job") is not None or bool(st.session_state.get(f"{key}-start"))


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
    sessions, so a second visitor with the same settings gets the answer at once. Changing ``config``
    cancels the previous job unless another session still waits for it.
    """
    session_id, held_key = _session_id(), f"{key}-job"
    held = st.session_state.get(held_key)
    if held is not None and held[0] != config:
        _unsubscribe(held[1], session_id)
        del st.session_state[held_key]
        held = None
    if held is None:
        if not autostart and not st.button(label, key=f"{key}-start", icon=":material/play_arrow:"):
            return None
        held = st.session_state[held_key] = (config, _subscribe(key, config, start, progress, session_id))
    job = held[1]
    if job.done:
        if job.error:
            st.error(job.error)
            if st.button("Try again", key=f"{key}-retry"):
                del st.session_state[held_key]
                st.rerun()
            return None
        return job.last

    @st.fragment(run_every=interval)
    def poll() -> None:
        st.progress(min(max(job.fraction, 0.0), 1.0), text=job.text)
        if job.done:
            st.rerun(scope="app")

    poll()
    return None
