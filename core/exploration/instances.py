"""The lab's instances: the segmented RiverSwim chain, its reward set, and the lower-bound MDP (Thm 2.6.8)."""

from __future__ import annotations

import itertools
import math

import torch

from core.errors import check_int, check_positive
from core.exploration.mdp import LinearMixtureMDP

WEAK = {1: 0.3, 0: 0.4, -1: 0.3}  # "right" against the current: next-state offset -> probability
STRONG = {1: 0.9, 0: 0.1}
CHAIN_THETA = (1.0, 0.9, 0.8, 0.7, 0.9)
MAX_STATES = 100  # chain states: the features hold 2·n_states²·(segments + 1) numbers, segments ≤ n_states
TRADE_OFF = (0.3, 1.0)  # the trade-off reward: 0.3 at the first state, 1 at the last


def chain_mdp(
    *, n_states: int = 12, segments: int = 4, theta: tuple[float, ...] = CHAIN_THETA, dtype=torch.float64, device=None
) -> LinearMixtureMDP:
    """Segmented RiverSwim, a linear mixture MDP with d = segments + 1 (notes §3b).

    Actions: 0 = left (to s−1), 1 = right. φ₀ is a weak swim right (s+1: .3, stay: .4, s−1: .3); φ_j adds
    (strong − weak) to "right" inside segment j, strong = (s+1: .9, stay: .1). θ*_j is therefore identifiable
    only by swimming right inside segment j, and random play drifts left.
    """
    n_states = check_int("n_states", n_states, 2, MAX_STATES)
    segments = check_int("segments", segments, 1, n_states)
    phi = torch.zeros(n_states, 2, n_states, segments + 1, dtype=dtype, device=device)
    for s in range(n_states):
        phi[s, 0, max(s - 1, 0), 0] = 1.0
        for offset, p in WEAK.items():
            phi[s, 1, min(max(s + offset, 0), n_states - 1), 0] += p
        segment = 1 + s * segments // n_states
        for offset in (1, 0, -1):
            phi[s, 1, min(max(s + offset, 0), n_states - 1), segment] += STRONG.get(offset, 0.0) - WEAK[offset]
    return LinearMixtureMDP(phi, torch.tensor(theta, dtype=dtype, device=device))


def chain_rewards(*, n_states: int = 12, dtype=torch.float64, device=None) -> torch.Tensor:
    """The reward set: one "goal state g" reward per state, plus the trade-off reward. (S + 1, S)."""
    n_states = check_int("n_states", n_states, 2, MAX_STATES)
    goals = torch.eye(n_states, dtype=dtype, device=device)
    trade_off = torch.zeros(1, n_states, dtype=dtype, device=device)
    trade_off[0, 0], trade_off[0, -1] = TRADE_OFF
    return torch.cat([goals, trade_off])


def lower_bound_mdp(*, d: int = 5, episodes: int = 1000, delta: float = 1 / 6, signs=None, dtype=torch.float64):
    """The hard instance of the lower bound (Thm 2.6.8): 3 states x₁ → {x₂, x₃}, actions a ∈ {±1}^{d−1}.

    P(x₃|x₁,a) = δ + ⟨μ, a⟩ with μ ∈ {±Δ}^{d−1}, Δ = √(δ/K)/(4√2); x₂ and x₃ absorb. The reward 1 at x₃
    (paid 1/H per step) makes the suboptimality of a exactly (H−1)/H · 2Δ · #{i: aᵢ ≠ sign μᵢ}.

    Returns:
        (mdp, actions (A, d−1), mu (d−1,))
    """
    d, episodes = check_int("d", d, 2, 12), check_int("episodes", episodes)
    delta = check_positive("delta", delta)
    gap = math.sqrt(delta / episodes) / (4 * math.sqrt(2))
    signs = torch.ones(d - 1, dtype=dtype) if signs is None else torch.as_tensor(signs, dtype=dtype)
    actions = torch.tensor(list(itertools.product((-1.0, 1.0), repeat=d - 1)), dtype=dtype)  # (A, d−1)
    phi = torch.zeros(3, len(actions), 3, d, dtype=dtype)
    phi[0, :, 2, 0], phi[0, :, 1, 0] = delta, 1 - delta
    phi[0, :, 2, 1:], phi[0, :, 1, 1:] = actions, -actions
    phi[1, :, 1, 0] = phi[2, :, 2, 0] = 1.0
    mu = gap * signs
    return LinearMixtureMDP(phi, torch.cat([torch.ones(1, dtype=dtype), mu])), actions, mu
