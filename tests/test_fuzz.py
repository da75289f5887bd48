"""Fuzz every public ``core`` entry point: bad input raises ``OptiscopeError`` or gives finite results.

Each entry point starts from a valid, small call assembled from its lab's fixtures (by parameter name,
core/README.md's one name per concept); hypothesis then corrupts one argument: out-of-range and
non-finite numbers, wrong types, NaN/inf inside tensors, wrong dtypes and wrong shapes. The call must
raise ``OptiscopeError`` or return results that are finite wherever the valid call's were. Any other
exception, a silent NaN, more than ``SECONDS`` of work or more than ``EXTRA_MEMORY`` bytes is a failure.

``OPTISCOPE_FUZZ_EXAMPLES`` sets the examples per entry point (default 6, for `make test`);
``OPTISCOPE_FUZZ_REPORT=path`` appends one JSON line per entry point (cases tried, failure) for
``bench/fuzz.py``, which writes bench/results/fuzz.md.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import inspect
import itertools
import json
import math
import os
import resource
import signal
from collections.abc import Callable, Iterator, Mapping
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from core.errors import OptiscopeError

CORE = Path(__file__).resolve().parent.parent / "core"
LABS = sorted(p.name for p in CORE.iterdir() if (p / "__init__.py").exists() and p.name != "data")
EXAMPLES = int(os.environ.get("OPTISCOPE_FUZZ_EXAMPLES", "6"))
REPORT = os.environ.get("OPTISCOPE_FUZZ_REPORT")
SECONDS = 10
EXTRA_MEMORY = 3 * 2**30
STATES = 3  # states drawn from a returned iterator


# --- Fixtures: one valid value per parameter name, per lab ----------------------------------------


def _cbo() -> dict[str, Any]:
    from core import cbo

    objective = cbo.OBJECTIVES["Rastrigin"]
    x = objective.sample(10, 2, seed=0)
    fx = objective(x)
    return {
        "objective": objective,
        "x0": x,
        "x": x,
        "fx": fx,
        "start": torch.tensor([2.0, 2.0]),
        "states": list(cbo.run(objective, x, steps=3)),
        "minimiser": torch.zeros(2),
        "consensus": torch.zeros(2),
        "weights": torch.softmax(-fx, 0),
        "alpha": 30.0,
        "lam": 1.0,
        "sigma": 1.0,
        "d": 2,
        "sigmas": [1.0],
        "ns": [10],
        "total_steps": 3,
        "steps": 3,
        "runs": 2,
        "n_particles": 10,
        "frames": 3,
    }


def _guidance() -> dict[str, Any]:
    from core import guidance

    denoiser = guidance.GaussianMixtureDenoiser()
    target = torch.tensor([0, 1])
    config = guidance.GuiderConfig(name="cfg", w=3.0)
    return {
        "denoiser": denoiser,
        "target": target,
        "labels": target,
        "guider": config,
        "config": config,
        "guiders": {"cfg": config},
        "ws": (1.0, 3.0),
        "n_samples": 4,
        "steps": 3,
        "n": 4,
        "num_classes": 8,
        "x": torch.randn(2, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0)),
        "pred_cond": torch.ones(2, 2),
        "pred_uncond": torch.zeros(2, 2),
        "w": 3.0,
        "states": list(guidance.run(denoiser, target, guider=config, steps=3)),
        "path": "does-not-exist",
        "root": "/nonexistent-root",
    }


def _cam() -> dict[str, Any]:
    import io

    from PIL import Image

    from core import zoo
    from core.cam import cf_cam
    from core.data.shapes import make_shapes

    images, labels, masks = make_shapes(2, seed=0)
    model = zoo.load("shapes-cnn").eval()
    png = io.BytesIO()
    Image.new("RGB", (16, 16), (200, 30, 30)).save(png, format="PNG")
    return {
        "model": model,
        "result": cf_cam(model=model, layer="block4", inputs=images, target=labels),
        "layer": "block4",
        "inputs": images,
        "target": labels,
        "masks": masks,
        "data": png.getvalue(),
        "activations": torch.rand(16, 4, 4),
        "steps": 4,
        "batch_size": 2,
    }


def _landscape() -> dict[str, Any]:
    from core import landscape as ll

    generator = torch.Generator().manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Tanh(), torch.nn.Linear(3, 2))
    with torch.no_grad():  # seeded weights, not the global RNG's
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=generator))
    inputs, target = torch.randn(8, 4, generator=generator), torch.randint(0, 2, (8,), generator=generator)
    loss_fn = ll.loss_fn_for(model, inputs, target)
    params = ll.params_of(model)
    directions = ll.random_directions(params, seed=0)
    return {
        "model": model,
        "inputs": inputs,
        "target": target,
        "loss_fn": loss_fn,
        "params": params,
        "direction": directions[0],
        "v": directions[0],
        "directions": directions,
        "path": [params, params],
        "center": params,
        "d1": directions[0],
        "d2": directions[1],
        "vector": torch.cat([p.reshape(-1) for p in params.values()]),
        "like": params,
        "nodes": torch.linspace(-1.0, 1.0, 10),
        "weights": torch.full((10,), 0.1),
        "criteria.n": 0.5,
        "k": 2,
        "m": 10,
        "n_runs": 1,
        "n_probes": 4,
        "n_bins": 50,
        "max_iter": 20,
        "coarse": 5,
        "n": 5,
        "chunk": 16,
    }


def _attention_svm() -> dict[str, Any]:
    from core import attention_svm as asvm

    problem, plane = asvm.make_problem(n=3, T=4, d=5, seed=0), asvm.make_problem(n=3, T=4, d=2, seed=0)
    states = list(asvm.run(problem, steps=3))
    generator = torch.Generator().manual_seed(0)
    return {
        "problem": problem,
        "states": states,
        "run": asvm.analyze(problem, states),
        "v": problem.v,
        "values": problem.values,
        "plane_geometry.problem": plane,
        "plane_geometry.run": asvm.analyze(plane, list(asvm.run(plane, steps=3))),
        "selected": torch.zeros(3, dtype=torch.long),
        "A": torch.randn(5, 5, generator=generator),
        "B": torch.randn(5, 5, generator=generator),
        "corr": np.array([0.5, 0.9]),
        "W": torch.eye(5),
        "X": problem.X,
        "z": problem.z,
        "y": problem.y,
        "steps": 3,
        "frames": (0, -1),
    }


def _bilevel() -> dict[str, Any]:
    from test_bilevel import fuzz_fixtures  # the lab's own tests keep its fixtures next to their checks

    return fuzz_fixtures()


def _seeded(*sizes: int) -> torch.nn.Sequential:
    """A small tanh MLP (float64) with weights from a local generator, not the global RNG."""
    generator = torch.Generator().manual_seed(0)
    layers = [torch.nn.Linear(a, b).double() for a, b in itertools.pairwise(sizes)]
    with torch.no_grad():
        for p in (p for layer in layers for p in layer.parameters()):
            p.copy_(torch.randn(p.shape, generator=generator, dtype=p.dtype))
    return torch.nn.Sequential(*itertools.chain(*((layer, torch.nn.Tanh()) for layer in layers)))[:-1]


def _blackbox() -> dict[str, Any]:
    from core import blackbox, zoo

    problem = blackbox.landscape("Quadratic", 2)
    comparison = blackbox.compare([problem], ["direct-search", "cbo"], seeds=(0,), budget=120)
    return {
        "problem": problem,
        "problems": [problem],
        "x0": problem.x0,
        "budget": 20,
        "compare.budget": 120,
        "goal": 1e-3,
        "n_particles": 10,
        "methods": ("direct-search", "cbo"),
        "seeds": (0,),
        "comparison": comparison,
        "name": "Quadratic",
        "d": 2,
        "n_samples": 16,
        "steps": 5,
        "make_problem.model": torch.nn.Identity(),
        "outer": lambda y: y.square().sum(-1),
        "lo": problem.lo,
        "hi": problem.hi,
        "model": zoo.load("digits-classifier").eval(),
        "target": 3,
    }


def _curvature() -> dict[str, Any]:
    from core import curvature

    problem = curvature.logistic_digits()
    grads = torch.randn(4, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    return {
        "params": [torch.nn.Parameter(torch.zeros(3))],
        "m": 4,
        "d": 6,
        "grads": grads,
        "objective": problem,
        "x0": torch.zeros(problem.d, dtype=torch.float64),
        "steps": 3,
    }


def _explanations() -> dict[str, Any]:
    inputs = torch.tensor([[0.5, -1.0, 2.0, 0.25]], dtype=torch.float64)
    w = torch.tensor([0.3, -0.2, 0.4], dtype=torch.float64)  # one value per feature (3 features, 4 inputs)
    return {
        "model": _seeded(4, 3, 2),
        "inputs": inputs,
        "method": "gxi",
        "neighbourhood": "gaussian",
        "loss": "squared",
        "target": 1,
        "targets": torch.tensor([1]),
        "features": torch.tensor([0, 0, 1, 2]),
        "n_samples": 12,
        "attributions": {"gxi": w, "vanilla": w.flip(0)},
        "perturbation_test.attributions": {"gxi": inputs, "vanilla": inputs.flip(1)},  # (N, inputs)
        "k": 2,
        "k_max": 3,
        "size": 4,
        "patch": 2,
        "channels": 1,
    }


def _exploration() -> dict[str, Any]:
    from core import exploration

    mdp = exploration.chain_mdp(n_states=6, segments=2, theta=(1.0, 0.9, 0.8))
    rewards = exploration.chain_rewards(n_states=6)
    policy = exploration.plan(mdp, mdp.theta, rewards, horizon=4).policy
    return {
        "mdp": mdp,
        "rewards": rewards,
        "theta": mdp.theta,
        "phi": mdp.phi,
        "transitions": mdp.transitions,
        "policy": policy,
        "horizon": 4,
        "horizons": (4,),
        "explorers": ("random", "ucrl_rfe"),
        "n_states": 6,
        "segments": 2,
        "chain_mdp.theta": (1.0, 0.9, 0.8),
        "d": 3,
        "episodes": 10,
        "steps": 3,
    }


def _learning_rules() -> dict[str, Any]:
    from core.data.digits import load_digits_split

    generator = torch.Generator().manual_seed(0)
    params = {
        "w1": torch.randn(3, 4, generator=generator),
        "b1": torch.zeros(3),
        "w2": torch.randn(2, 3, generator=generator),
        "b2": torch.zeros(2),
    }
    signs = torch.tensor([[-1.0, -1.0], [-1.0, 1.0], [1.0, -1.0], [1.0, 1.0]])
    slope = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
    return {
        "method": "weight",
        "noprop_run.method": "noprop",
        "dims": (4, 8),
        "n_samples": 2,
        "repeats": 2,
        "loss": lambda p: p @ slope,
        "estimate.params": torch.zeros(3, dtype=torch.float64),
        "params": params,
        "inputs": torch.randn(5, 4, generator=generator),
        "target": torch.tensor([0, 1, 1, 0, 1]),
        "w": torch.tensor([1.0, 0.0]),
        "x": torch.tensor([0.0, 1.0]),
        "c": torch.tensor([1.0]),
        "name": "xor",
        "weights": (torch.tensor([[1.0, 1.0, -1.0]]),),
        "data": load_digits_split(0.2),
        "T": 2,
        "width": 8,
        "steps": 3,
        "rrr_run.inputs": signs,
        "targets": (signs[:, :1] * signs[:, 1:]).neg(),  # XOR in ±1
        "d": 10,
    }


def _optimizer_race() -> dict[str, Any]:
    from core import optimizer_race as race

    states = list(race.run("digits_softmax", "nadamw_tuned", steps=3))
    times = {"A": {"w1": 1.0, "w2": 2.0}, "B": {"w1": 2.0, "w2": 1.5}}
    return {
        "workload": "digits_softmax",
        "optimizer": "nadamw_tuned",
        "steps": 3,
        "lrs": (0.01,),
        "seeds": (0,),
        "workloads": ("digits_softmax",),
        "optimizers": ("nadamw_tuned",),
        "times": times,
        "taus": (1.0, 2.0),
        "studies": race.load_race()[:3],
        "targets": {name: w.target for name, w in race.WORKLOADS.items()},
        "states": states,
        "target": race.WORKLOADS["digits_softmax"].target,
    }


def _privacy() -> dict[str, Any]:
    from core import privacy

    return {
        "epsilon": 1.0,
        "delta": 1e-5,
        "rounds": 10,
        "restart": 5,
        "calibration": privacy.calibrate(1.0, 1e-5, rounds=10, restart=5),
        "full": 2,
        "difference": 8,
        "name": "unit-logistic",
        "n_samples": 100,
        "n": 10_000,
        "d": 21,
        "model": "logistic",
        "data": privacy.load("unit-logistic", n_samples=100),
        "steps": 3,
    }


def _structured() -> dict[str, Any]:
    from core import structured

    coordinate = structured.coordinate_problem("quadratic-2d")
    constrained = structured.constrained_problem("hs28")
    composite = structured.composite_problem("tv-denoising")
    return {
        "coordinate_problem.name": "least-squares",
        "n": 10,
        "d": 5,
        "constrained_problem.name": "hs28",
        "composite_problem.name": "tv-denoising",
        "coordinate_descent.problem": coordinate,
        "coordinate_descent.x0": coordinate.x0,
        "sketched_newton.problem": constrained,
        "sketched_newton.x0": constrained.x0,
        "gradient_sliding.problem": composite,
        "gradient_sliding.x0": composite.x0,
    }


def _diffusion_training() -> dict[str, Any]:
    from core import diffusion_training as dt
    from core.guidance import GaussianMixtureDenoiser

    mixture = GaussianMixtureDenoiser()
    x = torch.randn(4, 2, generator=torch.Generator().manual_seed(0))
    return {
        "model": dt.EDMMLP(width=8, w_range=(1.0, 5.0)),
        "mixture": mixture,
        "config": dt.TrainConfig(batch_size=16),
        "stages": [(dt.TrainConfig(batch_size=16), 2)],
        "problem": dt.make_problem(mixture, n_samples=10, n_test=10),
        "kernel_curve.steps": [1.0, 10.0, math.inf],
        "x": x,
        "labels": torch.arange(4),
        "width": 16,
        "steps": 3,
        "n_samples": 10,
        "n_test": 10,
    }


FIXTURES: dict[str, Callable[[], dict[str, Any]]] = {
    "cbo": _cbo,
    "guidance": _guidance,
    "cam": _cam,
    "landscape": _landscape,
    "attention_svm": _attention_svm,
    "bilevel": _bilevel,
    "diffusion_training": _diffusion_training,
    "blackbox": _blackbox,
    "curvature": _curvature,
    "explanations": _explanations,
    "exploration": _exploration,
    "learning_rules": _learning_rules,
    "optimizer_race": _optimizer_race,
    "privacy": _privacy,
    "structured": _structured,
}
# A fixture named "function.parameter" is used by that function only (where a name means something else there).
# Validated records that entry points return (never built from user input).
RECORDS = {"attention_svm.Run": "analyze's output"}
UNFUZZED = {"device"}  # torch's own domain: torch.device("nonsense") raises its RuntimeError naming the string


@cache
def fixtures(lab: str) -> dict[str, Any]:
    return FIXTURES[lab]()


def entry_points() -> list[str]:
    """``lab.name`` of every public function and class that takes input: result records (dataclasses without
    ``__post_init__`` validation) are not entry points, validated configs are."""
    names = []
    for lab in LABS:
        try:
            package = importlib.import_module(f"core.{lab}")
        except Exception:  # the lab is broken mid-edit: its own tests say so
            continue
        for name in getattr(package, "__all__", []):
            obj = getattr(package, name, None)
            record = dataclasses.is_dataclass(obj) and not hasattr(obj, "__post_init__")
            if (inspect.isfunction(obj) or inspect.isclass(obj)) and not record and f"{lab}.{name}" not in RECORDS:
                names.append(f"{lab}.{name}")
    return names


def resolve(entry: str) -> tuple[Callable, dict[str, Any]]:
    """The entry point and its valid keyword arguments (required ones from fixtures, options at their default).

    A lab without fixtures (test_every_lab_has_fixtures fails for it) is fuzzed where its options suffice.
    """
    lab, name = entry.split(".")
    function = getattr(importlib.import_module(f"core.{lab}"), name)
    known = fixtures(lab) if lab in FIXTURES else {}
    call = {}
    for param in inspect.signature(function).parameters.values():
        if param.kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD):
            continue
        if f"{name}.{param.name}" in known:
            call[param.name] = known[f"{name}.{param.name}"]
        elif param.name in known:
            call[param.name] = known[param.name]
        elif param.default is inspect.Parameter.empty:
            pytest.fail(f"{entry}: no fixture for its required parameter `{param.name}` in tests/test_fuzz.py")
        elif param.default is not None:
            call[param.name] = param.default
    return function, call


# --- Corruptions -----------------------------------------------------------------------------------


NUMBERS = (math.nan, math.inf, -math.inf, -1.0, 0.0, 1e300, -1e-300, 2**62)


def corruptions(value: Any) -> st.SearchStrategy[Callable[[], Any]] | None:
    """A strategy of thunks that build a corrupted ``value`` (built inside the checked call), or None.

    Within the issue's scope: out-of-range and non-finite numbers (a float where an int belongs included),
    unknown strings, NaN/inf, wrong dtypes and wrong shapes in tensors. Not: other Python types (a list
    for a tensor, None for a number), which fail with Python's own TypeError/AttributeError.
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        numbers = (
            st.sampled_from(NUMBERS) | st.floats(allow_nan=True, allow_infinity=True) | st.integers(-(10**6), 10**12)
        )
        return numbers.map(lambda bad: lambda: bad)
    if isinstance(value, str):
        return (st.text(max_size=12) | st.just("x" * 1000)).map(lambda bad: lambda: bad)
    if isinstance(value, torch.Tensor):
        return st.sampled_from(TENSOR_CORRUPTIONS).map(lambda corrupt: lambda: corrupt(value))
    if isinstance(value, Mapping) and value:
        return st.sampled_from(sorted(value)).flatmap(lambda key: _item(value, key))
    if isinstance(value, (list, tuple)) and value and not isinstance(value[0], (torch.nn.Module,)):
        return st.integers(0, len(value) - 1).flatmap(lambda i: _element(value, i))
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = [f.name for f in dataclasses.fields(value) if corruptions(getattr(value, f.name)) is not None]
        return st.sampled_from(fields).flatmap(lambda f: _field(value, f)) if fields else None
    return None


