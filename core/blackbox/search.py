"""Direct search, directional attacks and their hybrid as one iterator of states (all sizes relative to the box).

Every point lives in unit-cube coordinates ``u in [0, 1]^d`` inside the loop (``x = lo + u (hi - lo)``), so
one poll size, mesh size and attack radius fit every box. Evaluations of ``f(Phi(x))`` are the budget; the
attack's forward and backward passes through the surrogate are counted apart (``gradients``), as in the
reference code, where they are not charged to the budget either.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch

from core.blackbox.problems import BOUND_LIMIT
from core.device import generator
from core.errors import OptiscopeError, check_budget, check_choice, check_int, check_positive, check_range, check_seed

METHODS = {"direct-search": "Direct search (MADS poll)", "attack": "Attacks only", "hybrid": "Hybrid: attack + poll"}
ATTACKS = {"signed": "sign(Jᵀ∇f)", "centred": "sign(Jᵀ(∇f − mean ∇f)), the reference code's"}
MAX_EVALUATIONS = 100_000
MAX_WORK = 5e7  # evaluations × d: a poll holds 2d points, so this bounds the coordinates one run touches
TINY = 1e-12  # the relative-gain test divides by |f(x)|, which is 0 at a surrogate's optimum


@dataclass(frozen=True)
class SearchConfig:
    r"""Optimization by Directional Attacks (ODA): https://arxiv.org/abs/2510.01461

    The hybrid's radii and rules (reference code ``hybrid_method.py``), sizes as fractions of the box width.

    >>> SearchConfig(poll_size=0.0)
    Traceback (most recent call last):
    core.errors.OptiscopeError: Expected `poll_size` > 0, but got 0.0
    """

    method: str = "hybrid"  # a key of METHODS
    attack: str = "signed"  # a key of ATTACKS; "centred" is the reference code's CE-with-soft-target direction
    poll_size: float = 0.25  # initial frame size Δp; the mesh is Δm = min(Δp, Δp²) (OrthoMADS)
    poll_min: float = 1e-6  # stop once the frame is this small
    attack_radius: float = 0.1  # initial attack radius r (‖step‖∞ = r)
    attack_min: float = 1e-6  # the reference code's radius bounds are [1e-5, 1] (bio_pinn: 1e-6)
    attack_max: float = 1.0
    sufficient: float = 1e-3  # a relative decrease this large skips the poll (and grows r by 1.3)
    covering: bool = True  # one uniform point in the box per iteration: cDSM's covering step

    def __post_init__(self) -> None:
        check_choice("method", self.method, METHODS)
        check_choice("attack", self.attack, ATTACKS)
        for name in ("poll_size", "poll_min", "attack_radius", "attack_min", "attack_max", "sufficient"):
            check_range(name, check_positive(name, getattr(self, name)), 0.0, 1.0)
        if not self.poll_min <= self.poll_size or not self.attack_min <= self.attack_radius <= self.attack_max:
            raise OptiscopeError(
                f"Expected poll_min <= poll_size and attack_min <= attack_radius <= attack_max, but got {self}"
            )
        if not isinstance(self.covering, bool):
            raise OptiscopeError(f"Expected `covering` to be True or False, but got {self.covering!r}")


@dataclass(frozen=True)
class SearchState:
    """One iteration: the incumbent, what was tried, and which step succeeded.

    Shapes (k points tried this iteration, d inputs):
        x: (d,); points: (k, d); values: (k,); arrow: (d,) (the attack's step, zeros when none)
    """

    step: int
    x: torch.Tensor  # the best point so far (problem coordinates)
    value: float  # f(Phi(x))
    evaluations: int  # evaluations of f(Phi(.)) used so far: the budget's clock
    gradients: int  # attack passes (forward + backward through the surrogate), not charged to the budget
    poll_size: float  # Δp, relative to the box
    mesh_size: float  # Δm = min(Δp, Δp²)
    attack_radius: float
    success: str  # "start", "attack", "search", "poll", "cma", "cbo" or "none"
    points: torch.Tensor
    values: torch.Tensor
    arrow: torch.Tensor


def mesh_size(poll_size: float) -> float:
    """OrthoMADS's mesh ``Δm = min(Δp, Δp²)``: the poll frame shrinks like Δp, the mesh like Δp² (finer).

    >>> mesh_size(0.5), mesh_size(2.0)
    (0.25, 2.0)
    """
    return min(poll_size, poll_size**2)


def poll_directions(d: int, poll_size: float, g: torch.Generator, like: torch.Tensor) -> torch.Tensor:
    """The 2d poll directions ``±H e_i`` of a random Householder basis ``H = I - 2 v vᵀ``, on the mesh.

    Each column is scaled to ``‖·‖∞ = Δp`` and rounded to a multiple of ``Δm``, so they stay a positive
    spanning set on the mesh (OrthoMADS, https://doi.org/10.1137/080716980).

    Shapes:
        -> (2d, d)

    >>> D = poll_directions(3, 0.5, torch.Generator().manual_seed(0), torch.zeros(3))
    >>> D.shape, float(D.abs().amax(-1).min())
    (torch.Size([6, 3]), 0.5)
    """
    v = torch.randn(d, generator=g, dtype=like.dtype).to(like.device)
    v = v / v.norm()
    h = torch.eye(d, device=like.device, dtype=like.dtype) - 2 * torch.outer(v, v)  # orthogonal, symmetric
    h = h / h.abs().amax(-1, keepdim=True)  # rows with ‖·‖∞ = 1
    delta_m = mesh_size(poll_size)
    h = torch.round(h * (poll_size / delta_m)) * delta_m
    return torch.cat([h, -h])


def attack_step(problem, u: torch.Tensor, *, centred: bool) -> torch.Tensor:
    """The directional attack's direction in unit coordinates: ``-sign(Jᵀ ∇f(Phi(x)))`` (targeted FGSM).

    The reference code hits ``Phi(x + d) - Phi(x)`` with torchattacks' targeted FGSM, soft target ``∇f``; its
    cross-entropy at logits ≈ 0 turns ``∇f`` into ``∇f - mean(∇f)`` (``centred=True``), which can point nowhere.
    Gradients flow to ``u`` only: the model's parameters are never touched (shared models stay read-only).

    Shapes:
        u: (d,) -> (d,) with entries in {-1, 0, 1}
    """
    with torch.enable_grad():
        x = problem.to_box(u.detach()).requires_grad_(True)
        y = problem.model(x[None])  # (1, m)
        if not centred:  # one backward pass through f(Phi(x))
            (grad_x,) = torch.autograd.grad(problem.outer(y).sum(), x)
            return -torch.sign(grad_x)
        y_leaf = y.detach().requires_grad_(True)
        (grad_y,) = torch.autograd.grad(problem.outer(y_leaf).sum(), y_leaf)
        (grad_x,) = torch.autograd.grad(y, x, grad_outputs=grad_y - grad_y.mean(-1, keepdim=True))
    return -torch.sign(grad_x)  # the box scaling is positive, so sign(grad_u) = sign(grad_x)


def check_problem(problem) -> tuple[torch.Tensor, torch.Tensor]:
    """The problem's bounds, checked without calling it (a :class:`Problem` or anything shaped like one)."""
    lo, hi = getattr(problem, "lo", None), getattr(problem, "hi", None)
    if not callable(problem) or not isinstance(lo, torch.Tensor) or not isinstance(hi, torch.Tensor):
        raise OptiscopeError(f"Expected a Problem (see core.blackbox.make_problem), but got {type(problem).__name__}")
    finite = all(t.is_floating_point() and bool((t.abs() <= BOUND_LIMIT).all()) for t in (lo, hi))  # NaN fails
    if not finite or lo.dim() != 1 or lo.shape != hi.shape or not bool((lo < hi).all()):
        raise OptiscopeError(f"Expected bounds with lo < hi in every coordinate, but got lo={lo!r:.60}, hi={hi!r:.60}")
    return lo, hi


def check_start(problem, x0, lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
    """``x0`` (default: the problem's) as unit-cube coordinates, if it lies in the box."""
    x = problem.x0 if x0 is None else torch.as_tensor(x0)
    x = x.to(lo)
    if x.shape != lo.shape or not bool(((lo <= x) & (x <= hi)).all()):
        raise OptiscopeError(f"Expected `x0` of shape {tuple(lo.shape)} inside the bounds, but got {x!r:.80}")
    return (x - lo) / (hi - lo)


def check_run(problem, x0, budget: int, seed: int, goal: float | None) -> tuple[torch.Tensor, int, int, float]:
    """What every black-box run checks before its first step; returns (u0, budget, seed, goal)."""
    lo, hi = check_problem(problem)
    budget = check_int("budget", budget, 1, MAX_EVALUATIONS)
    check_budget("evaluations × d", budget * lo.shape[0], MAX_WORK, hint="Use a smaller budget or d.")
    seed = check_seed(seed)
    goal = -float("inf") if goal is None else check_range("goal", goal, -1e300, 1e300)
    return check_start(problem, x0, lo, hi), budget, seed, goal


def run(
    problem,
    *,
    x0: torch.Tensor | None = None,
    config: SearchConfig = SearchConfig(),
    budget: int = 2000,
    goal: float | None = None,
    seed: int = 0,
) -> Iterator[SearchState]:
    r"""Optimization by Directional Attacks (ODA): https://arxiv.org/abs/2510.01461

    Minimises ``f(Phi(x))`` on the problem's box with ``config.method``:

    - ``direct-search``: a MADS poll of 2d Householder directions (opportunistic, in order), frame ``Δp`` doubled
      on success and halved on failure, the mesh ``Δm = min(Δp, Δp²)``, plus one covering point per iteration;
    - ``attack``: ``x + r · sign(-Jᵀ∇f)`` only; r grows ×1.3 on a sufficient decrease, ×1.1 on any decrease,
      shrinks ÷1.3 otherwise; the run stops when r hits ``attack_min``;
    - ``hybrid``: the attack first, and the direct-search iteration only when the attack did not decrease f by
      ``sufficient`` (relative); it stops when both radii are at their minimum.

    Args:
        problem (`Problem`): from :func:`~core.blackbox.make_problem` (or :func:`surrogate`, :func:`landscape`).
        x0 (`torch.Tensor`, optional): the start in the box; defaults to ``problem.x0``.
        config (`SearchConfig`): method, attack variant and radii.
        budget (`int`, defaults to `2000`): evaluations of f(Phi(.)), at most ``MAX_EVALUATIONS``.
        goal (`float`, optional): stop once f ≤ goal (e.g. the target 1e-4 of the reference note).
        seed (`int`, defaults to `0`): the poll bases and covering points (a private CPU ``torch.Generator``, so
            a seed gives the same path on every device).

    Yields:
        :class:`SearchState` at the start (step 0) and after every iteration.

    Shapes:
        x0: (d,) -> state.x: (d,)

    >>> from core.blackbox.problems import surrogate
    >>> last = list(run(surrogate(2, seed=0), budget=300, goal=1e-4))[-1]
    >>> last.value <= 1e-4, last.evaluations <= 300
    (True, True)
    """
    if not isinstance(config, SearchConfig):
        raise OptiscopeError(f"Expected `config` to be a SearchConfig, but got {type(config).__name__}")
    u, budget, seed, goal = check_run(problem, x0, budget, seed, goal)
    return _loop(problem, u, config, budget, goal, generator(seed))  # drawn on the CPU: one seed, one path anywhere


@dataclass
class _Incumbent:
    """The loop's working memory: the best point, its value, the radii and the counters."""

    u: torch.Tensor
    value: float
    poll_size: float
    attack_radius: float
    evaluations: int = 1
    gradients: int = 0


def _evaluate(problem, u: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return problem(problem.to_box(u))


def _state(
    problem,
    step: int,
    inc: _Incumbent,
    success: str,
    tried: list[tuple[torch.Tensor, torch.Tensor]],
    arrow: torch.Tensor,
) -> SearchState:
    points = torch.cat([p for p, _ in tried]) if tried else inc.u[None, :][:0]
    values = torch.cat([v for _, v in tried]) if tried else inc.u[:0]
    return SearchState(
        step=step,
        x=problem.to_box(inc.u).detach(),
        value=inc.value,
        evaluations=inc.evaluations,
        gradients=inc.gradients,
        poll_size=inc.poll_size,
        mesh_size=mesh_size(inc.poll_size),
        attack_radius=inc.attack_radius,
        success=success,
        points=problem.to_box(points).detach(),
        values=values.detach(),
        arrow=(arrow * (problem.hi - problem.lo)).detach(),
    )


def _loop(problem, u: torch.Tensor, cfg: SearchConfig, budget: int, goal: float, g) -> Iterator[SearchState]:
    start = float(_evaluate(problem, u[None])[0])
    if start != start or start in (float("inf"), -float("inf")):
        raise OptiscopeError("Expected a finite f(Phi(x0)), but it is NaN or inf")
    inc = _Incumbent(u, start, cfg.poll_size, cfg.attack_radius)
    yield _state(problem, 0, inc, "start", [], torch.zeros_like(u))
    step = 0
    while inc.evaluations < budget and inc.value > goal:
        step += 1
        tried: list[tuple[torch.Tensor, torch.Tensor]] = []
        arrow, success = torch.zeros_like(u), "none"
        if cfg.method != "direct-search":
            arrow, success, enough = _attack(problem, inc, cfg, tried)
            if cfg.method == "attack" or enough:
                yield _state(problem, step, inc, success, tried, arrow)
                if cfg.method == "attack" and success == "none" and inc.attack_radius <= cfg.attack_min:
                    return  # stalled: the attack's radius is spent
                continue
        for move in (_cover, _poll) if cfg.covering else (_poll,):
            if inc.evaluations >= budget:
                break
            if move(problem, inc, cfg, tried, budget - inc.evaluations, g):
                success = "poll" if move is _poll else "search"
                break
        yield _state(problem, step, inc, success, tried, arrow)
        if inc.poll_size < cfg.poll_min and (cfg.method == "direct-search" or inc.attack_radius <= cfg.attack_min):
            return


def _accept(inc: _Incumbent, u: torch.Tensor, value: float) -> bool:
    better = value < inc.value
    if better:
        inc.u, inc.value = u, value
    return better


def _attack(problem, inc: _Incumbent, cfg: SearchConfig, tried: list) -> tuple[torch.Tensor, str, bool]:
    """One attack step: (the step taken in unit coordinates, "attack" or "none", whether it was sufficient)."""
    direction = attack_step(problem, inc.u, centred=cfg.attack == "centred")
    candidate = (inc.u + inc.attack_radius * direction).clamp(0.0, 1.0)
    value = _evaluate(problem, candidate[None])
    tried.append((candidate[None], value))
    inc.evaluations, inc.gradients = inc.evaluations + 1, inc.gradients + 1
    arrow, before = candidate - inc.u, inc.value
    if not _accept(inc, candidate, float(value[0])):
        inc.attack_radius = max(inc.attack_radius / 1.3, cfg.attack_min)
        return arrow, "none", False
    enough = (before - inc.value) / max(abs(before), TINY) >= cfg.sufficient
    inc.attack_radius = min(inc.attack_radius * (1.3 if enough else 1.1), cfg.attack_max)
    return arrow, "attack", enough


def _cover(problem, inc: _Incumbent, cfg: SearchConfig, tried: list, left: int, g) -> bool:
    """cDSM's covering step: one uniform point of the box (dense in the limit, so the search stays global)."""
    candidate = torch.rand(inc.u.shape, generator=g, dtype=inc.u.dtype).to(inc.u.device)
    value = _evaluate(problem, candidate[None])
    tried.append((candidate[None], value))
    inc.evaluations += 1
    return _accept(inc, candidate, float(value[0]))


def _poll(problem, inc: _Incumbent, cfg: SearchConfig, tried: list, left: int, g) -> bool:
    """An opportunistic poll, evaluated as one batch: the points after the first improvement are not charged."""
    candidates = (inc.u + poll_directions(inc.u.shape[0], inc.poll_size, g, inc.u)).clamp(0.0, 1.0)[:left]
    values = _evaluate(problem, candidates)
    better = torch.nonzero(values < inc.value)
    used = int(better[0, 0]) + 1 if len(better) else len(values)
    tried.append((candidates[:used], values[:used]))
    inc.evaluations += used
    if used <= len(values) and len(better):
        _accept(inc, candidates[used - 1], float(values[used - 1]))
        inc.poll_size = min(2 * inc.poll_size, 1.0)
        return True
    inc.poll_size /= 2
    return False
