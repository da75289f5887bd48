"""The shared result cache: heavy, deterministic results computed once and read by every replica.

A result is keyed by its canonical view (:func:`view_key`): the lab, the URL's registry keys and values
that determine it, the lab's code version (a hash of ``core/<lab>/`` sources) and the model's sha256.
Values are frozen dataclasses whose fields are JSON values or arrays (numpy or torch); they are written
as one ``.npz`` blob (arrays, plus the JSON fields as a byte array) and read back with
``allow_pickle=False``, so bytes from a shared Redis never run code.

With ``OPTISCOPE_REDIS_URL`` set, results are read from and written to Redis and kept in a bounded
in-process cache as well; without it, or while Redis is away, only the in-process cache serves (a
warning in the log, no error for the user).

>>> store = ResultStore(url=None)
>>> key = view_key("cbo", {"seed": 3, "phase_d": 2})
>>> store.get(key, Example) is None
True
>>> store.put(key, Example(step=1, values=np.arange(3.0)))
>>> store.get(key, Example).values
array([0., 1., 2.])
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import io
import json
import logging
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch

from core import zoo
from core.errors import OptiscopeError

log = logging.getLogger("optiscope.store")
T = TypeVar("T")
CORE = Path(__file__).resolve().parent
URL_ENV = "OPTISCOPE_REDIS_URL"
PREFIX = "optiscope:result:"
TTL_S = 7 * 24 * 3600  # a week: a course's results outlive a lecture, stale code versions expire on their own
RETRY_S = 30.0  # after Redis goes away, how long the replica serves from its own cache before trying again
TIMEOUT_S = 0.5  # a slow Redis must not hold a page: socket connect/read timeout
LOCAL_ENTRIES = 64
_META = "__meta__"


@dataclass(frozen=True)
class Example:
    """A stored value, for the doctest: any frozen dataclass of JSON values and arrays works."""

    step: int
    values: np.ndarray


@functools.cache
def code_version(lab: str) -> str:
    """sha256 of the lab's sources (``core/<lab>/**/*.py``, paths and bytes): a code change is a new key."""
    folder = CORE / lab
    if not folder.is_dir():
        raise OptiscopeError(f"Expected `lab` to name a folder of core/, but got {lab!r}")
    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*.py")):
        digest.update(path.relative_to(CORE).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def view_key(lab: str, view: Mapping[str, Any], *, model: str | None = None) -> str:
    """The canonical key of a view: lab, sorted registry keys and values, code version, model sha256.

    ``view`` holds the URL's registry keys and the values that determine the result (JSON values);
    ``model`` is a zoo name whose shipped weights' sha256 enters the key.
    """
    model_sha = zoo.info(model)["sha256"] if model is not None else None
    canonical = {"lab": lab, "view": dict(view), "code": code_version(lab), "model": model_sha}
    try:
        text = json.dumps(canonical, sort_keys=True, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as err:
        raise OptiscopeError(f"Expected `view` to hold finite JSON values, but got {view!r}") from err
    return f"{lab}:{hashlib.sha256(text.encode()).hexdigest()}"


def encode(value: Any) -> bytes:
    """A frozen dataclass as ``.npz`` bytes: arrays as arrays, the other fields as JSON (no pickle)."""
    arrays, meta = {}, {"json": {}, "torch": [], "tuple": []}
    for field in dataclasses.fields(value):
        item = getattr(value, field.name)
        if isinstance(item, torch.Tensor):
            arrays[field.name] = item.detach().cpu().numpy()
            meta["torch"].append(field.name)
        elif isinstance(item, np.ndarray):
            arrays[field.name] = item
        else:
            meta["json"][field.name] = item
            if isinstance(item, tuple):
                meta["tuple"].append(field.name)
    arrays[_META] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def decode(data: bytes, kind: type[T]) -> T:
    """The ``kind`` instance that :func:`encode` wrote (arrays read with ``allow_pickle=False``)."""
    with np.load(io.BytesIO(data), allow_pickle=False) as npz:
        arrays = {name: npz[name] for name in npz.files}
    meta = json.loads(arrays.pop(_META).tobytes())
    fields = {name: torch.from_numpy(a) if name in meta["torch"] else a for name, a in arrays.items()}
    fields |= {name: _tuples(v) if name in meta["tuple"] else v for name, v in meta["json"].items()}
    return kind(**fields)


def _tuples(value: Any) -> Any:
    return tuple(_tuples(v) for v in value) if isinstance(value, list) else value


class ResultStore:
    """Redis when ``url`` is given (and reachable), always a bounded in-process cache in front of it."""

    def __init__(self, url: str | None, *, local_entries: int = LOCAL_ENTRIES) -> None:
        self.url, self.local_entries = url, local_entries
        self._local: OrderedDict[str, bytes] = OrderedDict()
        self._lock = threading.Lock()
        self._redis_down_until = 0.0
        self._client = _client(url) if url else None
        self.stats = {"local_hits": 0, "redis_hits": 0, "misses": 0, "redis_errors": 0}

    def get(self, key: str, kind: type[T]) -> T | None:
        """The stored result for ``key``, or None: first this process, then Redis."""
        with self._lock:
            data = self._local.get(key)
            if data is not None:
                self._local.move_to_end(key)
        source = "local_hits"
        if data is None:
            data, source = self._redis("get", key), "redis_hits"
            if data is not None:
                self._remember(key, data)
        self._count(source if data is not None else "misses")
        return decode(data, kind) if data is not None else None

    def put(self, key: str, value: Any) -> None:
        """Store ``value`` (a frozen dataclass of JSON values and arrays) here and in Redis."""
        data = encode(value)
        self._remember(key, data)
        self._redis("set", key, data, ex=TTL_S)

    def redis_available(self) -> bool:
        return self._client is not None and time.monotonic() >= self._redis_down_until

    def _remember(self, key: str, data: bytes) -> None:
        with self._lock:
            self._local[key] = data
            self._local.move_to_end(key)
            while len(self._local) > self.local_entries:
                self._local.popitem(last=False)

    def _count(self, name: str) -> None:
        with self._lock:
            self.stats[name] += 1

    def _redis(self, command: str, key: str, *args: Any, **kwargs: Any) -> Any:
        """One Redis command, or None when there is no Redis or it is away (logged once per outage)."""
        if not self.redis_available():
            return None
        import redis

        try:
            return getattr(self._client, command)(PREFIX + key, *args, **kwargs)
        except (redis.RedisError, OSError) as err:
            self._count("redis_errors")
            self._redis_down_until = time.monotonic() + RETRY_S
            log.warning("Redis at %s is unavailable (%s): serving from this process's cache", self.url, err)
            return None


def _client(url: str) -> Any:
    try:
        import redis
    except ImportError:
        log.warning("%s is set but the redis package is missing (requirements-cluster.txt): local cache only", URL_ENV)
        return None
    return redis.Redis.from_url(url, socket_timeout=TIMEOUT_S, socket_connect_timeout=TIMEOUT_S)


@functools.cache
def default_store() -> ResultStore:
    """The process's store, configured from ``OPTISCOPE_REDIS_URL`` (unset: in-process only)."""
    return ResultStore(os.environ.get(URL_ENV) or None)


def cached(
    key: str, start: Callable[[], Iterator[T]], kind: type[T], *, store: ResultStore | None = None
) -> Iterator[T]:
    """The states of ``start()``, or the one stored final state of ``key`` when there is one.

    The final state of a run that ends is stored under ``key``; a run stopped early stores nothing.
    """
    store = store or default_store()
    found = store.get(key, kind)
    if found is not None:
        yield found
        return
    last = None
    for last in start():
        yield last
    if last is not None:
        store.put(key, last)
