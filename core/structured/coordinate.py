"""Greedy block coordinate descent (GS, GSL, GSD, GSQ, GS-q): https://arxiv.org/abs/1712.08859

Nutini, Laradji, Schmidt, "Let's make block coordinate descent converge faster" (JMLR 2022). Each step picks
a block b of coordinates by a selection rule and updates only x_b, with the gradient step ``x_b -= g_b / L_b``
(``Lb``; a soft-threshold prox step when there is an l1 term) or the matrix step ``x_b -= M_bb^-1 g_b`` (``Hb``).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch

from core.device import generator
from core.errors import OptiscopeError, check_budget, check_choice, check_int, check_positive, check_seed
from core.structured._start import check_finite, check_problem, check_tensor, start_point
from core.structured.coordinate_problems import CoordinateProblem

RULES = {
    "random": "Random (uniform)",
    "cyclic": "Cyclic",
    "lipschitz": "Lipschitz sampling (∝ L_b)",
    "gs": "Gauss–Southwell (GS)",
    "gsl": "Gauss–Southwell–Lipschitz (GSL)",
    "gsd": "GS-diagonal (GSD)",
    "gsq": "GS-quadratic (GSQ)",
    "gs-q": "GS-q (proximal, for ℓ1)",
}
GREEDY = ("gs", "gsl", "gsd", "gsq", "gs-q")  # these read the whole gradient every step
PARTITIONS = {"fixed": "Fixed blocks (sorted by L_i)", "variable": "Variable blocks (top-τ)"}
UPDATES = {"Lb": "Gradient step 1/L_b", "Hb": "Matrix step M_bb⁻¹"}
MAX_WORK = 2e9  # coordinate-steps x d: what one run may cost


@dataclass(frozen=True)
class CoordinateConfig:
    """One block-coordinate run.

    Args:
        rule (`str`, defaults to `"gsl"`): a key of :data:`RULES`.
        block_size (`int`, defaults to `1`): τ, coordinates per block.
        partition (`str`, defaults to `"variable"`): ``"fixed"`` (FB) or ``"variable"`` (VB, greedy rules only).
        update (`str`, defaults to `"Lb"`): ``"Lb"`` or ``"Hb"`` (a key of :data:`UPDATES`).
        steps (`int`, defaults to `5000`): the most block updates.
        tol (`float`, defaults to `1e-6`): stop at ``F - F* <= tol (F(x0) - F*)``.
        every (`int`, defaults to `1`): yield every ``every``-th step (plus the first and the last).
        blocks (`Sequence[Sequence[int]]`, optional): a fixed partition of ``range(d)`` to use instead of the sorted one.
    """

    rule: str = "gsl"
    block_size: int = 1
    partition: str = "variable"
    update: str = "Lb"
    steps: int = 5000
    tol: float = 1e-6
    every: int = 1
    blocks: Sequence[Sequence[int]] | None = None

    def __post_init__(self) -> None:
        check_choice("rule", self.rule, RULES)
        check_int("block_size", self.block_size, 1, 1000)
        check_choice("partition", self.partition, PARTITIONS)
        check_choice("update", self.update, UPDATES)
        check_int("steps", self.steps, 1)
        check_positive("tol", self.tol, strict=False)
        check_int("every", self.every, 1)


@dataclass(frozen=True)
class CoordinateState:
    """One block update. ``block`` holds the coordinates updated to reach ``x`` (empty at step 0).

    Shapes:
        x: (d,), block: (τ,) int64
    """

    step: int
    x: torch.Tensor
    objective: float
    gap: float  # F(x) - F*
    relative_gap: float  # gap / (F(x0) - F*)
    block: torch.Tensor
    coordinate_gradients: int  # partial derivatives read so far: d per greedy step, τ per random/cyclic step


def run(
    problem: CoordinateProblem,
    *,
    x0: torch.Tensor | None = None,
    config: CoordinateConfig = CoordinateConfig(),
    seed: int = 0,
    device: torch.device | str | None = None,
) -> Iterator[CoordinateState]:
    r"""Block coordinate descent (BCD) with greedy rules: https://arxiv.org/abs/1712.08859

    Scores of block b (g = ∇f(x), L_b = λ_max(M_bb), D = diag(M)): GS ``||g_b||``, GSL ``||g_b|| / sqrt(L_b)``,
    GSD ``g_b' D_b^-1 g_b``, GSQ ``g_b' M_bb^-1 g_b`` (the progress of the matrix update) and GS-q the decrease
    of the prox-quadratic model (the rule for ``l1 > 0``). With variable blocks the greedy rules take the top τ
    coordinates (GSL by ``g_i^2 / L_i``; GSD with ``d_i = sum_j |M_ij|``, a diagonal bound of every block;
    GSQ by 10 steps of iterative hard thresholding, as the authors' code, from the GSL block). Random, cyclic and Lipschitz sampling use the fixed partition.

    Args:
        problem (`CoordinateProblem`): from :func:`make_problem`.
        x0 (`torch.Tensor`, optional): the start, (d,); defaults to ``problem.x0``.
        config (`CoordinateConfig`): the rule, blocks, update and stopping.
        seed (`int`, defaults to `0`): for the random rules.
        device (`torch.device`, optional): the problem's device (where ``make_problem(..., device=)`` built it).

    Shapes:
        x0: (d,) -> state.x: (d,)

    >>> from core.structured.coordinate_problems import make_problem
    >>> p = make_problem("quadratic-2d")
    >>> last = list(run(p, config=CoordinateConfig(rule="gsl", steps=200)))[-1]
    >>> last.relative_gap <= 1e-6, last.block.tolist() in ([0], [1])
    (True, True)
    """
    check_problem(problem, CoordinateProblem)
    check_tensor("problem.curvature", problem.curvature, (problem.d, problem.d))
    check_positive("problem.l1", problem.l1, strict=False)
    check_finite("problem.f_star", problem.f_star)
    seed = check_seed(seed)
    x = start_point(problem.x0, x0, device)
    if not float(problem.objective(x)) > problem.f_star:  # the relative gap divides by F(x0) - F*
        raise OptiscopeError(
            f"Expected `x0` with a positive gap F(x0) - F* (F* = {problem.f_star:.6g}), but it has none"
        )
    d = problem.d
    if config.block_size > d:
        raise OptiscopeError(f"Expected `block_size` <= d = {d}, but got {config.block_size}")
    if config.rule == "gs-q" and problem.l1 == 0:
        raise OptiscopeError("Expected `rule` other than 'gs-q' on a problem without an l1 term (GS-q is GSL there)")
    if config.update == "Hb" and problem.l1 > 0:
        raise OptiscopeError("Expected `update` 'Lb' on an l1 problem: the matrix step 'Hb' has no closed-form prox")
    check_budget("coordinate-steps x d", config.steps * d, MAX_WORK, hint="Lower `steps`.")
    curvature = problem.curvature.to(x.device)
    blocks = partition(curvature.diagonal(), config.block_size, config.blocks)
    return _loop(problem, x, curvature, blocks, config, generator(seed, "cpu"))


def partition(lipschitz: torch.Tensor, size: int, blocks: Sequence[Sequence[int]] | None = None) -> list[torch.Tensor]:
    """Fixed blocks: ``blocks`` checked to partition range(d), else coordinates sorted by L_i cut into size-τ chunks.

    >>> [b.tolist() for b in partition(torch.tensor([3.0, 1.0, 2.0, 5.0]), 2)]
    [[1, 2], [0, 3]]
    """
    d = lipschitz.numel()
    if blocks is None:
        return list(torch.argsort(lipschitz, stable=True).split(size))
    flat = sorted(int(i) for block in blocks for i in block)
    if flat != list(range(d)) or any(len(block) == 0 for block in blocks):
        raise OptiscopeError(
            f"Expected `blocks` to partition the variables 0..{d - 1} (each once, none empty), "
            f"but got {[list(b) for b in blocks]}"
        )
    return [torch.tensor(list(block), dtype=torch.long, device=lipschitz.device) for block in blocks]


def _loop(problem, x, curvature, blocks, config, gen) -> Iterator[CoordinateState]:
    f_star, l1 = problem.f_star, problem.l1
    gap0 = max(float(problem.objective(x)) - f_star, 1e-300)
    lipschitz = curvature.diagonal().clamp_min(1e-12)
    block_bounds = torch.stack([_largest_eigenvalue(curvature[b][:, b]) for b in blocks])
    row_sums = curvature.abs().sum(1).clamp_min(1e-12)
    lam_max = float(torch.linalg.eigvalsh(curvature)[-1])
    reads = 0
    empty = torch.zeros(0, dtype=torch.long, device=x.device)
    yield _state(0, x, problem, gap0, empty, reads)
    for k in range(1, config.steps + 1):
        g = problem.gradient(x)
        if config.rule in GREEDY and config.partition == "variable":
            block = _top_block(config.rule, g, x, l1, lipschitz, row_sums, curvature, lam_max, config.block_size)
        else:
            block = blocks[_pick_fixed(config.rule, k, g, x, l1, blocks, block_bounds, curvature, gen)]
        reads += problem.d if config.rule in GREEDY else block.numel()
        x = _update(x, g, block, curvature, l1, config.update)
        state = _state(k, x, problem, gap0, block, reads)
        if state.relative_gap <= config.tol or k == config.steps or not math.isfinite(state.objective):
            yield state
            return
        if k % config.every == 0:
            yield state


def _state(k, x, problem, gap0, block, reads) -> CoordinateState:
    value = float(problem.objective(x))
    gap = value - problem.f_star
    return CoordinateState(k, x.detach(), value, gap, gap / gap0, block.detach(), reads)  # x is never updated in place


def _prox_progress(g, x, l1, bound):
    """Per coordinate: the decrease of ``g d + bound/2 d^2 + l1 (|x + d| - |x|)`` at its minimiser d (<= 0)."""
    step = _soft(x - g / bound, l1 / bound) - x
    return g * step + 0.5 * bound * step**2 + l1 * ((x + step).abs() - x.abs())


def _soft(v, t):
    return torch.sign(v) * (v.abs() - t).clamp_min(0)


def _top_block(rule, g, x, l1, lipschitz, row_sums, curvature, lam_max, size) -> torch.Tensor:
    if rule == "gsq":
        return _iht_support(g, lipschitz, curvature, lam_max, size)
    score = {
        "gs": lambda: g.abs(),
        "gsl": lambda: g**2 / lipschitz,
        "gsd": lambda: g**2 / row_sums,
        "gs-q": lambda: -_prox_progress(g, x, l1, lipschitz),
    }[rule]()
    return torch.topk(score, size).indices


def _iht_support(g, lipschitz, curvature, lam_max, size, iterations: int = 10) -> torch.Tensor:
    """Approximate argmax over |b| = τ of g_b' M_bb^-1 g_b: 10 hard-thresholded gradient steps on the model
    ``g'd + d'Md / 2`` (step 1/λ_max(M), as the authors' code), started from the GSL block's diagonal step
    (from d = 0 the steps are so short on badly scaled problems that the support stays GS's)."""
    keep = torch.topk(g**2 / lipschitz, size).indices
    step = torch.zeros_like(g).index_copy_(0, keep, -g[keep] / lipschitz[keep])
    for _ in range(iterations):
        step = step - (g + curvature @ step) / lam_max
        keep = torch.topk(step.abs(), size).indices
        step = torch.zeros_like(step).index_copy_(0, keep, step[keep])
    return keep


def _pick_fixed(rule, k, g, x, l1, blocks, block_bounds, curvature, gen) -> int:
    n = len(blocks)
    if rule == "random":
        return int(torch.randint(n, (1,), generator=gen))
    if rule == "cyclic":
        return (k - 1) % n
    if rule == "lipschitz":
        return int(torch.multinomial(block_bounds.cpu() / block_bounds.sum().cpu(), 1, generator=gen))
    scores = torch.stack(
        [
            _block_score(rule, g[b], x[b], l1, bound, curvature[b][:, b])
            for b, bound in zip(blocks, block_bounds, strict=True)
        ]
    )
    return int(torch.argmax(scores))


def _block_score(rule, g_b, x_b, l1, bound, m_bb) -> torch.Tensor:
    if rule == "gs":
        return g_b.norm()
    if rule == "gsl":
        return g_b.norm() / bound.sqrt()
    if rule == "gsd":
        return (g_b**2 / m_bb.diagonal().clamp_min(1e-12)).sum()
    if rule == "gsq":
        return g_b @ (torch.linalg.pinv(m_bb, hermitian=True) @ g_b)
    return -_prox_progress(g_b, x_b, l1, bound).sum()


def _update(x, g, block, curvature, l1, update) -> torch.Tensor:
    """A new x (never in place: yielded states share it) with x_b moved by the block step."""
    m_bb = curvature[block][:, block]
    g_b = g[block]
    if update == "Hb":
        delta = -torch.linalg.pinv(m_bb, hermitian=True) @ g_b
    elif l1 == 0:
        delta = -g_b / _largest_eigenvalue(m_bb)
    else:
        bound = _largest_eigenvalue(m_bb)
        delta = _soft(x[block] - g_b / bound, l1 / bound) - x[block]
    return x.index_add(0, block, delta)


def _largest_eigenvalue(m_bb: torch.Tensor) -> torch.Tensor:
    """L_b = λ_max(M_bb), floored so that an all-zero column (g_b = 0 there) gives a zero step, not 0/0."""
    top = m_bb[0, 0] if m_bb.shape[0] == 1 else torch.linalg.eigvalsh(m_bb)[-1]
    return top.clamp_min(1e-12)
