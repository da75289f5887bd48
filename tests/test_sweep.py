"""The sweep engine: a grid of cells here or on Ray, identical to the lab's own grid."""

from __future__ import annotations

import os
import shutil
import socket
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from core import cbo, sweep
from core.errors import OptiscopeError

ROOT = Path(__file__).resolve().parent.parent
SIGMAS, NS = (0.5, 1.0, 8.0), (20, 40)
FIXED = {"objective": cbo.OBJECTIVES["Rastrigin"], "d": 2, "runs": 4, "steps": 100, "seed": 3, "device": "cpu"}
AXES = {"config": [cbo.CBOConfig(alpha=30.0, sigma=s) for s in SIGMAS], "n_particles": NS}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_grid_of_success_rates_equals_the_cbo_phase_grid():
    phase = list(cbo.success_rate_grid(SIGMAS, NS, config=cbo.CBOConfig(alpha=30.0), d=2, runs=4, steps=100, seed=3))
    swept = list(sweep.grid(cbo.success_rates, AXES, fixed=FIXED, address=""))
    assert [s.step for s in swept] == [p.step for p in phase] == list(range(7))
    assert np.array_equal(swept[-1].table(0), phase[-1].success.double().numpy())
    assert np.array_equal(swept[-1].table(1), phase[-1].diverged.double().numpy())
    # the σ threshold: enough noise escapes Rastrigin's local minima that a small σ gets trapped in
    assert swept[-1].table(0)[0].max() <= 0.5 and swept[-1].table(0)[2].min() == 1.0


def test_progress_marks_pending_cells_as_nan_row_major():
    states = list(sweep.grid(pow, {"base": [2, 3], "exp": [1, 2, 3]}, address=""))
    assert states[0].fraction == 0 and np.isnan(states[0].table()).all()
    assert np.array_equal(np.isnan(states[2].table()), [[False, False, True], [True, True, True]])
    assert np.array_equal(states[-1].table(), [[2, 4, 8], [3, 9, 27]]) and states[-1].fraction == 1


def test_grid_is_validated_when_called():
    with pytest.raises(OptiscopeError, match="at least one value"):
        sweep.grid(pow, {"base": [], "exp": [1]})
    with pytest.raises(OptiscopeError, match="different keywords"):
        sweep.grid(pow, {"base": [2]}, fixed={"base": 3})
    with pytest.raises(OptiscopeError, match="grid cells"):
        sweep.grid(pow, {"base": range(200), "exp": range(200)})


def test_the_address_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv(sweep.ADDRESS_ENV, "")
    assert list(sweep.grid(pow, {"base": [2], "exp": [3]}))[-1].results == (8,)


@pytest.fixture(scope="module")
def ray_head():
    """`ray start --head --block` with two CPU slots (deploy/cluster.py's command), ended by its process group."""
    pytest.importorskip("ray", reason="ray is in requirements-cluster.txt")
    if shutil.which("ray", path=str(Path(sys.executable).parent)) is None:
        pytest.skip("the ray command is not in the venv")
    sys.path.insert(0, str(ROOT / "deploy"))
    import cluster

    port, run_dir = _free_port(), Path(os.environ.get("TMPDIR", "/tmp")) / f"optiscope-ray-{os.getpid()}"
    run_dir.mkdir(exist_ok=True)
    saved = cluster.RUN, dict(cluster.LOCAL)
    cluster.RUN, cluster.LOCAL["ray"] = run_dir, port
    address = cluster.ray_start(workers=2)
    try:
        import ray

        deadline = time.monotonic() + 180
        while True:
            try:
                ray.init(address=address, log_to_driver=False)
                break
            except (ConnectionError, RuntimeError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(2)
        yield address
    finally:
        ray.shutdown()
        cluster.kill("ray")
        cluster.RUN, cluster.LOCAL = saved[0], saved[1]
        shutil.rmtree(run_dir, ignore_errors=True)


@pytest.mark.slow
def test_the_phase_grid_on_a_local_ray_cluster_equals_the_local_run(ray_head):
    import ray

    assert ray.cluster_resources()["CPU"] == 2
    here = list(sweep.grid(cbo.success_rates, AXES, fixed=FIXED, address=""))[-1]
    on_ray = list(sweep.grid(cbo.success_rates, AXES, fixed=FIXED, address=ray_head))
    assert [s.step for s in on_ray] == list(range(7))
    assert on_ray[-1] == here


@pytest.mark.slow
def test_a_sweep_stopped_early_cancels_its_pending_tasks(ray_head):
    import ray

    states = sweep.grid(cbo.success_rates, AXES, fixed=FIXED | {"steps": 2000}, address=ray_head)
    next(states)
    states.close()
    deadline = time.monotonic() + 60
    while ray.available_resources().get("CPU", 0) < 2 and time.monotonic() < deadline:
        time.sleep(0.5)
    assert ray.available_resources().get("CPU", 0) == 2
