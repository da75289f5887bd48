"""The contract of core/README.md, checked mechanically on every lab package under ``core/``.

Labs are discovered (every subpackage of ``core`` but ``data``), so a lab added later is checked too;
every test is parametrized by lab, so a failure names it. A lab whose ``run`` has no example call in
``RUN_EXAMPLES`` fails until one is added: the eager-validation checks need a valid call to start from.
"""

from __future__ import annotations

import ast
import dataclasses
import importlib
import inspect
import math
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import torch

from core.errors import OptiscopeError

CORE = Path(__file__).resolve().parent.parent / "core"
LABS = sorted(p.name for p in CORE.iterdir() if (p / "__init__.py").exists() and p.name != "data")
MAX_EXPORTS = 15
MAX_POSITIONAL = 3  # subject, data (and at most one more input); every option is keyword-only
ARXIV = re.compile(r"https?://arxiv\.org/abs/\d{4}\.\d{4,5}")
# Values no option of these names accepts (core/README.md: one name per concept).
INVALID = {
    "steps": (0, -1, 2.5),
    "every": (0, -1),
    "n_particles": (0, -1),
    "n_samples": (0, -1),
    "d": (0, -1),
    "lr": (-1.0, math.inf),
    "dt": (0.0, -1.0, math.inf),
}


def lab_package(lab: str) -> ModuleType:
    return importlib.import_module(f"core.{lab}")


def public(lab: str) -> dict[str, Any]:
    package = lab_package(lab)
    return {name: getattr(package, name) for name in getattr(package, "__all__", [])}


def test_labs_are_discovered() -> None:
    assert {"cbo", "guidance", "cam", "landscape", "attention_svm"} <= set(LABS)


# --- Package surface ----------------------------------------------------------------------------


@pytest.mark.parametrize("lab", LABS)
def test_package_docstring_cites_its_paper(lab: str) -> None:
    doc = lab_package(lab).__doc__ or ""
    assert ARXIV.search(doc), f"core/{lab}/__init__.py docstring has no arxiv.org/abs link: {doc[:120]!r}"


@pytest.mark.parametrize("lab", LABS)
def test_all_lists_entry_points_only(lab: str) -> None:
    package = lab_package(lab)
    assert hasattr(package, "__all__"), f"core/{lab}/__init__.py has no __all__"
    missing = [name for name in package.__all__ if not hasattr(package, name)]
    assert not missing, f"core.{lab}.__all__ names what the package lacks: {missing}"
    assert len(package.__all__) <= MAX_EXPORTS, (
        f"core.{lab} exports {len(package.__all__)} names (> {MAX_EXPORTS}): {sorted(package.__all__)}"
    )
    # a submodule in __all__ hides its entry points from every check here (run, keyword-only options, docstrings)
    modules = [name for name in package.__all__ if inspect.ismodule(getattr(package, name))]
    assert not modules, f"core.{lab} exports submodules, not entry points: {modules}"


def _has_own_docstring(obj: Any) -> bool:
    doc = inspect.getdoc(obj) if not inspect.isclass(obj) else obj.__dict__.get("__doc__")
    if not doc or not doc.strip():
        return False
    # a dataclass without a docstring gets "Name(field: type, ...)" generated
    return not (dataclasses.is_dataclass(obj) and doc.startswith(f"{obj.__name__}("))


@pytest.mark.parametrize("lab", LABS)
def test_public_names_have_docstrings(lab: str) -> None:
    documented = (inspect.isfunction, inspect.isclass, inspect.ismodule)
    undocumented = [
        name
        for name, obj in public(lab).items()
        if any(kind(obj) for kind in documented) and not _has_own_docstring(obj)
    ]
    assert not undocumented, f"core.{lab}: public names without a docstring: {undocumented}"


def _positional(function: Callable) -> list[inspect.Parameter]:
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return [p for p in inspect.signature(function).parameters.values() if p.kind in kinds]


@pytest.mark.parametrize("lab", LABS)
def test_options_are_keyword_only(lab: str) -> None:
    """An option (a parameter with a default) is never positional, and inputs are at most three."""
    offenders = []
    for name, obj in public(lab).items():
        if not inspect.isfunction(obj):
            continue
        positional = _positional(obj)
        with_default = [p.name for p in positional if p.default is not inspect.Parameter.empty]
        if with_default or len(positional) > MAX_POSITIONAL:
            offenders.append(f"{name}({', '.join(p.name for p in positional)}, ...)")
    assert not offenders, f"core.{lab}: options that can be passed positionally: {offenders}"


# --- Source rules -------------------------------------------------------------------------------


def _sources(lab: str | None) -> list[Path]:
    """The .py files of one lab, or (``None``) those of core outside every lab package."""
    if lab is not None:
        return sorted((CORE / lab).rglob("*.py"))
    return sorted(p for p in CORE.rglob("*.py") if p.relative_to(CORE).parts[0] not in LABS)


