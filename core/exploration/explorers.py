"""The three explorers: random actions, UCRL-RFE (Hoeffding) and a tractable HF-UCRL-RFE++.

Each is built fresh inside a run and has two methods: ``choose()`` the next episode's policy (H, S) and its
pseudo-reward at h = 1 (S, A), and ``update(path)`` with the episode's transitions. Value-targeted regression
(VTR) regresses V(s') on ψ_V(s,a), whose mean is ⟨ψ_V(s,a), θ*⟩.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import torch

from core.errors import check_budget
from core.exploration.mdp import LinearMixtureMDP, _plan, psi

MAX_SUPPORT = 10  # next states per (s, a): UCRL-RFE enumerates the 2^support vertices of its target box


@dataclass(frozen=True)
class Path:
    """One episode's transitions: states (H,), actions (H,), next states (H,), as index tensors."""

    states: torch.Tensor
    actions: torch.Tensor
    next_states: torch.Tensor


class Ridge:
    """Weighted ridge regression: Σ = λI + Σ_t w_t x_t x_tᵀ, b = Σ_t w_t y_t x_t, θ = Σ⁻¹ b."""

    def __init__(self, d: int, lam: float, like: torch.Tensor) -> None:
        self.gram = lam * torch.eye(d, dtype=like.dtype, device=like.device)
        self.b = torch.zeros(d, dtype=like.dtype, device=like.device)
        self.inverse = self.gram.inverse()
        self.theta = self.b.clone()

    def update(self, x: torch.Tensor, y: torch.Tensor, weight: torch.Tensor | None = None) -> None:
        """Add rows x (n, d) with targets y (n,) and weights (n,) (1 if None)."""
        wx = x if weight is None else x * weight.unsqueeze(-1)
        self.gram = self.gram + wx.T @ x
        self.b = self.b + wx.T @ y
        self.inverse = torch.linalg.inv(self.gram)
        self.theta = self.inverse @ self.b

    def norm(self, x: torch.Tensor) -> torch.Tensor:
        """‖x‖_{Σ⁻¹} over the last dimension."""
        return ((x @ self.inverse) * x).sum(-1).clamp_min(0.0).sqrt()


class RandomExplorer:
    """Uniformly random actions: the baseline that never asks where it has not been."""

    def __init__(
        self,
        mdp: LinearMixtureMDP,
        rewards: torch.Tensor,
        horizon: int,
        beta: float,
        lam: float,
        generator: torch.Generator,
    ) -> None:
        self.shape, self.n_actions, self.generator = (horizon, mdp.n_states), mdp.phi.shape[1], generator
        self.zeros = torch.zeros(mdp.phi.shape[:2], dtype=mdp.phi.dtype, device=mdp.phi.device)

    def choose(self) -> tuple[torch.Tensor, torch.Tensor]:
        policy = torch.randint(self.n_actions, self.shape, generator=self.generator, device=self.zeros.device)
        return policy, self.zeros

    def update(self, path: Path) -> None:
        """Random play learns nothing."""


class UcrlRfe:
    """UCRL-RFE (Zhang, Zhou, Gu 2021, https://arxiv.org/abs/2110.07282), Hoeffding version, values in [0, H].

    Pseudo-reward r_h(s,a) = min{1, (2β/H) max_{f: S→[0,H−h]} ‖ψ_f(s,a)‖_{Σ⁻¹}}; the max is at a vertex
    f = (H−h)·1_T of the box, T ⊆ the next-state support, found by enumeration. PLAN: Q_h = [r_h + ⟨ψ_V, θ⟩ +
    β‖ψ_V‖_{Σ⁻¹}]_[0,H]. VTR regresses f(s') on ψ_f(s,a) for the maximising f.
    """

    def __init__(
        self,
        mdp: LinearMixtureMDP,
        rewards: torch.Tensor,
        horizon: int,
        beta: float,
        lam: float,
        generator: torch.Generator,
    ) -> None:
        self.mdp, self.horizon, self.beta = mdp, horizon, beta
        self.vtr = Ridge(mdp.d, lam, mdp.phi)
        self.vertices, self.members = _box_vertices(mdp.phi)  # (S, A, 2^m, d), (S, A, 2^m, S)
        self.best = None

    def choose(self) -> tuple[torch.Tensor, torch.Tensor]:
        H, beta = self.horizon, self.beta
        spread, self.best = self.vtr.norm(self.vertices).max(-1)  # (S, A): max over the box vertices
        value, policy, bonus = self.vtr.b.new_zeros(1, self.mdp.n_states), [], None
        for h in reversed(range(H)):
            scale = H - h - 1  # V_{h+1} ranges over [0, H − h − 1] (h is 0-based)
            bonus = (2 * beta * scale / H * spread).clamp(max=1.0)
            ps = psi(self.mdp.phi, value)[0]  # (S, A, d)
            q = (bonus + ps @ self.vtr.theta + beta * self.vtr.norm(ps)).clamp(0.0, H)
            value, action = q.max(-1)
            value = value.unsqueeze(0)
            policy.insert(0, action)
        return torch.stack(policy), bonus

    def update(self, path: Path) -> None:
        scale = (self.horizon - 1 - torch.arange(self.horizon, device=path.states.device)).to(self.vtr.b)  # (H,)
        best = self.best[path.states, path.actions]  # (H,)
        x = scale.unsqueeze(-1) * self.vertices[path.states, path.actions, best]  # (H, d)
        y = scale * self.members[path.states, path.actions, best, path.next_states]
        self.vtr.update(x, y)


