"""Cold first screens: the CPU and wall seconds of each lab's default view, its first render in a fresh process.

Each lab runs in its own process (cold caches: no cached model, figure or result), one intra-op thread, the
router's gallery rendered first so that imports are not counted. CPU seconds (``time.process_time``, every
thread of the process) are the number that matters on a shared machine; wall seconds vary with its load.
A lab's background job or live player may still be working after its first render: that is not counted.

    python bench/first_screens.py [--quick] [slug ...]   # the results file holds the labs of the last full run
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from _common import publish  # noqa: E402

from pages._labs import LABS  # noqa: E402

TARGET_S = 5.0
# Runs in the child process: render the gallery (imports, router), then time the lab's first render.
CHILD = """
import importlib, importlib.util, json, sys, time
from streamlit.testing.v1 import AppTest
from pages._labs import LABS
if sys.argv[2] == "warm":
    for lab in LABS:
        if importlib.util.find_spec(f"core.{lab.slug}"):  # a lab being written may not have one yet
            importlib.import_module(f"core.{lab.slug}")
at = AppTest.from_file("app.py", default_timeout=600)
at.run()
cpu, wall = time.process_time(), time.perf_counter()
at.switch_page(f"pages/{sys.argv[1]}.py").run()
cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
charts = len(at.get("plotly_chart"))
print(json.dumps({"cpu": cpu, "wall": wall, "charts": charts, "errors": len(at.exception) + len(at.error)}))
"""


def measure(slug: str, imports: str) -> dict:
    """One lab's first render in a fresh process: cold, or with every lab's ``core`` package imported (``warm``).

    The router's background import of every lab (app.py) is off: cold is the worst case, a visitor who reaches
    the lab before that import does, and no other lab's import is counted on its clock.
    """
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "OPTISCOPE_DEVICE": "cpu"}
    env["OPTISCOPE_PREIMPORT"] = "0"
    env.update({"HF_HUB_OFFLINE": "1", "OPTISCOPE_REDIS_URL": ""})
    done = subprocess.run(
        [sys.executable, "-c", CHILD, slug, imports], cwd=ROOT, env=env, capture_output=True, text=True, timeout=900
    )
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        print(done.stderr[-500:], file=sys.stderr)
        return {"cpu": float("nan"), "wall": float("nan"), "charts": 0, "errors": 1}
    return json.loads(lines[-1])


def row(slug: str, cold: dict, warm: dict) -> str:
    ok = cold["cpu"] < TARGET_S and cold["charts"] and not cold["errors"]
    return (
        f"| {slug} | {cold['cpu']:.2f} | {cold['wall']:.2f} | {warm['cpu']:.2f} | {warm['wall']:.2f} | "
        f"{cold['charts']} | {cold['errors']} | {'yes' if ok else '**no**'} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="print only; do not overwrite the results file")
    parser.add_argument("slugs", nargs="*", help="labs to measure (default: every lab)")
    args = parser.parse_args()
    slugs = args.slugs or [lab.slug for lab in LABS]
    lines = [
        f"# Cold first screens ({os.cpu_count()} CPUs, OMP_NUM_THREADS=1, AppTest, one fresh process per lab)",
        "",
        f"Target: the default view's first render under {TARGET_S:g} CPU-s, with a chart and no error. *Cold*: a",
        "fresh server's first visit (the lab's imports included); *imports warm*: every lab's `core` package",
        "imported before (a server that has served other labs): what the view itself computes.",
        "",
        "| lab | cold CPU s | cold wall s | imports warm CPU s | imports warm wall s | charts | errors | cold < 5 CPU-s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for slug in slugs:
        lines.append(row(slug, measure(slug, "cold"), measure(slug, "warm")))
        print(lines[-1], flush=True)
    publish("first_screens", lines, quick=args.quick)


if __name__ == "__main__":
    main()