def _violations(source: str, where: str) -> Iterator[str]:
    for node in ast.walk(ast.parse(source, filename=where)):
        if isinstance(node, ast.Import) and any(a.name.split(".")[0] == "streamlit" for a in node.names):
            yield f"{where}:{node.lineno} imports streamlit"
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "streamlit":
            yield f"{where}:{node.lineno} imports streamlit"
        if isinstance(node, ast.Raise) and node.exc is not None:
            raised = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
            if isinstance(raised, ast.Name) and raised.id == "ValueError":
                yield f"{where}:{node.lineno} raises ValueError (use core.errors.OptiscopeError)"


@pytest.mark.parametrize("lab", [*LABS, None], ids=[*LABS, "core-shared"])
def test_no_streamlit_and_no_bare_valueerror(lab: str | None) -> None:
    found = [v for path in _sources(lab) for v in _violations(path.read_text(), str(path.relative_to(CORE.parent)))]
    assert not found, "\n".join(found)


def test_source_rules_catch_what_they_claim() -> None:
    """The AST scan is not vacuous: it flags each pattern in a sample."""
    sample = "import streamlit as st\nfrom streamlit import x\nraise ValueError('x')\nraise ValueError\n"
    assert len(list(_violations(sample, "sample.py"))) == 4
    assert not list(_violations("raise OptiscopeError('x')\nimport torch\n", "sample.py"))


# --- run(): validated when called, lazy, frozen states --------------------------------------------


class Probe:
    """Counts the calls a run makes into its subject (an objective, a model, a denoiser)."""

    def __init__(self) -> None:
        self.calls = 0

    def counting(self, inner: Any) -> Any:
        """``inner`` seen through a proxy that counts its calls and its method calls."""
        return _Counted(inner, self)


