"""What every lab's ``run(...)`` shares: the one helper that exhausts a run, and the eager-validation shape."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from typing import TypeVar

from core.errors import OptiscopeError

State = TypeVar("State")


def last_state(states: Iterable[State]) -> State:
    """Run an iterator of states to its end and return the final one (a run used without watching it).

    >>> last_state(iter([1, 2, 3]))
    3
    """
    tail = deque(states, maxlen=1)
    if not tail:
        raise OptiscopeError("Expected the run to yield at least one state, but it yielded none")
    return tail[0]