def _element(value: list | tuple, i: int) -> st.SearchStrategy[Callable[[], Any]] | None:
    inner = corruptions(value[i])
    if inner is None:
        return st.just(lambda: type(value)([]))  # an empty sequence instead
    return inner.map(lambda bad: lambda: type(value)([*value[:i], bad(), *value[i + 1 :]]))


def _item(value: Mapping, key: Any) -> st.SearchStrategy[Callable[[], Any]]:
    inner = corruptions(value[key])
    if inner is None:
        return st.just(lambda: {k: v for k, v in value.items() if k != key})  # the entry missing instead
    return inner.map(lambda bad: lambda: {**value, key: bad()})


def _field(value: Any, name: str) -> st.SearchStrategy[Callable[[], Any]]:
    # dataclasses.replace re-runs a config's __post_init__: refusing the bad field there is a pass
    return corruptions(getattr(value, name)).map(lambda bad: lambda: dataclasses.replace(value, **{name: bad()}))


def _inject(t: torch.Tensor, bad: float) -> torch.Tensor:
    out = t.detach().clone()
    if out.is_floating_point() and out.numel():
        out.view(-1)[out.numel() // 2] = bad
    elif out.numel():
        out = out.double()
        out.view(-1)[0] = bad
    return out


TENSOR_CORRUPTIONS: tuple[Callable[[torch.Tensor], Any], ...] = (
    lambda t: _inject(t, math.nan),
    lambda t: _inject(t, math.inf),
    lambda t: _inject(t, 1e30),
    lambda t: _inject(t, -(2**40)),  # an out-of-range label or index, as a float
    lambda t: t.to(torch.int64) if t.is_floating_point() else t.to(torch.float32),
    lambda t: t.to(torch.bool),
    lambda t: t.to(torch.float16),
    lambda t: t.to(torch.complex64),
    lambda t: t.unsqueeze(0),
    lambda t: t.reshape(-1),
    lambda t: t[:0],
    lambda t: t[..., :1],
    lambda t: torch.tensor(1.0),
)


# --- The check -----------------------------------------------------------------------------------


class Overrun(Exception):
    """The call ran longer than SECONDS: work without a budget."""


@contextlib.contextmanager
def bounded(seconds: int = SECONDS, extra_memory: int = EXTRA_MEMORY) -> Iterator[None]:
    """At most ``seconds`` of wall time and ``extra_memory`` more address space (an allocation past it fails)."""

    def overrun(*_: Any) -> None:
        raise Overrun(f"ran past {seconds} s")

    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    used = int(Path("/proc/self/statm").read_text().split()[0]) * resource.getpagesize()
    previous = signal.signal(signal.SIGALRM, overrun)
    resource.setrlimit(resource.RLIMIT_AS, (used + extra_memory, hard))
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def call(function: Callable, kwargs: dict[str, Any]) -> Any:
    """Call, draw up to STATES states from a returned iterator, and give back what can be checked."""
    result = function(**kwargs)
    if isinstance(result, Iterator):
        return list(itertools.islice(result, STATES))
    return result


def non_finite(value: Any, path: str = "", depth: int = 0) -> Iterator[str]:
    """Paths of the non-finite numbers in ``value`` (tensors, arrays, floats, records, containers)."""
    if depth > 4 or isinstance(value, (torch.nn.Module, str, bytes)):
        return
    if isinstance(value, torch.Tensor):
        if (value.is_floating_point() or value.is_complex()) and not torch.isfinite(value.detach()).all():
            yield path
    elif isinstance(value, np.ndarray):
        if value.dtype.kind in "fc" and not np.isfinite(value).all():
            yield path
    elif isinstance(value, float):
        if not math.isfinite(value):
            yield path
    elif isinstance(value, Mapping):
        for key, item in itertools.islice(value.items(), 50):
            yield from non_finite(item, f"{path}[{key!r}]", depth + 1)
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value[:50]):
            yield from non_finite(item, f"{path}[{i}]", depth + 1)
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        for field in dataclasses.fields(value):
            yield from non_finite(getattr(value, field.name), f"{path}.{field.name}", depth + 1)


