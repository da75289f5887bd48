"""The lab's default views, precomputed: ``python -m core.learning_rules.shipped`` reruns them (seed 0, one CPU
thread, about two minutes) into ``assets/learning_rules.json``, with the settings and package versions that made them.

A page paints these at once and reruns any of them live; :func:`record` is also the reducer a live run's states go
through, so shipped and live views draw from the same plain records.
"""

from __future__ import annotations

import dataclasses
import json
import platform
from collections.abc import Iterator
from functools import cache
from importlib.metadata import version
from pathlib import Path
from typing import Any

import torch

from core.data.digits import load_digits_split
from core.errors import OptiscopeError
from core.learning_rules.gates import BOOLEAN_TASKS, boolean_task
from core.learning_rules.noprop import METHODS
from core.learning_rules.noprop import run as noprop_run
from core.learning_rules.perturbation import ESTIMATORS, error_vs_dimension
from core.learning_rules.rrr import run as rrr_run
from core.learning_rules.training import RULES, RuleConfig
from core.learning_rules.training import run as rules_run
from core.runs import last_state

ASSET = Path(__file__).resolve().parents[2] / "assets" / "learning_rules.json"
SETTINGS = {
    "noprop": {"T": 10, "eta": 0.1, "steps": 60, "seed": 0},
    "rrr": {"task": "xor", "hidden": [3], "steps": 1000, "seed": 0, "n_runs": 20},
    "dims": {"dims": [10, 100, 1000, 10000], "n_samples": 10, "repeats": 100, "seed": 0},
    "rules": {"hidden": 32, "n_samples": 1, "sigma": 1e-4, "steps": 2000, "every": 50, "seed": 0},
}


def record(state: Any, *, digits: int = 5) -> dict[str, Any]:
    """A frozen state as JSON-ready numbers: tensors to (nested) lists, floats rounded to ``digits`` significant."""

    def plain(value: Any) -> Any:
        if isinstance(value, torch.Tensor):
            return plain(value.detach().cpu().tolist())
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        if isinstance(value, float):
            return float(f"{value:.{digits}g}")
        return value

    return {f.name: plain(getattr(state, f.name)) for f in dataclasses.fields(state)}


def _noprop() -> dict[str, list]:
    s = SETTINGS["noprop"]
    data = load_digits_split(0.2)
    out = {}
    for m in METHODS:
        states = list(noprop_run(data, method=m, T=s["T"], eta=s["eta"], steps=s["steps"], seed=s["seed"]))
        out[m] = [record(st) for st in states]
        for epoch in out[m][:-1]:
            del epoch["chain_z"]  # only the last epoch's chain is drawn: it keeps the file small
    return out


def _rrr() -> dict[str, Any]:
    s = SETTINGS["rrr"]
    x, y = boolean_task(s["task"])
    hidden = tuple(s["hidden"])
    one = [record(st) for st in rrr_run(x, y, hidden=hidden, steps=s["steps"], seed=s["seed"])]
    seeds = last_state(
        rrr_run(x, y, hidden=hidden, steps=s["steps"], n_runs=s["n_runs"], every=s["steps"], seed=s["seed"])
    )
    return {"run": one, "solved_at": seeds.solved_at.tolist()}


def _dims() -> dict[str, list]:
    s = SETTINGS["dims"]
    return {
        m: error_vs_dimension(m, dims=tuple(s["dims"]), n_samples=s["n_samples"], repeats=s["repeats"], seed=s["seed"])
        for m in ESTIMATORS
    }


def _rules() -> dict[str, list]:
    s = SETTINGS["rules"]
    data = load_digits_split(0.2)
    out = {}
    for rule in RULES:
        config = RuleConfig(rule=rule, hidden=s["hidden"], n_samples=s["n_samples"], sigma=s["sigma"])
        out[rule] = [record(st) for st in rules_run(data, config=config, steps=s["steps"], every=s["every"])]
    return out


def build() -> Iterator[tuple[str, Any]]:
    """Each part of the shipped views, in order: (name, its JSON-ready value)."""
    for name, make in {"noprop": _noprop, "rrr": _rrr, "dims": _dims, "rules": _rules}.items():
        yield name, make()


@cache
def load() -> dict[str, Any]:
    """The shipped views (read once per process)."""
    if not ASSET.exists():
        raise OptiscopeError(f"Expected the shipped views at {ASSET}; run `python -m core.learning_rules.shipped`")
    return json.loads(ASSET.read_text())


def main() -> None:
    torch.set_num_threads(1)
    out: dict[str, Any] = {
        "made_by": "python -m core.learning_rules.shipped",
        "settings": SETTINGS,
        "versions": {"python": platform.python_version(), "torch": version("torch")},
        "tasks": {k: t.label for k, t in BOOLEAN_TASKS.items()},
    }
    for name, value in build():
        out[name] = value
        print(f"{name}: done", flush=True)
    ASSET.write_text(json.dumps(out, separators=(",", ":")) + "\n")
    print(f"wrote {ASSET} ({ASSET.stat().st_size / 1024:.0f} KiB)")


if __name__ == "__main__":
    main()
