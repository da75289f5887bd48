"""Shipped default views (pages/_shipped.py): every shipped call equals a fresh one, and the files round-trip."""

from __future__ import annotations

import dataclasses
import importlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from pages import _shipped as shipped

FILES = sorted(shipped.PRECOMPUTED.glob("*-views.npz"))


def _function(name: str):
    module, _, qualname = name.partition(":")
    return getattr(importlib.import_module(module), qualname)


def assert_same(shipped_value, fresh, path: str = "value") -> None:
    """Equal nests, to the rounding of the float32 work behind them (the file holds exactly what the run returned).

    Another CPU (AVX-512 against AVX2, another MKL path) sums float32 in another order: a shipped float32 view
    made on one host differs from a fresh one on the next by ~1e-6 relative, and by up to ~1e-5 of the array's
    scale after a sampler's steps; a changed computation moves it by orders of magnitude more.
    """
    if isinstance(fresh, (dict, list, tuple, str)):
        assert type(shipped_value) is type(fresh), path
    if isinstance(fresh, (np.ndarray, torch.Tensor, float, np.floating)):
        fresh_array = np.asarray(fresh)
        if fresh_array.dtype == np.float32:
            scale = float(np.abs(fresh_array).max(initial=0.0))
            tolerance = {"rtol": 1e-5, "atol": 1e-4 * scale}
        else:
            # float64 numbers here are often reductions of float32 ones: float32 rounding on terms of ~0.1
            tolerance = {"rtol": 1e-5, "atol": 1e-7}
        np.testing.assert_allclose(np.asarray(shipped_value), fresh_array, **tolerance, err_msg=path)
    elif isinstance(fresh, pd.DataFrame):
        pd.testing.assert_frame_equal(shipped_value, fresh, rtol=1e-5)
    elif isinstance(fresh, dict):
        assert list(shipped_value) == list(fresh), path
        for key in fresh:
            assert_same(shipped_value[key], fresh[key], f"{path}[{key!r}]")
    elif isinstance(fresh, (list, tuple)):
        assert len(shipped_value) == len(fresh), path
        for i, (a, b) in enumerate(zip(shipped_value, fresh, strict=True)):
            assert_same(a, b, f"{path}[{i}]")
    elif dataclasses.is_dataclass(fresh):
        for field in dataclasses.fields(fresh):
            assert_same(getattr(shipped_value, field.name), getattr(fresh, field.name), f"{path}.{field.name}")
    else:
        assert shipped_value == fresh, path


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_every_shipped_call_equals_a_fresh_one(path: Path) -> None:
    torch.set_num_threads(1)
    recorded = shipped.calls(path)
    assert recorded, f"{path.name} ships no calls"
    for call in recorded:
        fresh = _function(call["fn"])(*call["args"], **call["kwargs"])
        assert_same(call["value"], fresh, f"{call['fn']}: rerun `python -m pages._shipped LAB` after a change")


@dataclasses.dataclass(frozen=True)
class NotCore:
    x: int


def test_values_round_trip_without_pickle(tmp_path: Path) -> None:
    from core.landscape.trace import TraceEstimate

    frame = pd.DataFrame({"loss": [1.0, 2.0], "name": ["a", "b"]}, index=["x", "y"])
    value = {
        ("a", 1): [np.arange(3.0), torch.ones(2)],
        "frame": frame,
        "trace": TraceEstimate(1.5, 0.1, 7),
        "n": np.int64(3),
        "none": None,
    }
    calls = [{"fn": "core.m:f", "args": (1, "x", (2.0,)), "kwargs": {"device": "cpu"}, "value": value}]
    shipped.save(tmp_path / "t-views.npz", calls, {"code": "test"})
    back = shipped.calls(tmp_path / "t-views.npz")[0]
    assert back["args"] == (1, "x", (2.0,)) and back["kwargs"] == {"device": "cpu"}
    assert_same(back["value"], value)


def test_a_dataclass_outside_core_is_refused(tmp_path: Path) -> None:
    shipped.save(tmp_path / "t-views.npz", [{"fn": "f", "args": (), "kwargs": {}, "value": NotCore(1)}], {})
    with pytest.raises(ValueError, match="dataclass of core"):
        shipped.calls(tmp_path / "t-views.npz")


def test_serve_answers_the_shipped_call_and_computes_any_other(monkeypatch) -> None:
    calls = []

    def square(x: float) -> float:
        calls.append(x)
        return x * x

    monkeypatch.setattr(shipped, "load", lambda lab: {shipped.call_key(shipped.name_of(square), (3.0,), {}): -1.0})
    served = shipped.serve("lab", square)
    assert served(3.0) == -1.0 and served(2.0) == 4.0 and calls == [2.0]
