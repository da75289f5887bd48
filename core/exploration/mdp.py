"""Linear mixture MDPs as data, value iteration, and planning with an estimated θ.

A linear mixture MDP (https://arxiv.org/abs/2303.10165) has transitions P(s'|s,a) = Σᵢ θ*ᵢ φᵢ(s'|s,a), so one
Bellman backup is linear in θ: [PV](s,a) = ⟨ψ_V(s,a), θ⟩ with ψ_V(s,a) = Σ_{s'} φ(s'|s,a) V(s'). Rewards are
per-state values r(s) ∈ [0, 1] paid r(s)/H at each of the H steps (the horizon-free scaling Σ_h r_h ≤ 1), so
every value lies in [0, 1] whatever the horizon.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from core.errors import OptiscopeError, check_budget, check_int

MAX_SIZE = 2_000_000  # entries of φ, S·A·S·d: a "small" MDP the lab plans on exactly
TOLERANCE = 1e-9  # how far from a distribution P(·|s,a) may be (rounding of the features)
MAX_HORIZON = 1000  # one episode rolls out and plans H steps in Python: ~1 s per state at H = 1000 on a CPU


@dataclass(frozen=True)
class LinearMixtureMDP:
    """A linear mixture MDP: features φ(s'|s,a) ∈ R^d, the true θ*, and the start state.

    Args:
        phi (`torch.Tensor`): (S, A, S, d) features; P = φ θ* must be a distribution for every (s, a).
        theta (`torch.Tensor`): (d,) the true mixture weights θ*.
        start (`int`, defaults to `0`): the state every episode starts in.
    """

    phi: torch.Tensor
    theta: torch.Tensor
    start: int = 0

    def __post_init__(self) -> None:
        phi, theta = self.phi, self.theta
        if not (_real(phi) and phi.ndim == 4 and phi.shape[0] == phi.shape[2]):
            raise OptiscopeError(f"Expected `phi` to be a real (S, A, S, d) tensor, but got {_shape(phi)}")
        if not (_real(theta) and theta.dtype == phi.dtype and theta.shape == (phi.shape[3],)):
            raise OptiscopeError(
                f"Expected `theta` of shape ({phi.shape[3]},) and dtype {phi.dtype}, but got {_shape(theta)}"
            )
        if phi.numel() > MAX_SIZE:
            raise OptiscopeError(f"Expected at most {MAX_SIZE:g} feature entries S·A·S·d, but got {phi.numel()}")
        check_int("start", self.start, 0, phi.shape[0] - 1)
        p = self.transitions
        if not torch.isfinite(p).all():
            raise OptiscopeError("Expected finite features `phi` and `theta`, but P = φθ has NaN or inf entries")
        low, sums = float(p.min()), p.sum(-1)
        worst = int((sums - 1).abs().argmax())
        if low < -TOLERANCE or abs(float(sums.flatten()[worst]) - 1) > TOLERANCE:
            s, a = divmod(worst, p.shape[1])
            raise OptiscopeError(
                "Expected features that define a distribution (P(·|s,a) = Σᵢ θᵢ φᵢ(·|s,a) ≥ 0, summing to 1), "
                f"but min P = {low:.3g} and P(·|s={s},a={a}) sums to {float(sums[s, a]):.6g}"
            )

    @property
    def transitions(self) -> torch.Tensor:
        """P(s'|s,a) = Σᵢ θᵢ φᵢ(s'|s,a), (S, A, S)."""
        return self.phi @ self.theta

    @property
    def n_states(self) -> int:
        return self.phi.shape[0]

    @property
    def d(self) -> int:
        return self.phi.shape[3]


def psi(phi: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """ψ_V(s,a) = Σ_{s'} φ(s'|s,a) V(s') for a batch of value vectors: (R, S) -> (R, S, A, d)."""
    return (phi.transpose(-1, -2) @ values.T).permute(3, 0, 1, 2)  # (S, A, d, R) -> (R, S, A, d); matmul beats einsum


@dataclass(frozen=True)
class Plan:
    """Values and greedy policy of a planner. Shapes: values (R, H+1, S), policy (R, H, S) (action indices)."""

    values: torch.Tensor
    policy: torch.Tensor


def check_horizon(horizon: int) -> int:
    return check_int("horizon", horizon, 1, MAX_HORIZON)


def value_iteration(transitions: torch.Tensor, rewards: torch.Tensor, *, horizon: int) -> Plan:
    """Finite-horizon value iteration on a known kernel: Q_h = r/H + P V_{h+1}, V_h = max_a Q_h.

    Shapes:
        transitions: (S, A, S); rewards: (R, S) in [0, 1] -> Plan with values (R, H+1, S)
    """
    transitions = check_transitions(transitions)
    rewards = _check_rewards(rewards, transitions.shape[0], transitions)
    return _value_iteration(transitions, rewards, check_horizon(horizon))


def _value_iteration(transitions: torch.Tensor, rewards: torch.Tensor, horizon: int) -> Plan:
    return _backward(lambda v: (transitions @ v.T).permute(2, 0, 1), rewards, horizon)


def plan(mdp: LinearMixtureMDP, theta: torch.Tensor, rewards: torch.Tensor, *, horizon: int) -> Plan:
    """The planning step: value iteration with the linear backup ⟨ψ_{V_{h+1}}(s,a), θ⟩, values clipped to [0, 1].

    With an estimated θ the backup need not come from a distribution (P̂ = φθ̂ can be negative), so values are
    clipped as the algorithms do; with θ = θ* it is value iteration exactly.
    """
    mdp = check_mdp(mdp)
    return _plan(mdp, check_theta(mdp, theta), check_rewards(mdp, rewards), check_horizon(horizon))


def _plan(mdp: LinearMixtureMDP, theta: torch.Tensor, rewards: torch.Tensor, horizon: int) -> Plan:
    estimated = mdp.phi @ theta  # P̂ = φθ̂, (S, A, S): Σ_{s'} P̂(s'|s,a) V(s') is ⟨ψ_V(s,a), θ⟩, in one product
    return _backward(lambda v: (estimated @ v.T).permute(2, 0, 1), rewards, horizon, clip=True)


def _backward(backup, rewards: torch.Tensor, horizon: int, *, clip: bool = False) -> Plan:
    values = [torch.zeros_like(rewards)]
    policies = []
    for _ in range(horizon):
        q = rewards.unsqueeze(-1) / horizon + backup(values[0])  # (R, S, A)
        q = q.clamp(0.0, 1.0) if clip else q
        best, action = q.max(-1)
        values.insert(0, best)
        policies.insert(0, action)
    return Plan(torch.stack(values, 1), torch.stack(policies, 1))


def evaluate(transitions: torch.Tensor, policy: torch.Tensor, rewards: torch.Tensor) -> torch.Tensor:
    """Values V^π_h(s) of a (R, H, S) policy on the true kernel, (R, H+1, S)."""
    transitions = check_transitions(transitions)
    rewards = _check_rewards(rewards, transitions.shape[0], transitions)
    return _evaluate(transitions, check_policy(policy, transitions, rewards), rewards)


def _evaluate(transitions: torch.Tensor, policy: torch.Tensor, rewards: torch.Tensor) -> torch.Tensor:
    horizon = policy.shape[1]
    values = [torch.zeros_like(rewards).unsqueeze(-1)]
    states = torch.arange(transitions.shape[0], device=transitions.device)
    followed = transitions[states, policy]  # (R, H, S, S): P(·|s, π_h(s)), gathered once
    paid = (rewards / horizon).unsqueeze(-1)  # (R, S, 1)
    for h in reversed(range(horizon)):
        values.insert(0, torch.baddbmm(paid, followed[:, h], values[0]))
    return torch.cat(values, -1).transpose(1, 2)


def suboptimality(mdp: LinearMixtureMDP, theta: torch.Tensor, rewards: torch.Tensor, *, horizon: int) -> torch.Tensor:
    """V*(s₁) − V^π̂(s₁) for each reward, π̂ planned with ``theta``, both values on the true kernel: (R,)."""
    mdp = check_mdp(mdp)
    theta, rewards, horizon = check_theta(mdp, theta), check_rewards(mdp, rewards), check_horizon(horizon)
    best = _value_iteration(mdp.transitions, rewards, horizon).values[:, 0, mdp.start]
    planned = _evaluate(mdp.transitions, _plan(mdp, theta, rewards, horizon).policy, rewards)
    return best - planned[:, 0, mdp.start]


def check_mdp(mdp: LinearMixtureMDP) -> LinearMixtureMDP:
    if not isinstance(mdp, LinearMixtureMDP):
        raise OptiscopeError(f"Expected `mdp` to be a LinearMixtureMDP, but got {type(mdp).__name__}")
    return mdp


def check_rewards(mdp: LinearMixtureMDP, rewards: torch.Tensor) -> torch.Tensor:
    """``rewards`` as an (R, S) tensor on the MDP's device and dtype, each entry in [0, 1]."""
    return _check_rewards(rewards, mdp.n_states, mdp.phi)


def _check_rewards(rewards: torch.Tensor, n_states: int, like: torch.Tensor) -> torch.Tensor:
    if (
        not isinstance(rewards, torch.Tensor)
        or rewards.is_complex()
        or rewards.ndim != 2
        or rewards.shape[1] != n_states
    ):
        raise OptiscopeError(f"Expected `rewards` to be a real (R, {n_states}) tensor, but got {_shape(rewards)}")
    rewards = rewards.to(like)
    if rewards.shape[0] == 0 or not ((rewards >= 0) & (rewards <= 1)).all():
        raise OptiscopeError("Expected `rewards` with at least one row and every entry in [0, 1] (paid r/H per step)")
    check_budget("reward entries R·S", rewards.numel(), MAX_SIZE)
    return rewards


def check_theta(mdp: LinearMixtureMDP, theta: torch.Tensor) -> torch.Tensor:
    """An estimate θ̂ (d,): any finite real vector (P̂ = φθ̂ need not be a distribution), in the MDP's dtype."""
    if not (_real(theta) and theta.shape == (mdp.d,) and bool(torch.isfinite(theta).all())):
        raise OptiscopeError(f"Expected `theta` to be a finite real ({mdp.d},) tensor, but got {_shape(theta)}")
    return theta.to(mdp.phi)


def check_transitions(transitions: torch.Tensor) -> torch.Tensor:
    """A kernel P (S, A, S) whose every row P(·|s,a) is a distribution."""
    p = transitions
    if not (_real(p) and p.ndim == 3 and p.shape[0] == p.shape[2] and p.numel() > 0):
        raise OptiscopeError(f"Expected `transitions` to be a real (S, A, S) tensor, but got {_shape(p)}")
    check_budget("transition entries S·A·S", p.numel(), MAX_SIZE)
    if not (
        bool(torch.isfinite(p).all()) and float(p.min()) >= -TOLERANCE and ((p.sum(-1) - 1).abs() <= TOLERANCE).all()
    ):
        raise OptiscopeError("Expected `transitions` whose rows P(·|s,a) are distributions (>= 0, summing to 1)")
    return p


def check_policy(policy: torch.Tensor, transitions: torch.Tensor, rewards: torch.Tensor) -> torch.Tensor:
    """A policy (R, H, S) of action indices in [0, A), one row per reward."""
    (r, s), a = rewards.shape, transitions.shape[1]
    integer = isinstance(policy, torch.Tensor) and not policy.is_floating_point() and not policy.is_complex()
    if not (integer and policy.dtype != torch.bool and policy.ndim == 3 and policy.shape[::2] == (r, s)):
        raise OptiscopeError(f"Expected `policy` to be an integer ({r}, H, {s}) tensor, but got {_shape(policy)}")
    check_horizon(policy.shape[1])
    check_budget("gathered entries R·H·S·S", policy.numel() * s, MAX_SIZE)
    if policy.numel() and not ((policy >= 0) & (policy < a)).all():
        raise OptiscopeError(f"Expected `policy` entries (actions) in [0, {a}), but got {policy.min()}..{policy.max()}")
    return policy.to(device=transitions.device, dtype=torch.long)


def _real(x) -> bool:
    return isinstance(x, torch.Tensor) and x.is_floating_point()


def _shape(x) -> str:
    return f"shape {tuple(x.shape)}" if isinstance(x, torch.Tensor) else type(x).__name__