class _Counted:
    def __init__(self, inner: Any, probe: Probe) -> None:
        object.__setattr__(self, "_inner", inner)
        object.__setattr__(self, "_probe", probe)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self._probe.calls += 1
        return self._inner(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        if not callable(attr) or inspect.isclass(attr):
            return attr

        def counted(*args: Any, **kwargs: Any) -> Any:
            self._probe.calls += 1
            return attr(*args, **kwargs)

        return counted


def _cbo_example(probe: Probe) -> tuple[tuple, dict]:
    from core import cbo

    objective = cbo.OBJECTIVES["Rastrigin"]
    return (probe.counting(objective), objective.sample(20, 2, seed=0)), {"steps": 3, "seed": 0}


def _guidance_example(probe: Probe) -> tuple[tuple, dict]:
    from core import guidance

    config = guidance.GuiderConfig(name="cfg", w=3.0)
    denoiser = probe.counting(guidance.GaussianMixtureDenoiser())
    return (denoiser, torch.tensor([0, 1])), {"guider": config, "steps": 3, "seed": 0}


def _attention_svm_example(probe: Probe) -> tuple[tuple, dict]:
    from core import attention_svm

    return (attention_svm.make_problem(n=3, T=4, d=5, seed=0),), {"steps": 3, "lr": 0.1, "seed": 0}


def _cam_example(probe: Probe) -> tuple[tuple, dict]:
    from core.cam.models import ShapesCNN
    from core.data.shapes import make_shapes

    class CountedCNN(ShapesCNN):  # a real module (CAMs run a per-call copy of it), counting its forward calls
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            probe.calls += 1
            return super().forward(x)

    x, y, masks = make_shapes(2, size=32, seed=0)
    return (CountedCNN().eval(), x, y), {"masks": masks, "steps": 2, "seed": 0}


def _exploration_example(probe: Probe) -> tuple[tuple, dict]:
    from core import exploration

    class CountedMDP(exploration.LinearMixtureMDP):  # counts every read of the transition kernel
        @property
        def transitions(self) -> torch.Tensor:
            probe.calls += 1
            return self.phi @ self.theta

    chain = exploration.chain_mdp()
    mdp = CountedMDP(chain.phi, chain.theta)
    probe.calls = 0
    return (mdp, exploration.chain_rewards()), {"steps": 3, "seed": 0}


def _blackbox_example(probe: Probe) -> tuple[tuple, dict]:
    from core import blackbox

    return (probe.counting(blackbox.surrogate(3, seed=0)),), {"budget": 30, "seed": 0}


def _optimizer_race_example(probe: Probe) -> tuple[tuple, dict]:
    return ("digits_softmax", "prodigy"), {"steps": 3, "seed": 0}  # by registry name: the probe counts nothing


def _privacy_example(probe: Probe) -> tuple[tuple, dict]:
    from core import privacy

    return ("logistic", privacy.load("wine")), {"steps": 3, "seed": 0}  # by registry name: the probe counts nothing


def _diffusion_training_example(probe: Probe) -> tuple[tuple, dict]:
    from core import diffusion_training, guidance

    student = diffusion_training.EDMMLP(width=8, w_range=(1.0, 5.0))
    return (student, probe.counting(guidance.GaussianMixtureDenoiser())), {"steps": 3, "n_samples": 4, "seed": 0}


# One valid, small call of each lab's `run` (args, kwargs); `probe` wraps the subject it counts.
RUN_EXAMPLES: dict[str, Callable[[Probe], tuple[tuple, dict]]] = {
    "cbo": _cbo_example,
    "guidance": _guidance_example,
    "attention_svm": _attention_svm_example,
    "cam": _cam_example,
    "exploration": _exploration_example,
    "blackbox": _blackbox_example,
    "optimizer_race": _optimizer_race_example,
    "privacy": _privacy_example,
    "diffusion_training": _diffusion_training_example,
}


def _run_call(lab: str) -> tuple[Callable, Probe, tuple, dict]:
    if "run" not in public(lab):
        pytest.skip(f"core.{lab} exports no run (it has no process that unfolds in steps)")
    if lab not in RUN_EXAMPLES:
        pytest.fail(f"core.{lab}.run has no example call: add one to RUN_EXAMPLES in tests/test_contract.py")
    probe = Probe()
    args, kwargs = RUN_EXAMPLES[lab](probe)
    return public(lab)["run"], probe, args, kwargs


@pytest.mark.parametrize("lab", LABS)
def test_run_validates_when_called_and_computes_nothing_until_next(lab: str) -> None:
    run, probe, args, kwargs = _run_call(lab)
    assert not inspect.isgeneratorfunction(run), (
        f"core.{lab}.run is a generator function: it validates only at the first next(). "
        "Validate, then `return _loop(...)`."
    )
    states = run(*args, **kwargs)
    assert isinstance(states, Iterator), f"core.{lab}.run returned {type(states).__name__}, not an iterator"
    if inspect.isgenerator(states):
        assert inspect.getgeneratorstate(states) == inspect.GEN_CREATED
    assert probe.calls == 0, f"core.{lab}.run called its subject {probe.calls} times before the first next()"


@pytest.mark.parametrize("lab", LABS)
def test_run_yields_frozen_states_that_start_with_step(lab: str) -> None:
    run, _, args, kwargs = _run_call(lab)
    states = list(run(*args, **kwargs))
    assert states, f"core.{lab}.run yielded nothing"
    for state in states[:3]:
        assert dataclasses.is_dataclass(state), f"core.{lab}.run yields {type(state).__name__}, not a dataclass"
        assert state.__dataclass_params__.frozen, f"{type(state).__name__} is not frozen"
        assert dataclasses.fields(state)[0].name == "step", f"{type(state).__name__}'s first field is not `step`"
        attached = [
            f.name
            for f in dataclasses.fields(state)
            if isinstance(getattr(state, f.name), torch.Tensor) and getattr(state, f.name).requires_grad
        ]
        assert not attached, f"{type(state).__name__} holds tensors attached to a graph: {attached}"
    assert [s.step for s in states] == sorted(s.step for s in states), "steps are not increasing"


def _bad_options(run: Callable, kwargs: dict) -> list[tuple[str, Any]]:
    """(option, invalid value) pairs: NaN for every numeric option, and the concept names' invalid values."""
    bad = []
    for param in inspect.signature(run).parameters.values():
        if param.kind is not inspect.Parameter.KEYWORD_ONLY:
            continue
        current = kwargs.get(param.name, param.default)
        if isinstance(current, (int, float)) and not isinstance(current, bool):
            bad.append((param.name, math.nan))
        bad.extend((param.name, value) for value in INVALID.get(param.name, ()))
    return bad


@pytest.mark.parametrize("lab", LABS)
def test_bad_options_raise_optiscope_error_before_the_first_step(lab: str) -> None:
    run, probe, args, kwargs = _run_call(lab)
    bad = _bad_options(run, kwargs)
    assert bad, f"core.{lab}.run has no numeric keyword-only option to check"
    accepted = []
    for name, value in bad:
        try:
            run(*args, **{**kwargs, name: value})
        except OptiscopeError:
            continue
        except Exception as err:  # anything but OptiscopeError is the finding
            accepted.append(f"{name}={value!r} raised {type(err).__name__}: {err}")
        else:
            accepted.append(f"{name}={value!r} was accepted")
    assert probe.calls == 0, f"core.{lab}.run called its subject while refusing bad options"
    assert not accepted, f"core.{lab}.run, at call time: " + "; ".join(accepted)
