"""The race's optimizers: learning-rate-free methods with their frozen package defaults, against NadamW.

Each entry builds the real package's optimizer (``prodigyopt``, ``dadaptation``, ``schedulefree``,
``dog-optimizer``, ``mechanic-pytorch``) as it ships, or at the AlgoPerf self-tuning point, and reads the
learning rate the method believes in (Prodigy / D-Adapt ``d``, DoG's ``eta``, Mechanic's ``s``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import partial

import dadaptation
import prodigyopt
import schedulefree
import torch
from dog import DoG
from mechanic_pytorch import mechanize

from core.curvature import MFAC
from core.errors import check_choice

# AlgoPerf's self-tuning NadamW point (algorithms/baselines/self_tuning/pytorch_nadamw_full_budget.py).
ALGOPERF_NADAMW = {
    "lr": 0.0017486387539278373,
    "betas": (1.0 - 0.06733926164, 0.9955159689799007),
    "eps": 1e-8,
    "weight_decay": 0.08121616522670176,
}
# torch's NAdam warms its momentum up (mu_t = β1 (1 − ½·0.96^(t·ψ))); AlgoPerf's NadamW keeps mu_t = β1.
# A huge ψ makes 0.96^(t·ψ) = 0 from the first step, so torch's NAdam runs AlgoPerf's constant-β1 Nesterov step.
CONSTANT_MOMENTUM = 1e9
# Schedule-free AdamW's AlgoPerf self-tuning submission (schedulefree/algoperf/self_tuning).
ALGOPERF_SF = {"lr": 0.0025, "betas": (0.9, 0.99552), "weight_decay": 0.08122, "r": 0.75, "weight_lr_power": 2.0}
# M-FAC frozen for the race: a window of m = 32 gradients (the note's CPU-sized window; the reference ships 1024),
# damping 1e-3 and lr 1e-2, the best of the note's grid on digits_mlp (600 steps, 2 seeds); no momentum or decay.
MFAC_POINT = {"lr": 1e-2, "m": 32, "damp": 1e-3}

Params = Iterable[torch.nn.Parameter]


def nadamw(params: Params, lr: float, step_hint: int = 0) -> torch.optim.Optimizer:
    """NadamW: torch's ``NAdam(decoupled_weight_decay=True)`` at AlgoPerf's betas, eps and weight decay."""
    hp = ALGOPERF_NADAMW | {"lr": lr}
    nadam = torch.optim.NAdam  # foreach: one fused call per step instead of a Python loop over the tensors
    return nadam(params, **hp, decoupled_weight_decay=True, momentum_decay=CONSTANT_MOMENTUM, foreach=True)


def schedule_factor(kind: str, step: int, step_hint: int) -> float:
    """The learning-rate multiplier after ``step`` steps: AlgoPerf's 2% linear warmup then cosine to 0 at
    ``step_hint`` (``warmup_cosine``), cosine without warmup (``cosine``, Prodigy's README), or 1 (``constant``).

    >>> [round(schedule_factor("warmup_cosine", t, 100), 3) for t in (0, 1, 2, 51, 100, 150)]
    [0.0, 0.5, 1.0, 0.5, 0.0, 0.0]
    """
    if kind == "constant":
        return 1.0
    warmup = max(1, round(0.02 * step_hint)) if kind == "warmup_cosine" else 0
    if step < warmup:
        return step / warmup
    progress = min(1.0, (step - warmup) / max(1, step_hint - warmup))
    return 0.5 * (1.0 + math.cos(math.pi * progress))


def _group_value(name: str, opt: torch.optim.Optimizer) -> float | None:
    value = opt.param_groups[0].get(name)
    if isinstance(value, list):  # DoG keeps one eta per parameter of the group, all equal
        value = value[0] if value else None
    return None if value is None else float(value)


def _mechanic_scale(opt: torch.optim.Optimizer) -> float | None:
    state = opt.state.get("_mechanic")
    return None if state is None else float(state["s"].sum())  # s multiplies the base AdamW step


@dataclass(frozen=True)
class OptimizerSpec:
    """One race entrant: how to build it, its schedule, how it is evaluated, and its learning-rate belief."""

    key: str
    label: str
    kind: str  # "baseline" | "lr-free" | "second-order" | "pitfall"
    make: Callable[[Params, float, int], torch.optim.Optimizer]  # (params, lr, step_hint)
    lr: float | None  # the frozen (base) learning rate; None = the workload's tuned NadamW LR
    schedule: str = "constant"
    evaluation: str = "plain"  # "plain" | "schedule_free" (eval()/train() around it) | "averaged" (DoG's averager)
    belief: Callable[[torch.optim.Optimizer], float | None] | None = None
    belief_name: str = ""
    source: str = ""  # where the frozen defaults come from


def _plain(cls: type[torch.optim.Optimizer]) -> Callable[[Params, float, int], torch.optim.Optimizer]:
    """A package optimizer at its shipped defaults but for the base learning rate."""
    return lambda params, lr, step_hint: cls(params, lr=lr)


def _adamw(params: Params, lr: float, step_hint: int) -> torch.optim.Optimizer:
    return torch.optim.AdamW(params, lr=lr, foreach=True)  # torch's defaults; foreach only changes the speed


def _mfac(params: Params, lr: float, step_hint: int) -> torch.optim.Optimizer:
    return MFAC(params, **(MFAC_POINT | {"lr": lr}))


def _sf_algoperf(params: Params, lr: float, step_hint: int) -> torch.optim.Optimizer:
    warmup = round(0.02 * 0.75 * step_hint)
    return schedulefree.AdamWScheduleFree(params, **(ALGOPERF_SF | {"lr": lr}), warmup_steps=warmup)


_D = {"belief": partial(_group_value, "d"), "belief_name": "d"}
_SF = {"make": _plain(schedulefree.AdamWScheduleFree), "lr": 0.0025, "kind": "lr-free"}
_SF_SOURCE = "schedulefree 1.4.1 defaults (lr 2.5e-3, betas (0.9, 0.999), no warmup)"
_ENTRIES = (
    OptimizerSpec(
        key="nadamw_tuned",
        label="NadamW, tuned LR",
        kind="baseline",
        make=nadamw,
        lr=None,
        schedule="warmup_cosine",
        source="AlgoPerf's self-tuning NadamW at the LR grid's best per workload",
    ),
    OptimizerSpec(
        key="nadamw_algoperf",
        label="NadamW, AlgoPerf point",
        kind="baseline",
        make=nadamw,
        lr=ALGOPERF_NADAMW["lr"],
        schedule="warmup_cosine",
        source="AlgoPerf's self-tuning point, frozen (lr 1.75e-3)",
    ),
    OptimizerSpec(
        key="adamw_default",
        label="AdamW, torch defaults",
        kind="baseline",
        make=_adamw,
        lr=1e-3,
        source="torch.optim.AdamW defaults, constant lr 1e-3",
    ),
    OptimizerSpec(
        key="prodigy",
        label="Prodigy",
        kind="lr-free",
        make=_plain(prodigyopt.Prodigy),
        lr=1.0,
        schedule="cosine",
        source="prodigyopt 1.1.2 defaults, lr 1 + cosine (its README)",
        **_D,
    ),
    OptimizerSpec(
        key="dadapt_adam",
        label="D-Adapt Adam",
        kind="lr-free",
        make=_plain(dadaptation.DAdaptAdam),
        lr=1.0,
        source="dadaptation 3.2 defaults, lr 1, constant",
        **_D,
    ),
    OptimizerSpec(
        key="dadapt_sgd",
        label="D-Adapt SGD",
        kind="lr-free",
        make=_plain(dadaptation.DAdaptSGD),
        lr=1.0,
        source="dadaptation 3.2 defaults, lr 1, constant",
        **_D,
    ),
    OptimizerSpec(key="sf_adamw", label="Schedule-free AdamW", evaluation="schedule_free", source=_SF_SOURCE, **_SF),
    OptimizerSpec(
        key="sf_adamw_algoperf",
        label="Schedule-free AdamW, AlgoPerf point",
        kind="lr-free",
        make=_sf_algoperf,
        lr=ALGOPERF_SF["lr"],
        evaluation="schedule_free",
        source="schedulefree's AlgoPerf self-tuning submission (r 0.75, warmup 1.5% of step_hint)",
    ),
    OptimizerSpec(
        key="dog",
        label="DoG + averaging",
        kind="lr-free",
        make=_plain(DoG),
        lr=1.0,
        evaluation="averaged",
        belief=partial(_group_value, "eta"),
        belief_name="η",
        source="dog-optimizer 1.0.3 defaults, evaluated on its PolynomialDecayAverager(γ=8), as its authors require",
    ),
    OptimizerSpec(
        key="mechanic",
        label="Mechanic (AdamW)",
        kind="lr-free",
        make=_plain(mechanize(torch.optim.AdamW)),
        lr=1e-3,
        belief=_mechanic_scale,
        belief_name="s",
        source="mechanic-pytorch 0.0.1 defaults over AdamW lr 1e-3",
    ),
    OptimizerSpec(
        key="mfac",
        label="M-FAC (m = 32)",
        kind="second-order",
        make=_mfac,
        lr=MFAC_POINT["lr"],
        source="core.curvature.MFAC, m 32, damp 1e-3, lr 1e-2 (the note's digits_mlp grid), constant",
    ),
    OptimizerSpec(
        key="sf_adamw_no_eval",
        label="Schedule-free AdamW without eval()",
        evaluation="plain",
        source=_SF_SOURCE + ", evaluated at the training iterate y: the pitfall",
        **(_SF | {"kind": "pitfall"}),
    ),
)
OPTIMIZERS: dict[str, OptimizerSpec] = {spec.key: spec for spec in _ENTRIES}
RACE = tuple(key for key, spec in OPTIMIZERS.items() if spec.kind != "pitfall")


def get_optimizer(key: str) -> OptimizerSpec:
    """The registered optimizer ``key`` (an OptiscopeError names the known keys otherwise)."""
    return OPTIMIZERS[check_choice("optimizer", key, tuple(OPTIMIZERS))]
