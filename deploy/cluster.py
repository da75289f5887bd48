"""A class-sized Optiscope on one machine: N Streamlit replicas, HAProxy (sticky, health-checked) and Redis.

    python deploy/cluster.py start --replicas 3     # make cluster N=3
    python deploy/cluster.py stop                   # make cluster-stop
    python deploy/cluster.py kill app2              # end one process of the cluster (the load test's faults)
    python deploy/cluster.py ray-start --workers 2  # a local Ray head for OPTISCOPE_RAY_ADDRESS sweeps
    python deploy/cluster.py render-compose         # rewrite deploy/haproxy.compose.cfg from the template

Every process is started in its own session and recorded in ``deploy/.run/NAME.pid`` with its start time;
``stop`` signals exactly those process groups (a recycled pid is left alone) and removes the files.
``deploy/compose.yaml`` describes the same topology for a real deployment; tests/test_deploy.py keeps
the two in step.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

DEPLOY = Path(__file__).resolve().parent
ROOT = DEPLOY.parent
RUN = DEPLOY / ".run"
TEMPLATE = DEPLOY / "haproxy.cfg.in"
COMPOSE_CFG = DEPLOY / "haproxy.compose.cfg"

# The topology, shared by the local cluster and deploy/compose.yaml.
STREAMLIT_FLAGS = (
    "--server.headless=true",
    "--server.fileWatcherType=none",
    "--browser.gatherUsageStats=false",
    "--server.maxUploadSize=10",
)
REDIS_FLAGS = ("--save", "", "--appendonly", "no", "--maxmemory", "512mb", "--maxmemory-policy", "allkeys-lru")
COMPOSE_REPLICAS, APP_PORT, LB_PORT, STATS_PORT, REDIS_PORT = 3, 8501, 8500, 8404, 6379
# Local ports: away from `make run` (8501) and a system Redis (6379).
LOCAL = {"lb": 8700, "stats": 8799, "first_app": 8701, "redis": 6399, "ray": 6380}
HEALTH_TIMEOUT_S = 300  # replicas import torch and the labs: minutes on a loaded 2-core machine


@dataclass(frozen=True)
class Replica:
    name: str
    host: str
    port: int


def local_replicas(count: int) -> list[Replica]:
    return [Replica(f"app{k + 1}", "127.0.0.1", LOCAL["first_app"] + k) for k in range(count)]


def compose_replicas() -> list[Replica]:
    return [Replica(f"app{k + 1}", f"app{k + 1}", APP_PORT) for k in range(COMPOSE_REPLICAS)]


def render(replicas: list[Replica], bind: str, stats_bind: str) -> str:
    """The HAProxy config: one cookie-sticky, health-checked server line per replica."""
    servers = "\n".join(f"    server {r.name} {r.host}:{r.port} cookie {r.name}" for r in replicas)
    return TEMPLATE.read_text().format(servers=servers, bind=bind, stats_bind=stats_bind)


def render_compose() -> str:
    return render(compose_replicas(), f"*:{LB_PORT}", f"*:{STATS_PORT}")


def streamlit_command(port: int, address: str) -> list[str]:
    flags = [*STREAMLIT_FLAGS, f"--server.port={port}", f"--server.address={address}"]
    return [sys.executable, "-m", "streamlit", "run", "app.py", *flags]


def _start_time(pid: int) -> str | None:
    """The kernel's start time of ``pid`` (field 22 of /proc/PID/stat), None if it is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def spawn(name: str, command: list[str], env: dict[str, str] | None = None) -> int:
    """Start ``command`` in its own session, log to .run/NAME.log, record .run/NAME.pid."""
    RUN.mkdir(exist_ok=True)
    with open(RUN / f"{name}.log", "wb") as log:  # a fresh log per start: its warnings are this run's
        process = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    (RUN / f"{name}.pid").write_text(f"{process.pid} {_start_time(process.pid)}\n")
    return process.pid


