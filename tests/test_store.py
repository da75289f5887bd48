"""The shared result cache: canonical keys, safe serialization, Redis shared by replicas, Redis going away."""

from __future__ import annotations

import base64
import io
import json
import logging
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass

import numpy as np
import pytest
import torch

from core import store, sweep


@dataclass(frozen=True)
class Result:
    step: int
    label: str
    sigmas: tuple[float, ...]
    nested: tuple
    success: torch.Tensor
    grid: np.ndarray


def _result(step: int = 3) -> Result:
    success = torch.tensor([[0.5, float("nan")], [1.0, 0.0]])
    return Result(step, "σ grid", (2.0, 4.0), ((1, 2), (3, None)), success, np.arange(6, dtype=np.float32))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def redis_url():
    """A private redis-server on a free port (Debian's redis-server; skipped where it is absent)."""
    pytest.importorskip("redis", reason="the redis client is in requirements-cluster.txt")
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed (apt-get install redis-server)")
    port = _free_port()
    args = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"
    import redis

    for _ in range(100):
        try:
            redis.Redis.from_url(url).ping()
            break
        except redis.ConnectionError:
            time.sleep(0.05)
    yield url, process
    process.terminate()
    process.wait(timeout=10)


def test_view_key_is_canonical_in_the_order_of_url_values():
    assert store.view_key("cbo", {"seed": 3, "phase_d": 20}) == store.view_key("cbo", {"phase_d": 20, "seed": 3})
    keys = {
        store.view_key("cbo", {"seed": 3, "phase_d": 20}),
        store.view_key("cbo", {"seed": 4, "phase_d": 20}),
        store.view_key("cbo", {"seed": 3, "phase_d": 20, "device": "cuda"}),
        store.view_key("landscape", {"seed": 3, "phase_d": 20}),
    }
    assert len(keys) == 4


def test_view_key_holds_the_models_sha256():
    name = next(iter(store.zoo.registry()))
    keyed = store.view_key("cam", {"seed": 0}, model=name)
    assert keyed != store.view_key("cam", {"seed": 0})
    assert keyed == store.view_key("cam", {"seed": 0}, model=name)


def test_code_version_changes_with_the_labs_sources(tmp_path, monkeypatch):
    monkeypatch.setattr(store, "CORE", tmp_path)
    (tmp_path / "toy").mkdir()
    (tmp_path / "toy" / "run.py").write_text("x = 1\n")
    store.code_version.cache_clear()
    before = store.code_version("toy")
    (tmp_path / "toy" / "run.py").write_text("x = 2\n")
    store.code_version.cache_clear()
    assert store.code_version("toy") != before
    store.code_version.cache_clear()


def test_view_key_refuses_unknown_labs_and_values_that_are_not_json():
    with pytest.raises(store.OptiscopeError, match="lab"):
        store.view_key("no_such_lab", {})
    with pytest.raises(store.OptiscopeError, match="view"):
        store.view_key("cbo", {"sigma": float("nan")})
    with pytest.raises(store.OptiscopeError, match="view"):
        store.view_key("cbo", {"x": object()})


def test_encode_decode_round_trip_keeps_types_values_and_nan():
    back = store.decode(store.encode(_result()), Result)
    assert (back.step, back.label, back.sigmas, back.nested) == (3, "σ grid", (2.0, 4.0), ((1, 2), (3, None)))
    assert isinstance(back.success, torch.Tensor) and back.success.dtype == torch.float32
    torch.testing.assert_close(back.success, _result().success, equal_nan=True)
    assert back.grid.dtype == np.float32 and np.array_equal(back.grid, np.arange(6))


def test_decode_never_unpickles_an_object_array():
    buffer = io.BytesIO()
    meta = np.frombuffer(json.dumps({"json": {}, "torch": [], "tuple": []}).encode(), dtype=np.uint8)
    np.savez(buffer, __meta__=meta, grid=np.array([{"a": 1}], dtype=object))  # savez pickles object arrays
    with pytest.raises(ValueError, match="allow_pickle"):
        store.decode(buffer.getvalue(), store.Example)