@cache
def baseline(entry: str) -> frozenset[str]:
    """The valid call's non-finite paths (NaN by design, e.g. a skipped branch's norms).

    A valid call that needs what the fixtures cannot give (a pipeline folder) may raise OptiscopeError:
    then the fuzz checks only that no other exception escapes.
    """
    function, kwargs = resolve(entry)
    with bounded():
        try:
            return frozenset(non_finite(call(function, kwargs)))
        except OptiscopeError:
            return frozenset()


def outcome(entry: str, name: str, build: Callable[[], Any]) -> str | None:
    """None when the corrupted call raised OptiscopeError or returned finite results; else what went wrong."""
    function, kwargs = resolve(entry)
    try:
        with bounded():
            bad = build()  # built inside: a config's __post_init__ may refuse it (a pass)
            result = call(function, {**kwargs, name: bad})
    except OptiscopeError:
        return None
    except Exception as err:  # any other exception is the finding
        return f"{type(err).__name__}: {str(err)[:200]}"
    silent = sorted(set(non_finite(result)) - baseline(entry) - echoed_inf(function, name, bad))
    return f"returned non-finite {silent[:5]}" if silent else None


def echoed_inf(function: Callable, name: str, bad: Any) -> set[str]:
    """A validated config that accepts ``inf`` keeps it as given: a documented "off" switch (privacy's ε = inf:
    no noise), not a computed non-finite result. NaN is never such a switch."""
    return {f".{name}"} if inspect.isclass(function) and isinstance(bad, float) and bad == math.inf else set()


