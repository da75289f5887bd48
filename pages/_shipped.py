"""Default views shipped precomputed: a page's heavy ``core`` calls answered from ``assets/precomputed/``.

A lab whose default link computes more than a first screen may take (5 CPU-s here) wraps those calls with
:func:`serve`. ``python -m pages._shipped LAB`` opens the lab's default link in AppTest, records every call
they get with what it returned, and writes ``assets/precomputed/<lab>-views.npz`` (with the code version of
``core/<lab>/`` and the torch version). The same call is then answered from the file; any other computes
live. Values are nests of dicts, lists, tuples, numbers, strings, numpy arrays, tensors, pandas frames and
frozen dataclasses of ``core``, stored as arrays plus JSON and read with ``allow_pickle=False``.
``tests/test_shipped.py`` recomputes every shipped call and compares.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import io
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

ROOT = Path(__file__).resolve().parent.parent
PRECOMPUTED = ROOT / "assets" / "precomputed"
_META = "__meta__"
_recording: list[dict] | None = None  # while `main` records a lab's default view


def path_for(lab: str) -> Path:
    return PRECOMPUTED / f"{lab}-views.npz"


def call_key(fn: str, args: tuple, kwargs: dict) -> str:
    """The name a call is shipped under: the function and every argument (repr is exact for floats)."""
    return repr((fn, tuple(args), tuple(sorted(kwargs.items()))))


def name_of(fn: Callable) -> str:
    return f"{fn.__module__}:{fn.__qualname__}"


def serve(lab: str, fn: Callable) -> Callable:
    """``fn``, answered from ``lab``'s shipped calls when called exactly as the default view calls it."""

    @functools.wraps(fn)
    def answered(*args: Any, **kwargs: Any) -> Any:
        key = call_key(name_of(fn), args, kwargs)
        shipped = load(lab) if _recording is None else {}
        if key in shipped:
            return shipped[key]
        value = fn(*args, **kwargs)
        if _recording is not None:
            _recording.append({"fn": name_of(fn), "args": args, "kwargs": kwargs, "value": value})
        return value

    return answered


def cache_for(lab: str, **options: Any) -> Callable[..., Callable]:
    """``cache(fn, **more)``: ``st.cache_data(**options, **more)`` over :func:`serve`, for ``lab``'s page."""
    import streamlit as st

    def cache(fn: Callable, **more: Any) -> Callable:
        return st.cache_data(**options, **more)(serve(lab, fn))

    return cache


@functools.cache
def load(lab: str) -> dict[str, Any]:
    """``{call_key: value}`` of the lab's shipped calls (empty when none are shipped)."""
    return {call_key(c["fn"], c["args"], c["kwargs"]): c["value"] for c in calls(path_for(lab))}


def calls(path: Path) -> list[dict]:
    """The shipped calls in ``path``: ``fn`` (module:qualname), ``args``, ``kwargs`` and ``value``."""
    if not path.exists():
        return []
    with np.load(path, allow_pickle=False) as data:
        arrays = {name: data[name] for name in data.files}
    return decode(json.loads(arrays.pop(_META).tobytes())["calls"], arrays)


def save(path: Path, recorded: list[dict], stamp: dict) -> None:
    arrays: dict[str, np.ndarray] = {}
    meta = {"calls": encode(recorded, arrays), "stamp": stamp}
    arrays[_META] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    path.write_bytes(buffer.getvalue())


def encode(value: Any, arrays: dict[str, np.ndarray]) -> Any:
    """``value`` as JSON, its arrays moved into ``arrays`` under fresh names."""
    if isinstance(value, np.ndarray) and value.dtype == object:  # e.g. a frame's column of strings
        return {"__objects__": encode(value.tolist(), arrays)}
    if isinstance(value, (np.ndarray, torch.Tensor)):
        name = f"a{len(arrays)}"
        arrays[name] = value.detach().cpu().numpy() if isinstance(value, torch.Tensor) else value
        return {"__tensor__" if isinstance(value, torch.Tensor) else "__array__": name}
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, pd.DataFrame):
        columns = {"keys": list(value.columns), "values": [value[c].to_numpy() for c in value.columns]}
        return {"__frame__": encode({"index": list(value.index), "columns": columns}, arrays)}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
        return {"__dataclass__": name_of(type(value)), "fields": encode(fields, arrays)}
    if isinstance(value, dict):
        return {"__dict__": [[encode(k, arrays), encode(v, arrays)] for k, v in value.items()]}
    if isinstance(value, tuple):
        return {"__tuple__": [encode(v, arrays) for v in value]}
    if isinstance(value, list):
        return [encode(v, arrays) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(f"{type(value).__name__} cannot be shipped")


def decode(tree: Any, arrays: dict[str, np.ndarray]) -> Any:
    """The value :func:`encode` wrote."""
    if isinstance(tree, list):
        return [decode(v, arrays) for v in tree]
    if not isinstance(tree, dict):
        return tree
    if "__array__" in tree:
        return arrays[tree["__array__"]]
    if "__objects__" in tree:
        return np.array(decode(tree["__objects__"], arrays), dtype=object)
    if "__tensor__" in tree:
        return torch.from_numpy(arrays[tree["__tensor__"]])
    if "__tuple__" in tree:
        return tuple(decode(v, arrays) for v in tree["__tuple__"])
    if "__dict__" in tree:
        return {_hashable(decode(k, arrays)): decode(v, arrays) for k, v in tree["__dict__"]}
    if "__frame__" in tree:
        frame = decode(tree["__frame__"], arrays)
        columns = dict(zip(frame["columns"]["keys"], frame["columns"]["values"], strict=True))
        return pd.DataFrame(columns, index=frame["index"])
    return _dataclass(tree["__dataclass__"])(**decode(tree["fields"], arrays))


def _hashable(key: Any) -> Any:
    return tuple(key) if isinstance(key, list) else key


def _dataclass(name: str) -> type:
    """A dataclass of ``core`` by its module:qualname (nothing else is ever imported from a file)."""
    module, _, qualname = name.partition(":")
    if not module.startswith("core."):
        raise ValueError(f"Expected a dataclass of core, but got {name!r}")
    kind = importlib.import_module(module)
    for part in qualname.split("."):
        kind = getattr(kind, part)
    if not dataclasses.is_dataclass(kind):
        raise ValueError(f"Expected a dataclass, but got {name!r}")
    return kind


def record(lab: str) -> list[dict]:
    """Every served call the lab's default link makes, computed live."""
    global _recording
    from streamlit.testing.v1 import AppTest

    _recording = []
    try:
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=900)
        at.run()
        at.switch_page(f"pages/{lab}.py").run()
        if at.exception:
            raise RuntimeError(at.exception[0].value)
        return _recording
    finally:
        _recording = None


def main(lab: str) -> None:
    from core import store

    torch.set_num_threads(1)
    recorded = record(lab)
    PRECOMPUTED.mkdir(parents=True, exist_ok=True)
    save(path_for(lab), recorded, {"code": store.code_version(lab), "torch": torch.__version__})
    print(f"{path_for(lab)}: {len(recorded)} calls", *sorted({c["fn"] for c in recorded}), sep="\n")


if __name__ == "__main__":  # record in the module the pages import, not in this __main__ copy of it
    importlib.import_module("pages._shipped").main(sys.argv[1])