def running() -> dict[str, int]:
    """name -> pid of the recorded processes that are still the ones this script started."""
    alive = {}
    for pid_file in sorted(RUN.glob("*.pid")):
        pid, started = pid_file.read_text().split()
        if _start_time(int(pid)) == started:
            alive[pid_file.stem] = int(pid)
    return alive


def kill(name: str, *, grace_s: float = 20.0) -> bool:
    """End the process group ``name`` started (SIGTERM, then SIGKILL after ``grace_s``); forget its pid file."""
    pid = running().get(name)
    pid_file = RUN / f"{name}.pid"
    if pid is not None:
        os.killpg(pid, signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        if _alive(pid):
            os.killpg(pid, signal.SIGKILL)
    pid_file.unlink(missing_ok=True)
    return pid is not None


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def wait_healthy(url: str, timeout_s: float = HEALTH_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read() == b"ok":
                return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{url} did not become healthy within {timeout_s:.0f} s") from None
            time.sleep(0.5)


def start(replicas: int, *, redis: bool = True) -> str:
    """Redis, ``replicas`` Streamlit replicas and HAProxy; returns the load balancer's URL once all are healthy."""
    if running():
        raise SystemExit(f"A cluster is already running ({', '.join(running())}): `make cluster-stop` first.")
    env = dict(os.environ)
    if redis:
        spawn("redis", ["redis-server", "--port", str(LOCAL["redis"]), "--bind", "127.0.0.1", *REDIS_FLAGS])
        env["OPTISCOPE_REDIS_URL"] = f"redis://127.0.0.1:{LOCAL['redis']}/0"
    apps = local_replicas(replicas)
    for app in apps:
        spawn(app.name, streamlit_command(app.port, app.host), env)
    config = RUN / "haproxy.cfg"
    config.write_text(render(apps, f"127.0.0.1:{LOCAL['lb']}", f"127.0.0.1:{LOCAL['stats']}"))
    spawn("haproxy", ["haproxy", "-db", "-f", str(config)])
    for app in apps:
        wait_healthy(f"http://{app.host}:{app.port}")
    url = f"http://127.0.0.1:{LOCAL['lb']}"
    wait_healthy(url)
    return url


def ray_start(workers: int) -> str:
    """A Ray head with ``workers`` CPU slots; its workers import ``core`` from this checkout."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1", RAY_USAGE_STATS_ENABLED="0")
    ray = Path(sys.executable).with_name("ray")
    command = [str(ray), "start", "--head", "--block", f"--num-cpus={workers}", f"--port={LOCAL['ray']}"]
    spawn("ray", [*command, "--include-dashboard=false", "--disable-usage-stats", f"--temp-dir={RUN / 'ray'}"], env)
    return f"127.0.0.1:{LOCAL['ray']}"


def stop() -> list[str]:
    """End every process this script started (load balancer first, Redis and Ray last)."""
    order = {"haproxy": 0, "redis": 2, "ray": 2}
    names = sorted((p.stem for p in RUN.glob("*.pid")), key=lambda n: order.get(n, 1))
    return [name for name in names if kill(name)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    start_parser = commands.add_parser("start")
    start_parser.add_argument("--replicas", type=int, default=3)
    start_parser.add_argument("--no-redis", action="store_true", help="replicas with in-process caches only")
    commands.add_parser("stop")
    commands.add_parser("kill").add_argument("name")
    commands.add_parser("ray-start").add_argument("--workers", type=int, default=2)
    commands.add_parser("render-compose")
    args = parser.parse_args()
    if args.command == "start":
        print(f"Optiscope at {start(args.replicas, redis=not args.no_redis)} (HAProxy stats on :{LOCAL['stats']})")
    elif args.command == "stop":
        print("stopped:", ", ".join(stop()) or "nothing was running")
    elif args.command == "kill":
        print(f"{args.name}:", "ended" if kill(args.name) else "was not running")
    elif args.command == "ray-start":
        print(f"OPTISCOPE_RAY_ADDRESS={ray_start(args.workers)}")
    else:
        COMPOSE_CFG.write_text(render_compose())


if __name__ == "__main__":
    main()
