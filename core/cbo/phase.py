"""Success rates of CBO over many independent runs, and the (sigma, N) phase diagram as progress states."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch

from core.cbo.config import DEFAULT_CONFIG, CBOConfig, check_steps
from core.cbo.dynamics import run
from core.cbo.objectives import OBJECTIVES, Objective
from core.cbo.state import check_particle_steps, success
from core.errors import OptiscopeError, check_int, check_positive
from core.runs import last_state


def success_rates(
    objective: Objective,
    *,
    config: CBOConfig = DEFAULT_CONFIG,
    d: int = 20,
    n_particles: int = 40,
    runs: int = 100,
    steps: int = 1000,
    tol: float = 0.25,
    seed: int = 0,
    device: torch.device | str | None = None,
) -> tuple[float, float]:
    r"""Success rate of CBO in high dimensions: https://arxiv.org/abs/1909.09249

    ``runs`` independent runs batched as one (M, N, d) tensor, started from ``objective.sample`` (uniform on
    its box; the seed gives the same start on every device). A run succeeds when its final consensus
    satisfies ``||v - x*||_inf < tol``; a diverged run fails.

    Args:
        objective (`Objective`): the landscape, e.g. ``OBJECTIVES["Rastrigin"]``.
        config (`CBOConfig`, defaults to `CBOConfig()`): the dynamics.
        d (`int`, defaults to `20`), n_particles (`int`, defaults to `40`), runs (`int`, defaults to `100`),
        steps (`int`, defaults to `1000`): the experiment.
        tol (`float`, defaults to `0.25`), seed (`int`, defaults to `0`), device: as in :func:`core.cbo.run`.

    Returns:
        (success fraction, diverged fraction), both in [0, 1].

    >>> success_rates(OBJECTIVES["Rastrigin"], d=2, n_particles=50, runs=20, steps=300)
    (1.0, 0.0)
    """
    tol = check_positive("tol", tol)
    check_particle_steps(
        check_int("runs", runs),
        check_int("n_particles", n_particles, 2),
        check_int("d", d),
        check_steps("steps", steps),
    )
    x0 = objective.sample(n_particles, d, runs=runs, seed=seed)  # (M, N, d), on the CPU
    noise_seed = (seed + 1) % 2**63  # another stream than the start's
    last = last_state(run(objective, x0, config=config, steps=steps, every=steps, seed=noise_seed, device=device))
    ok = success(last.consensus, objective.minimiser(d, last.x.device, last.x.dtype), tol) & ~last.diverged_runs
    return float(ok.float().mean()), float(last.diverged_runs.float().mean())


@dataclass(frozen=True)
class PhaseProgress:
    """The (sigma, N) grid after ``step`` cells; cells not yet computed are NaN.

    Shapes:
        success, diverged: (len(sigmas), len(ns))
    """

    step: int  # cells done
    total: int
    sigmas: tuple[float, ...]
    ns: tuple[int, ...]
    success: torch.Tensor
    diverged: torch.Tensor

    @property
    def fraction(self) -> float:
        return self.step / self.total


def success_rate_grid(
    sigmas: Sequence[float],
    ns: Sequence[int],
    *,
    objective: Objective = OBJECTIVES["Rastrigin"],
    config: CBOConfig = DEFAULT_CONFIG,
    d: int = 20,
    runs: int = 100,
    steps: int = 1000,
    tol: float = 0.25,
    seed: int = 0,
    device: torch.device | str | None = None,
) -> Iterator[PhaseProgress]:
    r"""Phase diagram of CBO over (sigma, N): https://arxiv.org/abs/2103.15130

    :func:`success_rates` on every (sigma, N) cell (``config`` with its sigma replaced), yielding the
    growing grid after each cell, so a UI can show progress and a partial heat map. The sharp threshold in
    sigma is the lesson. Checked when called, including the budget of the whole grid.

    Shapes:
        state.success: (len(sigmas), len(ns))

    >>> last = list(success_rate_grid([0.5, 1.0], [20], d=2, runs=4, steps=100))[-1]
    >>> last.step, last.success.shape
    (2, torch.Size([2, 1]))
    """
    if not sigmas or not ns:
        raise OptiscopeError(f"Expected at least one sigma and one N, but got sigmas={sigmas} and ns={ns}")
    if not isinstance(objective, Objective):
        raise OptiscopeError(f"Expected `objective` to be an Objective, but got {type(objective).__name__}")
    configs = [dataclasses.replace(config, sigma=check_positive("sigma", s, strict=False)) for s in sigmas]
    ns = tuple(check_int("n_particles", n, 2) for n in ns)
    objective.check_dim(check_int("d", d))
    runs, steps = check_int("runs", runs), check_steps("steps", steps)
    check_particle_steps(runs, len(configs) * sum(ns), d, steps)
    cell = {"d": d, "runs": runs, "steps": steps, "tol": tol, "seed": seed, "device": device}
    return _grid(objective, configs, ns, cell)


def _grid(objective: Objective, configs: list[CBOConfig], ns: tuple[int, ...], cell: dict) -> Iterator[PhaseProgress]:
    sigmas = tuple(c.sigma for c in configs)
    rate = torch.full((len(configs), len(ns)), float("nan"))
    diverged = rate.clone()
    yield PhaseProgress(0, rate.numel(), sigmas, ns, rate.clone(), diverged.clone())
    done = 0
    for i, config in enumerate(configs):
        for j, n in enumerate(ns):
            rate[i, j], diverged[i, j] = success_rates(objective, config=config, n_particles=n, **cell)
            done += 1
            yield PhaseProgress(done, rate.numel(), sigmas, ns, rate.clone(), diverged.clone())