class HorizonFree:
    """HF-UCRL-RFE++ (https://arxiv.org/abs/2303.10165, Alg. 4–5), made tractable ("HF-lite", notes §3b).

    Line 5's oracle (a joint argmax over policies, θ in the confidence set and rewards) is not computable; here θ
    is fixed at the VTR estimate θ̃, r ranges over the finite reward set, and π maximises the optimistic
    trajectory uncertainty V̂_h = min{1, u_h + 2β‖ψ_{V̂_{h+1}}‖_{Σ̂⁻¹} + ⟨ψ_{V̂_{h+1}}, θ̃⟩} by dynamic
    programming, with u_h = min{1, β‖ψ_{Ṽ_{h+1}}‖_{Σ̃⁻¹}} from the greedy-for-r values Ṽ. Both value series are
    fitted by weighted VTR with one HOME level (moments V and V²), per episode instead of per step.
    """

    def __init__(
        self,
        mdp: LinearMixtureMDP,
        rewards: torch.Tensor,
        horizon: int,
        beta: float,
        lam: float,
        generator: torch.Generator,
    ) -> None:
        self.mdp, self.rewards, self.horizon, self.beta = mdp, rewards, horizon, beta
        self.alpha2, self.gamma2 = 1.0 / horizon, 1.0 / math.sqrt(mdp.d)  # α = H^{-1/2}, γ = d^{-1/4}
        self.tilde = (Ridge(mdp.d, lam, mdp.phi), Ridge(mdp.d, lam, mdp.phi))  # moments V, V² of Ṽ
        self.hat = (Ridge(mdp.d, lam, mdp.phi), Ridge(mdp.d, lam, mdp.phi))  # moments V, V² of V̂
        self.series = None

    def choose(self) -> tuple[torch.Tensor, torch.Tensor]:
        theta, beta = self.tilde[0].theta, self.beta
        pseudo = _plan(self.mdp, theta, self.rewards, self.horizon).values  # Ṽ per reward, (R, H+1, S)
        hat, policy, bonus = [torch.zeros_like(pseudo[:, 0])], [], None
        for h in reversed(range(self.horizon)):
            bonus = (beta * self.tilde[0].norm(psi(self.mdp.phi, pseudo[:, h + 1]))).clamp(max=1.0)  # u_h, (R, S, A)
            ps = psi(self.mdp.phi, hat[0])
            q = (bonus + 2 * beta * self.hat[0].norm(ps) + ps @ theta).clamp(0.0, 1.0)
            value, action = q.max(-1)
            hat.insert(0, value)
            policy.insert(0, action)
        k = int(hat[0][:, self.mdp.start].argmax())  # the reward whose trajectory is most uncertain
        self.series = (pseudo[k], torch.stack(hat, 1)[k])
        return torch.stack(policy, 1)[k], bonus[k]

    def update(self, path: Path) -> None:
        for values, (first, second) in zip(self.series, (self.tilde, self.hat), strict=True):
            following = values[1:]  # V_{h+1}, (H, S)
            x0 = torch.einsum("hpd,hp->hd", self.mdp.phi[path.states, path.actions], following)
            x1 = torch.einsum("hpd,hp->hd", self.mdp.phi[path.states, path.actions], following.square())
            y0 = following.gather(1, path.next_states.unsqueeze(1)).squeeze(1)
            n0, n1 = first.norm(x0), second.norm(x1)
            variance = (x1 @ second.theta).clamp(0, 1) - (x0 @ first.theta).clamp(0, 1).square()
            error = (2 * self.beta * n0).clamp(max=1) + (self.beta * n1).clamp(max=1)
            var0 = torch.maximum(self.gamma2 * n0, variance + error).clamp(min=self.alpha2)
            var1 = (self.gamma2 * n1).clamp(min=max(1.0, self.alpha2))
            first.update(x0, y0, 1 / var0)
            second.update(x1, y0.square(), 1 / var1)


EXPLORERS = {"random": RandomExplorer, "ucrl_rfe": UcrlRfe, "hf_ucrl_rfe": HorizonFree}
EXPLORER_NAMES = {"random": "Random", "ucrl_rfe": "UCRL-RFE", "hf_ucrl_rfe": "HF-UCRL-RFE++ (tractable)"}


def _box_vertices(phi: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """ψ of every vertex 1_T of the box, T ⊆ the next-state support of (s, a), and T's membership."""
    support = (phi != 0).any(-1)  # (S, A, S)
    width = int(support.sum(-1).max())
    check_budget("next states per (s, a) (2^support box vertices)", width, MAX_SUPPORT)
    order = torch.argsort(support.to(torch.int8), dim=-1, descending=True, stable=True)[..., :width]  # (S, A, m)
    valid = support.gather(-1, order)
    masks = torch.tensor(list(itertools.product((0.0, 1.0), repeat=width)), dtype=phi.dtype, device=phi.device)
    members = torch.zeros(*phi.shape[:2], len(masks), phi.shape[2], dtype=phi.dtype, device=phi.device)
    chosen = masks.view(1, 1, -1, width) * valid.unsqueeze(-2)  # (S, A, 2^m, m)
    members.scatter_add_(-1, order.unsqueeze(-2).expand_as(chosen), chosen)
    return members @ phi, members  # (S, A, 2^m, S) @ (S, A, S, d) -> (S, A, 2^m, d)