def test_local_store_without_redis_keeps_results_and_bounds_its_size():
    local = store.ResultStore(url=None, local_entries=2)
    for k in range(3):
        local.put(f"k{k}", _result(k))
    assert local.get("k0", Result) is None  # evicted, least recently used
    assert local.get("k2", Result).step == 2
    assert local.stats["local_hits"] == 1 and local.stats["misses"] == 1


def test_replicas_share_results_through_redis(redis_url):
    url, _ = redis_url
    first, second = store.ResultStore(url), store.ResultStore(url)
    first.put("phase", _result())
    found = second.get("phase", Result)
    assert found is not None and found.sigmas == (2.0, 4.0)
    assert second.stats["redis_hits"] == 1
    assert second.get("phase", Result) is not None and second.stats["local_hits"] == 1


def test_redis_going_away_falls_back_to_local_caches_with_a_warning(redis_url, caplog, monkeypatch):
    url, process = redis_url
    replica = store.ResultStore(url)
    replica.put("seen", _result(1))
    process.terminate()
    process.wait(timeout=10)
    with caplog.at_level(logging.WARNING, logger="optiscope.store"):
        assert replica.get("never-seen", Result) is None  # no exception for the user
        replica.put("computed-while-down", _result(2))
    assert replica.get("seen", Result).step == 1
    assert replica.get("computed-while-down", Result).step == 2
    assert replica.stats["redis_errors"] == 1, "one warning per outage, then Redis is not asked until RETRY_S"
    assert [r.levelname for r in caplog.records] == ["WARNING"] and "unavailable" in caplog.records[0].message


def test_unreachable_redis_at_start_serves_locally():
    pytest.importorskip("redis", reason="the redis client is in requirements-cluster.txt")
    replica = store.ResultStore(f"redis://127.0.0.1:{_free_port()}/0")
    replica.put("k", _result())
    assert replica.get("k", Result).step == 3 and replica.stats["redis_errors"] == 1


def test_redis_url_without_the_client_package_serves_locally_with_a_warning(monkeypatch, caplog):
    monkeypatch.setitem(sys.modules, "redis", None)  # what a fresh machine without requirements-cluster.txt has
    with caplog.at_level(logging.WARNING, logger="optiscope.store"):
        replica = store.ResultStore(f"redis://127.0.0.1:{_free_port()}/0")
    replica.put("k", _result())
    assert replica.get("k", Result).step == 3 and replica.stats["local_hits"] == 1
    assert any("requirements-cluster.txt" in r.message for r in caplog.records)


def test_cached_stores_the_final_state_of_a_finished_run_only():
    local = store.ResultStore(url=None)
    states = list(store.cached("done", lambda: iter([_result(1), _result(2)]), Result, store=local))
    assert [s.step for s in states] == [1, 2]
    assert [s.step for s in store.cached("done", lambda: iter([]), Result, store=local)] == [2]
    stopped = store.cached("stopped", lambda: iter([_result(1), _result(2)]), Result, store=local)
    next(stopped)
    stopped.close()  # a cancelled background job
    assert local.get("stopped", Result) is None


def test_cbo_page_shows_the_stored_phase_diagram_without_computing(open_page):
    view = {"phase_d": 2, "seed": 0, "device": "cpu"}
    key = store.view_key("cbo", view)
    shape = (8, 3)
    results = tuple((round(k / 24, 4), 0.0) for k in range(24))
    store.default_store().put(key, sweep.SweepProgress(24, 24, shape, results))
    at = open_page("pages/cbo.py", phase_d="2")
    assert not at.exception
    spec = json.loads(at.get("plotly_chart")[-1].proto.spec)
    heatmap = spec["data"][0]
    assert heatmap["type"] == "heatmap"
    z = np.frombuffer(base64.b64decode(heatmap["z"]["bdata"]), dtype=heatmap["z"]["dtype"])  # plotly's typed array
    assert np.allclose(z, [r[0] for r in results], atol=1e-6)
