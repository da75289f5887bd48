"""deploy/: the compose file and the local cluster describe one topology; the local cluster starts and stops cleanly."""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
sys.path.insert(0, str(DEPLOY))
import cluster  # noqa: E402

COMPOSE = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
SERVICES = COMPOSE["services"]
APPS = [f"app{k + 1}" for k in range(cluster.COMPOSE_REPLICAS)]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_compose_has_the_clusters_services():
    assert set(SERVICES) == {"redis", "lb", *APPS}
    assert set(SERVICES["lb"]["depends_on"]) == set(APPS)


def test_compose_replicas_run_the_local_replicas_command():
    local = cluster.streamlit_command(cluster.APP_PORT, "0.0.0.0")
    for app in APPS:
        assert SERVICES[app]["command"] == ["streamlit", *local[local.index("streamlit") + 1 :]]
        assert SERVICES[app]["environment"]["OPTISCOPE_REDIS_URL"] == f"redis://redis:{cluster.REDIS_PORT}/0"
        assert SERVICES[app]["expose"] == [str(cluster.APP_PORT)]


def test_compose_redis_runs_the_local_redis_flags():
    assert SERVICES["redis"]["command"] == ["redis-server", "--port", str(cluster.REDIS_PORT), *cluster.REDIS_FLAGS]
    assert SERVICES["redis"]["image"].startswith("redis:7.0")


def test_compose_load_balancer_uses_the_rendered_template():
    assert (DEPLOY / "haproxy.compose.cfg").read_text() == cluster.render_compose(), (
        "run `python deploy/cluster.py render-compose` after editing haproxy.cfg.in"
    )
    assert SERVICES["lb"]["image"] == "haproxy:2.6"
    assert SERVICES["lb"]["volumes"] == ["./haproxy.compose.cfg:/usr/local/etc/haproxy/haproxy.cfg:ro"]
    assert SERVICES["lb"]["ports"] == [
        f"{cluster.LB_PORT}:{cluster.LB_PORT}",
        f"{cluster.STATS_PORT}:{cluster.STATS_PORT}",
    ]


def _normalised(config: str) -> str:
    """The config without the parts that differ by design: addresses and bind lines."""
    config = re.sub(r"server (app\d+) \S+:\d+", r"server \1 ADDRESS", config)
    return re.sub(r"bind \S+", "bind ADDRESS", config)


def test_local_and_compose_balancers_differ_only_in_addresses():
    local = cluster.render(cluster.local_replicas(cluster.COMPOSE_REPLICAS), "127.0.0.1:1", "127.0.0.1:2")
    assert _normalised(local) == _normalised(cluster.render_compose())
    backend = cluster.render_compose()
    for directive in ("cookie OPTISCOPE_REPLICA insert", "option httpchk GET /_stcore/health", "option redispatch"):
        assert directive in backend


@pytest.mark.skipif(shutil.which("haproxy") is None, reason="haproxy is not installed (apt-get install haproxy)")
def test_haproxy_accepts_both_configs(tmp_path):
    local = tmp_path / "local.cfg"
    local.write_text(cluster.render(cluster.local_replicas(3), "127.0.0.1:1", "127.0.0.1:2"))
    for config in (local, DEPLOY / "haproxy.compose.cfg"):
        check = subprocess.run(["haproxy", "-c", "-f", str(config)], capture_output=True, text=True)
        assert check.returncode == 0, check.stdout + check.stderr


@pytest.fixture
def private_cluster(tmp_path, monkeypatch):
    """deploy/cluster.py with its pid files in tmp_path and free ports, so it never meets `make cluster`."""
    for tool in ("haproxy", "redis-server"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed (apt-get install haproxy redis-server)")
    ports = {"lb": _free_port(), "stats": _free_port(), "first_app": _free_port(), "redis": _free_port()}
    monkeypatch.setattr(cluster, "RUN", tmp_path / "run")
    monkeypatch.setattr(cluster, "LOCAL", cluster.LOCAL | ports)
    yield cluster
    cluster.stop()


@pytest.mark.slow
def test_cluster_serves_sticky_sessions_and_stop_ends_exactly_what_it_started(private_cluster):
    bystander = subprocess.Popen(["sleep", "60"])
    try:
        private_cluster.RUN.mkdir(parents=True, exist_ok=True)
        (private_cluster.RUN / "bystander.pid").write_text(f"{bystander.pid} 1\n")  # a recycled pid: not ours
        url = private_cluster.start(1)
        response = urllib.request.urlopen(url + "/", timeout=10)
        assert response.status == 200 and "OPTISCOPE_REPLICA=app1" in response.headers["Set-Cookie"]
        started = private_cluster.running()
        assert set(started) == {"redis", "app1", "haproxy"}
        assert set(private_cluster.stop()) == set(started)
        time.sleep(0.5)
        assert not any(private_cluster._alive(pid) for pid in started.values())
        assert bystander.poll() is None, "a process the cluster did not start was signalled"
        assert not list(private_cluster.RUN.glob("*.pid"))
    finally:
        bystander.kill()
        bystander.wait()
