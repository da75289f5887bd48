"""The options of a private run: one flat validated config, and the lab's work budget."""

from __future__ import annotations

import math
from dataclasses import dataclass

from core.errors import OptiscopeError, check_int, check_positive, check_range

MAX_ROUNDS = 5000
# Per-sample gradient entries N·D·rounds one run may compute: ~30 s on one CPU core.
GRADIENT_BUDGET = 3e9


EPSILON_RANGE = (1e-3, 1e3)  # a finite target ε the accountant calibrates: order 1 + 2 ln(1/δ)/ε stays an exact int


def check_epsilon(epsilon: float, *, allow_inf: bool = False) -> float:
    """A target ε in ``EPSILON_RANGE`` (or ``math.inf``, no privacy, where ``allow_inf``)."""
    if allow_inf and epsilon == math.inf:
        return math.inf
    return check_range("epsilon", epsilon, *EPSILON_RANGE)


def check_delta(delta: float) -> float:
    number = check_range("delta", delta, 0.0, 1.0)
    if number in (0.0, 1.0):
        raise OptiscopeError(f"Expected `delta` strictly between 0 and 1, but got {delta}")
    return number


def check_positive_or_inf(name: str, value: float) -> float:
    """``value`` > 0; ``math.inf`` switches the mechanism off (no noise, no clipping)."""
    number = check_range(name, value, 0.0, math.inf)
    if number <= 0:
        raise OptiscopeError(f"Expected `{name}` > 0 (or inf to switch it off), but got {value}")
    return number


@dataclass(frozen=True)
class PrivateConfig:
    """DIFF2-GD's options; ``restart = 1`` is DP-GD.

    Args:
        epsilon (`float`, defaults to `1.0`): target ε of the whole run, in [1e-3, 1e3] (inf: no noise).
        delta (`float`, defaults to `1e-5`): target δ, in (0, 1).
        clip (`float`, defaults to `sqrt(2)`): c, the per-sample gradient clip (inf: none); the notes' G = √2.
        clip_difference (`float`, defaults to `0.5`): c₂, the difference clip is c₂‖x_r − x_{r−1}‖; the notes' L = ½.
        restart (`int`, defaults to `25`): T, a full private gradient every T rounds.
        lr (`float`, defaults to `1.0`): η.
        n_clients (`int`, defaults to `10`): P clients of equal size (the remainder of N is dropped).
    """

    epsilon: float = 1.0
    delta: float = 1e-5
    clip: float = math.sqrt(2)
    clip_difference: float = 0.5
    restart: int = 25
    lr: float = 1.0
    n_clients: int = 10

    def __post_init__(self) -> None:
        check_epsilon(self.epsilon, allow_inf=True)
        check_delta(self.delta)
        check_positive_or_inf("clip", self.clip)
        check_positive_or_inf("clip_difference", self.clip_difference)
        check_int("restart", self.restart, 1, MAX_ROUNDS)
        check_positive("lr", self.lr)
        check_int("n_clients", self.n_clients, 1)

    @property
    def private(self) -> bool:
        return math.isfinite(self.epsilon)


DEFAULT_CONFIG = PrivateConfig()