def _record(entry: str, tried: int, failure: str | None) -> None:
    if REPORT:
        with open(REPORT, "a") as report:
            report.write(json.dumps({"entry": entry, "tried": tried, "failure": failure}) + "\n")


ENTRY_POINTS = entry_points()


@pytest.mark.parametrize("entry", ENTRY_POINTS)
def test_bad_input_raises_optiscope_error_or_gives_finite_results(entry: str) -> None:
    function, kwargs = resolve(entry)
    baseline(entry)
    targets = {
        name: strategy
        for name, value in kwargs.items()
        if name not in UNFUZZED and (strategy := corruptions(value)) is not None
    }
    if not targets:
        pytest.skip(f"{entry} takes nothing this fuzzer can corrupt (a model or a callable only)")
    tried, failure = 0, None

    @settings(  # no shrinking: a failure is reported as found (a shrink could rerun a 10 s overrun many times)
        phases=[Phase.explicit, Phase.generate],
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    @given(data=st.data())
    def check(data: st.DataObject) -> None:
        nonlocal tried, failure
        name = data.draw(st.sampled_from(sorted(targets)), label="argument")
        build = data.draw(targets[name], label="corruption")
        tried += 1
        problem = outcome(entry, name, build)
        if problem:
            failure = f"{name}: {problem}"
        assert problem is None, f"{entry}, argument `{name}`: {problem}"

    try:
        check()
    finally:
        _record(entry, tried, failure)


def test_every_lab_has_fixtures_and_entry_points() -> None:
    missing = set(LABS) - set(FIXTURES)
    assert not missing, f"labs without fuzz fixtures: {sorted(missing)}"
    assert len(ENTRY_POINTS) >= 20, ENTRY_POINTS


def test_the_checks_catch_what_they_claim() -> None:
    """A NaN-returning function, a TypeError and an unbounded loop are failures; OptiscopeError is not."""
    assert list(non_finite({"a": [torch.tensor([1.0, math.nan])], "b": 1.0})) == ["['a'][0]"]
    with pytest.raises(Overrun), bounded(seconds=1):
        while True:
            pass
    with pytest.raises(MemoryError), bounded(extra_memory=2**28):
        bytearray(2**30)
