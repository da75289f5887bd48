"""Whole races and the baseline's calibration, as iterators of progress states (for background jobs and the bench).

``python -m core.optimizer_race.studies`` reruns the default race into ``assets/optimizer_race.json`` (with the
code, seeds and package versions that made it); ``--calibrate`` reruns the target-setting NadamW grid.
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from importlib.metadata import version
from pathlib import Path

import numpy as np
import torch

from core.errors import OptiscopeError, check_budget, check_choice, check_range, check_seed
from core.optimizer_race.optimizers import OPTIMIZERS, RACE
from core.optimizer_race.race import run
from core.optimizer_race.scoring import median_time
from core.optimizer_race.workloads import CALIBRATION_LRS, TARGET_RECIPE, WORKLOADS

ASSET = Path(__file__).resolve().parents[2] / "assets" / "optimizer_race.json"
SEEDS = (0, 1, 2)
MAX_LR = 10.0  # a calibration grid's ceiling (AlgoPerf's NadamW grids stop far below it)
MAX_STUDIES = 200  # a full race is 11 optimizers × 4 workloads × 3 seeds = 132 studies (~4 min of CPU)
PACKAGES = ("torch", "prodigyopt", "dadaptation", "schedulefree", "dog-optimizer", "mechanic-pytorch")


@dataclass(frozen=True)
class Study:
    """One finished study: its evaluation curve (never NaN) and where it diverged, if it did."""

    workload: str
    optimizer: str
    seed: int
    steps: tuple[int, ...]
    seconds: tuple[float, ...]
    values: tuple[float, ...]
    beliefs: tuple[float | None, ...]
    diverged_at: int | None = None
    lr: float | None = None  # the base learning rate when it is not the optimizer's frozen one

    def __post_init__(self) -> None:
        check_choice("workload", self.workload, tuple(WORKLOADS))
        check_choice("optimizer", self.optimizer, tuple(OPTIMIZERS))
        check_seed(self.seed)
        columns = {"steps": self.steps, "seconds": self.seconds, "values": self.values, "beliefs": self.beliefs}
        if len({len(c) for c in columns.values()}) != 1:
            raise OptiscopeError(f"Expected a study's columns of one length, but got {_lengths(columns)}")
        for name, column in columns.items():
            _check_finite(name, [v for v in column if v is not None or name != "beliefs"])

    def time_to(self, target: float, clock: str = "steps") -> float:
        """This study's time to ``target`` on ``clock`` (∞ if it never reaches it)."""
        check_choice("clock", clock, ("steps", "seconds"))
        clocks = self.steps if clock == "steps" else self.seconds
        hit = next((t for t, v in zip(clocks, self.values, strict=True) if v <= target), math.inf)
        return float(hit)


def _lengths(columns: Mapping[str, Sequence]) -> dict[str, int]:
    return {name: len(column) for name, column in columns.items()}


def _check_finite(name: str, numbers: Sequence) -> None:
    try:
        finite = all(math.isfinite(float(v)) for v in numbers)
    except (TypeError, ValueError):
        finite = False
    if not finite:
        raise OptiscopeError(f"Expected `{name}` to hold finite numbers, but got {tuple(numbers)!r:.80}")


@dataclass(frozen=True)
class RaceProgress:
    """The studies finished so far out of ``total``."""

    step: int
    total: int
    studies: tuple[Study, ...]

    @property
    def fraction(self) -> float:
        return self.step / max(1, self.total)


def study(workload: str, optimizer: str, *, seed: int = 0, lr: float | None = None, steps: int | None = None) -> Study:
    """Run one study to its end and keep its curve."""
    return study_from_states(
        workload, optimizer, seed, list(run(workload, optimizer, seed=seed, lr=lr, steps=steps)), lr=lr
    )


def study_from_states(workload: str, optimizer: str, seed: int, states: Sequence, *, lr: float | None = None) -> Study:
    """A :class:`Study` from the :class:`RaceState` list of a (possibly unfinished) run; a diverged state ends it."""
    last = states[-1]
    curve = states[:-1] if last.diverged else states
    columns = {
        "steps": tuple(s.step for s in curve),
        "seconds": tuple(round(s.seconds, 5) for s in curve),
        "values": tuple(s.value for s in curve),
        "beliefs": tuple(s.lr_belief for s in curve),
    }
    return Study(workload, optimizer, seed, **columns, diverged_at=last.step if last.diverged else None, lr=lr)


def race(
    *, workloads: Sequence[str] = tuple(WORKLOADS), optimizers: Sequence[str] = RACE, seeds: Sequence[int] = SEEDS
) -> Iterator[RaceProgress]:
    """Every (workload, optimizer, seed) study, workload by workload; one progress state per finished study."""
    for key in workloads:
        check_choice("workload", key, tuple(WORKLOADS))
    for key in optimizers:
        check_choice("optimizer", key, tuple(OPTIMIZERS))
    seeds = [check_seed(s) for s in seeds]
    total = len(workloads) * len(optimizers) * len(seeds)
    check_budget("studies", total, MAX_STUDIES)
    return _race_loop(workloads, optimizers, seeds, total)


def _race_loop(workloads, optimizers, seeds, total: int) -> Iterator[RaceProgress]:
    done: list[Study] = []
    yield RaceProgress(0, total, ())
    for w in workloads:
        for o in optimizers:
            for s in seeds:
                done.append(study(w, o, seed=s))
                yield RaceProgress(len(done), total, tuple(done))


