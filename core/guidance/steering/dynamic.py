"""Dynamic CFG via online feedback: https://arxiv.org/abs/2509.16131 — a scale per sample and step, chosen by evaluators."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from core.errors import OptiscopeError, check_range

from .base import Guided, StepInput, check_scale, guided

MAX_CANDIDATES = 32  # the candidate x̂0s are scored in one batch of |S|·N


@dataclass(frozen=True)
class Evaluator:
    """A small model that scores clean predictions: ``score(x0, labels) -> (M,)``, higher is better.

    ``weight`` is λ_k in Σ_k λ_k·E_k; the evaluators are proxies of what a user wants, never the judge.
    """

    name: str
    score: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    weight: float = 1.0

    def __post_init__(self):
        check_range("weight", self.weight, 0.0, 1e3)


def candidate_predictions(x0_cond: torch.Tensor, x0_uncond: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
    """X0[s] = D_u + s·(D_c − D_u) for every candidate s: linear in s, so no model call (shape (|S|, N, ...)).

    >>> candidate_predictions(torch.ones(1, 2), torch.zeros(1, 2), torch.tensor([1.0, 3.0]))[:, 0]
    tensor([[1., 1.],
            [3., 3.]])
    """
    s = candidates.reshape(-1, *[1] * x0_cond.dim()).to(x0_cond)
    return x0_uncond[None] + s * (x0_cond - x0_uncond)[None]


def evaluator_scores(evaluators: Sequence[Evaluator], x0s: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Each evaluator's raw score of each candidate, shape (N, |S|, E), from X0 of shape (|S|, N, ...)."""
    n_cand, n = x0s.shape[:2]
    flat, labels = x0s.reshape(n_cand * n, *x0s.shape[2:]), target.repeat(n_cand)
    with torch.no_grad():
        raw = [e.score(flat, labels).reshape(n_cand, n).T.double() for e in evaluators]
    return torch.stack(raw, dim=2)


def choose(scores: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """s* = argmax_s Σ_k λ_k·E_k per sample; candidates ascend, so ties go to the smaller scale.

    >>> choose(torch.tensor([[[0.0], [0.0], [-1.0]]]), torch.tensor([1.0]))
    tensor([0])
    """
    total = (scores * weights.to(scores)).sum(dim=2)  # (N, |S|)
    return total.argmax(dim=1)  # the first maximum: the smallest scale among ties


@dataclass(frozen=True)
class DynamicCFG:
    r"""Dynamic CFG via online feedback (Dynamic CFG): https://arxiv.org/abs/2509.16131

    At every step and for every sample: D_c, D_u (2 model calls, as CFG), the candidate predictions
    X0[s] = D_u + s·(D_c − D_u) for s in ``candidates``, and the scale s* = argmax_s Σ_k λ_k·E_k(X0[s], y).
    The search makes no model call; the evaluators' cost is the overhead (see bench/steering.py).

    Args:
        evaluators (`tuple[Evaluator, ...]`): alignment and fidelity proxies (see `mixture_evaluators`,
            `digits_evaluators`); a weight of 0 switches one off.
        candidates (`tuple[float, ...]`, defaults to the note's S): the candidate scales, sorted here.
    """

    evaluators: tuple[Evaluator, ...]
    candidates: tuple[float, ...] = (1.0, 1.5, 2.0, 3.0, 5.0, 7.5, 10.0)

    def __post_init__(self):
        if not isinstance(self.candidates, (tuple, list)) or not self.candidates:
            raise OptiscopeError(
                f"Expected `candidates` to be a non-empty tuple of scales, but got {self.candidates!r}"
            )
        if len(self.candidates) > MAX_CANDIDATES:
            raise OptiscopeError(f"Expected at most {MAX_CANDIDATES} `candidates`, but got {len(self.candidates)}")
        for w in self.candidates:
            check_scale("candidates", w)
        if not self.evaluators or not all(isinstance(e, Evaluator) for e in self.evaluators):
            raise OptiscopeError(
                f"Expected `evaluators` to be a non-empty tuple of Evaluator, but got {self.evaluators!r}"
            )
        object.__setattr__(self, "candidates", tuple(sorted(float(w) for w in set(self.candidates))))

    def check(self, denoiser) -> None:
        """Score one zero prediction per evaluator: a wrong shape or a non-(M,) score is refused here."""
        x0 = torch.zeros((1, *denoiser.sample_shape), dtype=denoiser.dtype, device=denoiser.device)
        for e in self.evaluators:
            try:
                out = e.score(x0, torch.zeros(1, dtype=torch.long, device=denoiser.device))
            except (RuntimeError, IndexError) as err:
                raise OptiscopeError(
                    f"Evaluator `{e.name}` does not fit samples of shape {x0.shape[1:]}: {err}"
                ) from None
            if not isinstance(out, torch.Tensor) or out.shape != (1,):
                raise OptiscopeError(f"Expected evaluator `{e.name}` to return one score per sample, but got {out!r}")

    def calls(self, denoiser, levels: torch.Tensor, i: int) -> int:
        return 2

    def guide(self, s: StepInput) -> Guided:
        x0_cond, x0_uncond = s.predict(s.x, s.target), s.predict(s.x, None)
        candidates = torch.tensor(self.candidates, dtype=torch.float64, device=s.x.device)
        scores = evaluator_scores(self.evaluators, candidate_predictions(x0_cond, x0_uncond, candidates), s.target)
        weights = torch.tensor([e.weight for e in self.evaluators], dtype=torch.float64, device=s.x.device)
        scale = candidates[choose(scores, weights)].to(s.x.dtype)
        return guided(s.x, x0_cond, x0_uncond, scale, model_evals=2, scores=scores.float())
