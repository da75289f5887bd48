"""One study of the race: a workload trained by one optimizer, evaluated every few steps, as an iterator of states."""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from dog import PolynomialDecayAverager
from torch import nn

from core.device import generator
from core.errors import check_budget, check_int, check_positive, check_seed
from core.optimizer_race.optimizers import OptimizerSpec, get_optimizer, schedule_factor
from core.optimizer_race.workloads import BATCH, Workload, get_workload

MAX_STEPS = 20_000  # the budget of one study: 13× the longest race budget, ~1 min of CPU
BLOW_UP = 100.0  # a training loss this many times its first value counts as divergence


@dataclass(frozen=True)
class RaceState:
    """One evaluation of a study.

    ``seconds`` is CPU time (``time.thread_time``) spent in training steps, evaluation excluded (AlgoPerf's
    submission time). ``lr_belief`` is the learning rate the method believes in (None where it has none).
    A diverged study's last state keeps the last finite ``value`` and says at which ``step`` it blew up.
    """

    step: int
    seconds: float
    value: float
    lr_belief: float | None
    diverged: bool = False


def run(
    workload: str,
    optimizer: str,
    *,
    seed: int = 0,
    steps: int | None = None,
    lr: float | None = None,
    device: torch.device | str | None = None,
) -> Iterator[RaceState]:
    """Optimizer race (after Kasimbeg et al., https://arxiv.org/abs/2505.24005): one study, evaluated as it trains.

    Args:
        workload (`str`): a key of ``WORKLOADS`` (``digits_mlp``, ``digits_softmax``, ``spirals_mlp``, ``digits_ae``).
        optimizer (`str`): a key of ``OPTIMIZERS``.
        seed (`int`, defaults to `0`): the study's seed (initialisation and minibatches, private generators).
        steps (`int`, optional): training steps; defaults to the workload's race budget, 1.5 × step_hint.
        lr (`float`, optional): the base learning rate; defaults to the optimizer's frozen one.
        device (`torch.device`, optional): where to train; defaults to the CPU.

    Yields:
        :class:`RaceState` at step 0 and every ``workload.every`` steps (and the last). A study whose loss turns
        non-finite or blows up (× ``BLOW_UP``) ends with a state flagged ``diverged``; no state holds NaN.

    >>> states = list(run("digits_softmax", "prodigy", seed=0, steps=20))
    >>> [s.step for s in states], states[-1].value < states[0].value, states[-1].lr_belief > 1e-6
    ([0, 10, 20], True, True)
    """
    wl, spec = get_workload(workload), get_optimizer(optimizer)
    seed = check_seed(seed)
    steps = wl.budget if steps is None else check_int("steps", steps)
    check_budget("training steps", steps, MAX_STEPS)
    base_lr = check_positive("lr", lr) if lr is not None else (spec.lr or wl.tuned_lr)
    return _loop(wl, spec, seed, steps, base_lr, torch.device(device or "cpu"))


def _loop(wl: Workload, spec: OptimizerSpec, seed: int, steps: int, lr: float, device) -> Iterator[RaceState]:
    gen = generator(seed)  # CPU generator: the same initialisation and batches on every device
    model = wl.build(gen).to(device)
    data = {k: v.to(device) for k, v in wl.data().items()}
    opt = spec.make(model.parameters(), lr, wl.step_hint)
    averager = PolynomialDecayAverager(model) if spec.evaluation == "averaged" else None
    if hasattr(opt, "train"):  # schedule-free optimizers step at their training iterate y: switch to it first
        opt.train()
    seconds, first_loss = 0.0, None
    value = _evaluate(wl, spec, opt, model, averager, data)
    yield RaceState(0, 0.0, value, _belief(spec, opt))
    for start in range(1, steps + 1, wl.every):
        block = range(start, min(start + wl.every, steps + 1))
        clock = time.thread_time()
        losses = _train_block(wl, spec, opt, model, averager, data, block, lr, gen)
        seconds += time.thread_time() - clock
        first_loss = losses[0] if first_loss is None else first_loss
        blown = next((k for k, loss in zip(block, losses, strict=True) if _blown_up(loss, first_loss)), None)
        if blown is not None:
            yield RaceState(blown, seconds, value, _belief(spec, opt), diverged=True)
            return
        new = _evaluate(wl, spec, opt, model, averager, data)
        if not math.isfinite(new):
            yield RaceState(block[-1], seconds, value, _belief(spec, opt), diverged=True)
            return
        value = new
        yield RaceState(block[-1], seconds, value, _belief(spec, opt))


def _train_block(wl: Workload, spec: OptimizerSpec, opt, model: nn.Module, averager, data, block, lr, gen) -> list:
    """Train the steps of ``block`` (one evaluation period); returns their training losses.

    The losses are read once per block, not once per step: a per-step ``.item()`` is a device sync on a GPU and
    a measurable share of a tiny CPU step. The batches of a block are drawn in one call (the same stream as one
    draw per step).
    """
    params = [p for group in opt.param_groups for p in group["params"]]
    batches = torch.randint(len(data["x_train"]), (len(block), BATCH), generator=gen).to(device=data["x_train"].device)
    losses = torch.empty(len(block), device=data["x_train"].device)
    for i, k in enumerate(block):
        _set_lr(opt, lr * schedule_factor(spec.schedule, k - 1, wl.step_hint))
        loss = wl.loss(model(data["x_train"][batches[i]]), data["y_train"][batches[i]])
        for p in params:  # zero_grad(set_to_none=True) without its profiler bookkeeping
            p.grad = None
        loss.backward()
        opt.step()
        if averager is not None:
            averager.step()
        losses[i] = loss.detach()
    return losses.tolist()


def _set_lr(opt: torch.optim.Optimizer, lr: float) -> None:
    for group in opt.param_groups:
        group["lr"] = lr


def _blown_up(loss: float, first_loss: float) -> bool:
    return not math.isfinite(loss) or loss > BLOW_UP * first_loss


def _evaluate(wl: Workload, spec: OptimizerSpec, opt, model: nn.Module, averager, data) -> float:
    """The validation metric at the iterate the method means: schedule-free's x (``eval()``), DoG's average."""
    with torch.no_grad(), contextlib.ExitStack() as stack:
        if spec.evaluation == "schedule_free":
            opt.eval()
            stack.callback(opt.train)
        net = averager.averaged_model if averager is not None else model
        return float(wl.score(net(data["x_test"]), data["y_test"]))


def _belief(spec: OptimizerSpec, opt: torch.optim.Optimizer) -> float | None:
    belief = spec.belief(opt) if spec.belief is not None else None
    return belief if belief is not None and math.isfinite(belief) else None