def race_times(
    studies: Sequence[Study],
    targets: Mapping[str, float],
    *,
    clock: str = "steps",
    optimizers: Sequence[str] = (),
    workloads: Sequence[str] = (),
) -> dict[str, dict[str, float]]:
    """``{optimizer: {workload: median over seeds of the time to target}}`` for the scoring functions.

    Pairs of ``optimizers`` × ``workloads`` without a finished study count as misses (∞): the provisional
    times of a race still running.
    """
    check_choice("clock", clock, ("steps", "seconds"))
    lanes = [
        (check_choice("optimizer", o, tuple(OPTIMIZERS)), check_choice("workload", w, tuple(WORKLOADS)))
        for o in optimizers
        for w in workloads
    ]
    per: dict[tuple[str, str], list[float]] = {lane: [] for lane in lanes}
    if not all(isinstance(s, Study) for s in studies):
        raise OptiscopeError(f"Expected `studies` to hold Study records, but got {studies!r:.80}")
    if missing := {s.workload for s in studies} - set(targets):
        raise OptiscopeError(f"Expected `targets` for every workload of `studies`, but got none for {sorted(missing)}")
    _check_finite("targets", [targets[s.workload] for s in studies])
    for s in studies:
        per.setdefault((s.optimizer, s.workload), []).append(s.time_to(targets[s.workload], clock))
    times: dict[str, dict[str, float]] = {}
    for (o, w), ts in per.items():
        times.setdefault(o, {})[w] = median_time(ts or [math.inf])
    return times


@dataclass(frozen=True)
class Calibration:
    """The target-setting grid so far: the median over seeds of the best validation metric at each LR."""

    step: int
    total: int
    workload: str
    lrs: tuple[float, ...]
    median_best: tuple[float, ...]  # NaN-free: ∞ for an LR not run yet or whose studies all diverged

    @property
    def fraction(self) -> float:
        return self.step / max(1, self.total)

    @property
    def best_lr(self) -> float:
        return self.lrs[int(np.argmin(self.median_best))]

    @property
    def target(self) -> float:
        return min(self.median_best)


def calibrate(
    workload: str, *, lrs: Sequence[float] = CALIBRATION_LRS, seeds: Sequence[int] = SEEDS
) -> Iterator[Calibration]:
    """AlgoPerf's target rule, scaled down: NadamW over an LR grid for step_hint steps; one state per LR done."""
    check_choice("workload", workload, tuple(WORKLOADS))
    if not lrs:
        raise OptiscopeError("Expected at least one learning rate in `lrs`, but got none")
    check_budget("studies", len(lrs) * len(seeds), MAX_STUDIES)
    lrs = tuple(check_range("lrs", lr, 1e-8, MAX_LR) for lr in lrs)
    seeds = tuple(check_seed(s) for s in seeds)
    return _calibrate_loop(workload, lrs, seeds)


def _calibrate_loop(workload: str, lrs: tuple[float, ...], seeds: tuple[int, ...]) -> Iterator[Calibration]:
    hint, best = WORKLOADS[workload].step_hint, [math.inf] * len(lrs)
    for i, lr in enumerate(lrs):
        runs = [study(workload, "nadamw_tuned", seed=s, lr=lr, steps=hint) for s in seeds]
        best[i] = median_time([min(r.values) if r.diverged_at is None else math.inf for r in runs])
        yield Calibration(i + 1, len(lrs), workload, lrs, tuple(best))


def save_race(studies: Sequence[Study], path: Path = ASSET) -> None:
    """Write the race with what made it: the command, the seeds, the package versions and the targets."""
    meta = {
        "code": "python -m core.optimizer_race.studies",
        "seeds": list(SEEDS),
        "packages": {name: version(name) for name in PACKAGES},
        "threads": torch.get_num_threads(),
        "targets": {k: {"strict": w.target, "relaxed": w.relaxed_target} for k, w in WORKLOADS.items()},
        "target_recipe": TARGET_RECIPE,
    }
    path.write_text(json.dumps(meta | {"studies": [asdict(s) for s in studies]}, separators=(",", ":")) + "\n")


def load_race(*, path: Path = ASSET) -> tuple[Study, ...]:
    """The shipped default race."""
    raw = json.loads(path.read_text())["studies"]
    return tuple(Study(**{k: tuple(v) if isinstance(v, list) else v for k, v in s.items()}) for s in raw)


def _main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calibrate", nargs="*", metavar="WORKLOAD", help="rerun the target-setting grid, print it")
    parser.add_argument("--workloads", nargs="+", default=list(WORKLOADS), help="race only these workloads")
    parser.add_argument("--optimizers", nargs="+", default=list(RACE), help="race only these optimizers")
    parser.add_argument("--out", type=Path, default=ASSET, help="where to write the race (JSON)")
    args = parser.parse_args()
    if args.calibrate is not None:
        for key in args.calibrate or WORKLOADS:
            *_, grid = calibrate(key)
            print(f"{key}: best lr {grid.best_lr:g}, target {grid.target!r}, grid {grid.median_best}")
        return
    *_, done = race(workloads=args.workloads, optimizers=args.optimizers)
    save_race(done.studies, args.out)
    print(f"wrote {len(done.studies)} studies to {args.out}")


if __name__ == "__main__":
    torch.set_num_threads(1)
    _main()
