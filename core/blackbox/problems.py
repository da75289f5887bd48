"""Black-box problems ``min f(Phi(x))`` over a box: a network ``Phi`` and a smooth outer function ``f``.

Optimization by Directional Attacks (ODA): https://arxiv.org/abs/2510.01461 studies ``max f(Phi(x))`` where
``Phi`` is a trained network standing in for a simulator; here every problem is a minimisation (the lab's
convention, shared with ``core.cbo``), so the paper's ``f`` is our ``-outer``. Three kinds share one record:

- procedural surrogates (the reference note's toy): a random tanh MLP ``n -> 64 -> 64 -> 8`` drawn from a
  seed and ``outer(y) = ||y - Phi(x*)||^2`` with ``x*`` drawn in the box, so the optimum value is 0;
- trained surrogates: an MLP fitted in seconds to samples of a ``core.cbo`` landscape (the "simulator");
- the CBO lab's landscapes themselves, with ``Phi`` the identity (the attack becomes a signed-gradient step).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from core.cbo.objectives import OBJECTIVES
from core.device import generator
from core.errors import OptiscopeError, check_choice, check_int, check_seed

# Problem kind (the URL value) -> display label.
KINDS = {
    "surrogate": "Procedural surrogate (random tanh MLP)",
    "trained": "Surrogate trained here on a CBO landscape",
    "landscape": "CBO landscape (Φ = identity)",
    "zoo": "Zoo digits classifier (counterfactual)",
}
SURROGATE_WIDTH, SURROGATE_OUTPUTS = 64, 8  # the reference note's n -> 64 -> 64 -> 8 tanh MLP
SURROGATE_GAIN = 1.5  # U(-gain, gain) / sqrt(fan_in), 1.5 × nn.Linear's init: tanh units bend (DSM 5/10 at n = 10)
MAX_INPUTS = 1000  # a direct-search poll holds 2n points of n coordinates
BOUND_LIMIT = 1e6


@dataclass(frozen=True)
class Problem:
    """``value(x) = outer(model(x))`` on the box ``[lo, hi]``, with a default start and the optimum if known.

    ``model`` maps (B, d) -> (B, m) and ``outer`` (B, m) -> (B,), both differentiable torch functions.
    Build one with :func:`make_problem` (which checks it); the record itself is never mutated.

    Shapes:
        lo, hi, x0: (d,); value: (..., d) -> (...)
    """

    name: str
    model: Callable[[torch.Tensor], torch.Tensor]
    outer: Callable[[torch.Tensor], torch.Tensor]
    lo: torch.Tensor
    hi: torch.Tensor
    x0: torch.Tensor
    optimum: float | None = None  # the known minimum value (0 for procedural surrogates)
    x_star: torch.Tensor | None = None

    @property
    def d(self) -> int:
        return self.lo.shape[0]

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.reshape(-1, self.d)  # (B, d): zoo models flatten from dim 1
        return self.outer(self.model(flat)).reshape(x.shape[:-1])

    def to_box(self, u: torch.Tensor) -> torch.Tensor:
        """Unit-cube coordinates u in [0, 1]^d -> the box (every size in the lab is relative to the box)."""
        return self.lo + u * (self.hi - self.lo)

    def to_unit(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.lo) / (self.hi - self.lo)


def make_problem(
    model: Callable[[torch.Tensor], torch.Tensor],
    outer: Callable[[torch.Tensor], torch.Tensor],
    *,
    lo: torch.Tensor,
    hi: torch.Tensor,
    name: str = "problem",
    x0: torch.Tensor | None = None,
    optimum: float | None = None,
    x_star: torch.Tensor | None = None,
) -> Problem:
    """A checked :class:`Problem`: bounds with ``lo < hi``, a start inside them, a model that takes d inputs.

    >>> p = make_problem(lambda x: x, lambda y: y.square().sum(-1), lo=-torch.ones(2), hi=torch.ones(2))
    >>> p(torch.tensor([[0.5, 0.5]]))
    tensor([0.5000])
    >>> make_problem(lambda x: x, lambda y: y.sum(-1), lo=torch.ones(2), hi=torch.ones(2))
    Traceback (most recent call last):
    core.errors.OptiscopeError: Expected bounds with lo < hi in every coordinate, but got lo=[1.0, 1.0], hi=[1.0, 1.0]
    """
    lo = _bound("lo", lo)
    hi = _bound("hi", hi).to(lo.device)
    if lo.dim() != 1 or lo.shape != hi.shape or lo.shape[0] == 0:
        raise OptiscopeError(f"Expected `lo` and `hi` of one shape (d,), but got {tuple(lo.shape)}, {tuple(hi.shape)}")
    check_int("d", lo.shape[0], 1, MAX_INPUTS)
    if not bool((lo < hi).all()):
        raise OptiscopeError(
            f"Expected bounds with lo < hi in every coordinate, but got lo={lo.tolist()!s:.80}, hi={hi.tolist()!s:.80}"
        )
    start = (lo + hi) / 2 if x0 is None else _bound("x0", x0).to(lo)
    if start.shape != lo.shape or not bool(((lo <= start) & (start <= hi)).all()):
        raise OptiscopeError(f"Expected `x0` of shape {tuple(lo.shape)} inside the bounds, but got {start!r:.80}")
    if not callable(model) or not callable(outer):
        raise OptiscopeError("Expected callable `model` and `outer`")
    problem = Problem(name, model, outer, lo, hi, start, optimum, x_star)
    _check_value(problem)
    return problem


def _bound(name: str, value) -> torch.Tensor:
    try:
        t = torch.as_tensor(value, dtype=torch.get_default_dtype()).detach()
    except (TypeError, ValueError, RuntimeError):
        raise OptiscopeError(f"Expected `{name}` to be a vector of numbers, but got {value!r:.80}") from None
    if not bool(torch.isfinite(t).all()) or bool((t.abs() > BOUND_LIMIT).any()):
        raise OptiscopeError(f"Expected finite `{name}` within ±{BOUND_LIMIT:g}, but got {value!r:.80}")
    return t


def _check_value(problem: Problem) -> None:
    """One evaluation at x0: a model whose input size does not match d is a message, not a traceback."""
    try:
        with torch.no_grad():
            value = problem(problem.x0[None])
    except RuntimeError as err:
        raise OptiscopeError(
            f"Expected a surrogate that takes d={problem.d} inputs (the bounds' size), but calling it failed: "
            f"{str(err).splitlines()[0]:.160}"
        ) from None
    if not isinstance(value, torch.Tensor) or value.shape != (1,) or not bool(torch.isfinite(value).all()):
        raise OptiscopeError(f"Expected one finite value per point from {problem.name}, but got {value!r:.80}")


def tanh_mlp(d: int, hidden: int, outputs: int, g: torch.Generator, gain: float = SURROGATE_GAIN) -> nn.Module:
    """A tanh MLP ``d -> hidden -> hidden -> outputs`` with weights ~ N(0, gain^2 / fan_in) from ``g``."""
    sizes = (d, hidden, hidden, outputs)
    layers: list[nn.Module] = []
    for fan_in, fan_out in zip(sizes, sizes[1:], strict=False):
        layer = nn.Linear(fan_in, fan_out)
        with torch.no_grad():
            bound = gain / fan_in**0.5
            layer.weight.copy_((2 * torch.rand(fan_out, fan_in, generator=g) - 1) * bound)
            layer.bias.copy_((2 * torch.rand(fan_out, generator=g) - 1) * bound)
        layers += [layer, nn.Tanh()]
    return nn.Sequential(*layers[:-1]).requires_grad_(False)


def surrogate(d: int, *, seed: int = 0) -> Problem:
    """A procedural neural surrogate (the reference note's toy): ``||Phi(x) - Phi(x*)||^2`` on ``[-1, 1]^d``.

    ``Phi`` is a random tanh MLP ``d -> 64 -> 64 -> 8`` and x* a random point, both from ``seed``; the start
    is the box's centre and the optimum value is 0.

    >>> p = surrogate(10, seed=3)
    >>> p.d, float(p(p.x_star[None])[0])
    (10, 0.0)
    """
    d, seed = check_int("d", d, 1, MAX_INPUTS), check_seed(seed)
    g = generator(seed)
    model = tanh_mlp(d, SURROGATE_WIDTH, SURROGATE_OUTPUTS, g)
    x_star = torch.rand(d, generator=g) * 2 - 1
    with torch.no_grad():
        y_star = model(x_star[None])[0]  # (m,)
    outer = _distance_to(y_star)
    return make_problem(
        model, outer, lo=-torch.ones(d), hi=torch.ones(d), name=f"surrogate d={d} #{seed}", optimum=0.0, x_star=x_star
    )


class _distance_to:  # a picklable closure: st.cache_data hashes what it returns
    def __init__(self, y: torch.Tensor) -> None:
        self.y = y

    def __call__(self, out: torch.Tensor) -> torch.Tensor:
        return (out - self.y.to(out)).square().sum(-1)


def _scalar(out: torch.Tensor) -> torch.Tensor:
    return out[..., 0]


def landscape(name: str, d: int) -> Problem:
    """A ``core.cbo`` landscape as a problem: ``Phi`` is the identity, the box and optimum are the landscape's.

    >>> p = landscape("Rosenbrock", 2)
    >>> float(p(torch.ones(1, 2))[0]), p.lo.tolist()
    (0.0, [-2.0, -2.0])
    """
    objective = OBJECTIVES[check_choice("landscape", name, OBJECTIVES)]
    d = objective.check_dim(check_int("d", d, 1, MAX_INPUTS))
    lo, hi = objective.box
    x_star = objective.minimiser(d)
    x0 = torch.full((d,), lo + 0.2 * (hi - lo))  # off-centre: several landscapes have x* at the centre
    return make_problem(
        nn.Identity(),
        objective.fn,
        lo=torch.full((d,), lo),
        hi=torch.full((d,), hi),
        name=name,
        x0=x0,
        optimum=0.0,
        x_star=x_star,
    )


def train_surrogate(name: str, d: int, *, n_samples: int = 512, steps: int = 300, seed: int = 0) -> Problem:
    """An MLP ``d -> 64 -> 64 -> 1`` fitted (Adam, MSE) to ``n_samples`` values of a ``core.cbo`` landscape.

    The landscape plays the expensive simulator; the fitted network is the surrogate being optimised.
    Values are standardised before fitting, so the surrogate's optimum is unknown (``optimum=None``).

    >>> p = train_surrogate("Quadratic", 2, steps=50)
    >>> p.d, p.optimum is None
    (2, True)
    """
    truth = landscape(name, d)
    n_samples, steps = check_int("n_samples", n_samples, 8, 20_000), check_int("steps", steps, 1, 5000)
    g = generator(check_seed(seed))
    x = truth.to_box(torch.rand(n_samples, truth.d, generator=g))
    y = truth(x)
    y = (y - y.mean()) / (y.std() + 1e-12)
    model = tanh_mlp(truth.d, SURROGATE_WIDTH, 1, g, gain=1.0).requires_grad_(True)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(steps):
        opt.zero_grad()
        loss = (model(x)[:, 0] - y).square().mean()
        loss.backward()
        opt.step()
    return make_problem(
        model.requires_grad_(False),
        _scalar,
        lo=truth.lo,
        hi=truth.hi,
        name=f"{name} surrogate (fit {steps} steps)",
        x0=truth.x0,
    )


def zoo_classifier(model: nn.Module, target: int, *, name: str = "zoo classifier") -> Problem:
    """A zoo digits classifier as ``Phi`` (64 pixels in [0, 1]) and ``outer`` the cross-entropy toward ``target``.

    A counterfactual search: the 8×8 image the (read-only) network calls ``target``, from a grey start.
    """
    target = check_int("target", target, 0, 9)
    device = next(model.parameters()).device
    lo, hi = torch.zeros(64, device=device), torch.ones(64, device=device)
    return make_problem(
        model, _CrossEntropy(target), lo=lo, hi=hi, name=f"{name} → {target}", x0=torch.full_like(lo, 0.5)
    )


class _CrossEntropy:
    def __init__(self, target: int) -> None:
        self.target = target

    def __call__(self, logits: torch.Tensor) -> torch.Tensor:
        return torch.logsumexp(logits, -1) - logits[..., self.target]


def instances(
    kind: str,
    *,
    d: int,
    count: int,
    seed: int = 0,
    landscape_name: str = "Rosenbrock",
    model: nn.Module | None = None,
    target: int = 3,
    device: torch.device | str | None = None,
) -> tuple[list[Problem], list[int]]:
    """The problems and seeds of a comparison: ``count`` procedural surrogates (seeds ``seed + k``) run once each,
    or one problem of another kind run with ``count`` seeds; built on the CPU, then moved to ``device`` (a zoo
    ``model`` is shared and read-only: its problem stays on the model's device).

    >>> problems, seeds = instances("surrogate", d=4, count=3, seed=5)
    >>> [p.name for p in problems], seeds
    (['surrogate d=4 #5', 'surrogate d=4 #6', 'surrogate d=4 #7'], [5])
    """
    kind, count = check_choice("kind", kind, KINDS), check_int("count", count, 1, 100)
    seed = check_int("seed", seed, 0, 2**63 - 1 - count)
    seeds = list(range(seed, seed + count))
    if kind == "zoo":
        if model is None:
            raise OptiscopeError("Expected a zoo `model` for a zoo problem")
        return [zoo_classifier(model, target)], seeds
    if kind == "surrogate":
        found, seeds = [surrogate(d, seed=s) for s in seeds], [seed]
    else:
        found = [train_surrogate(landscape_name, d, seed=seed) if kind == "trained" else landscape(landscape_name, d)]
    return [on_device(p, device) for p in found], seeds


def on_device(problem: Problem, device: torch.device | str | None) -> Problem:
    """A problem this lab built, moved to ``device`` (its own module moves in place; never pass a shared model)."""
    if device is None:
        return problem
    model = problem.model.to(device) if isinstance(problem.model, nn.Module) else problem.model
    moved = [None if t is None else t.to(device) for t in (problem.lo, problem.hi, problem.x0, problem.x_star)]
    return Problem(problem.name, model, problem.outer, *moved[:3], problem.optimum, moved[3])
