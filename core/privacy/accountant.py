"""DIFF2's noise calibration for a target (ε, δ), and the ε it spends, by opacus's RDP accountant."""

from __future__ import annotations

import functools
import math
import warnings
from dataclasses import dataclass

import numpy as np
from opacus.accountants import RDPAccountant

from core.errors import OptiscopeError, check_int, check_range
from core.privacy.config import MAX_ROUNDS, check_delta, check_epsilon

MIN_MULTIPLIER = 1e-3  # below any calibrate() gives (ε <= 1e3): α/(2z²) stays finite
MAX_COUNT = 10**12  # samples n and dimension d of the regime ratio
U = 1.25  # the authors' split: 1/u of the Rényi budget to the full-gradient rounds, (u - 1)/u to the differences


@dataclass(frozen=True)
class Calibration:
    """Noise multipliers (noise std / replace-one sensitivity) of the two kinds of round, at the Rényi order α.

    ``full_rounds`` release a clipped mean gradient, ``difference_rounds`` a clipped mean gradient difference.
    """

    order: int
    z_full: float
    z_difference: float
    full_rounds: int
    difference_rounds: int


def calibrate(epsilon: float, delta: float, *, rounds: int, restart: int) -> Calibration:
    r"""The authors' calibration (DIFF2): https://arxiv.org/abs/2302.03884

    α = 1 + ⌈2 ln(1/δ)/ε⌉; z_full = √(κ α ⌈R/T⌉ / (4 ε)) with κ = 4u for T > 1 and 4 for T = 1 (DP-GD), the
    authors' √(κ α R / (4 T ε)) when T divides R (⌈R/T⌉ keeps the bound when it does not);
    z_difference = √(u α R / ((u - 1) ε)). The full rounds spend ε/(2u) of Rényi budget, the differences
    at most (u - 1)ε/(2u), and ln(1/δ)/(α - 1) ≤ ε/2: ε in all by the classic conversion.

    >>> c = calibrate(1.0, 1e-5, rounds=200, restart=1)
    >>> c.order, round(c.z_full, 2), c.full_rounds
    (25, 70.71, 200)
    """
    epsilon, delta = check_epsilon(epsilon), check_delta(delta)
    rounds, restart = check_int("rounds", rounds, 1, MAX_ROUNDS), check_int("restart", restart, 1, MAX_ROUNDS)
    order = 1 + math.ceil(2 * math.log(1 / delta) / epsilon)
    kappa = 4 * U if restart > 1 else 4.0
    full = -(-rounds // restart)  # rounds r with r mod T = 0
    return Calibration(
        order=order,
        z_full=math.sqrt(kappa * order * full / (4 * epsilon)),
        z_difference=math.sqrt(U * order * rounds / ((U - 1) * epsilon)),
        full_rounds=full,
        difference_rounds=rounds - full,
    )


def rdp_epsilon(calibration: Calibration, delta: float, *, full: int, difference: int) -> float:
    """ε after ``full`` and ``difference`` rounds, by opacus's ``RDPAccountant`` (sampling rate 1: every sample)."""
    delta, full, difference = _check_release(calibration, delta, full, difference)
    accountant = RDPAccountant()
    accountant.history = [
        (z, 1.0, k)
        for z, k in ((calibration.z_full, full), (calibration.z_difference, difference))
        if k > 0 and math.isfinite(z)
    ]
    if not accountant.history:
        return 0.0
    # opacus's orders stop at 63; a small ε calibrates at a higher order, so the grid reaches past it
    orders = [*RDPAccountant.DEFAULT_ALPHAS, *np.geomspace(64, 4 * max(64, calibration.order), 24).tolist()]
    with warnings.catch_warnings():  # early rounds spend so little that the best order is past any grid: still a bound
        warnings.filterwarnings("ignore", "Optimal order is the largest alpha")
        return float(accountant.get_epsilon(delta, alphas=orders))


def classic_epsilon(calibration: Calibration, delta: float, *, full: int, difference: int) -> float:
    """The cross-check: the Gaussian mechanism's RDP α/(2z²) per round, summed, plus ln(1/δ)/(α - 1) at α."""
    delta, full, difference = _check_release(calibration, delta, full, difference)
    a = calibration.order
    rdp = full * a / (2 * calibration.z_full**2) + difference * a / (2 * calibration.z_difference**2)
    return rdp + math.log(1 / delta) / (a - 1)


def _check_release(calibration: Calibration, delta: float, full: int, difference: int) -> tuple[float, int, int]:
    """Checked (δ, full rounds, difference rounds) for a :func:`calibrate` result (its multipliers in [1e-3, inf])."""
    if not isinstance(calibration, Calibration):
        raise OptiscopeError(f"Expected `calibration` from calibrate(), but got {type(calibration).__name__}")
    check_int("calibration.order", calibration.order, 2)
    check_range("calibration.z_full", calibration.z_full, MIN_MULTIPLIER, math.inf)
    check_range("calibration.z_difference", calibration.z_difference, MIN_MULTIPLIER, math.inf)
    full, difference = check_int("full", full, 0, MAX_ROUNDS), check_int("difference", difference, 0, MAX_ROUNDS)
    return check_delta(delta), full, difference


@functools.lru_cache(maxsize=64)
def ledger(calibration: Calibration, delta: float, restart: int) -> np.ndarray:
    """The opacus ε spent after each round (r = 0..R-1) of a schedule restarting every ``restart`` rounds.

    Cached (every seed of a schedule spends the same), so the array is read-only.

    Shapes:
        -> (R,)
    """
    rounds = calibration.full_rounds + calibration.difference_rounds
    full = np.arange(rounds) // restart + 1
    spent = np.array(
        [rdp_epsilon(calibration, delta, full=int(f), difference=r + 1 - int(f)) for r, f in enumerate(full)]
    )
    spent.flags.writeable = False
    return spent


def regime_ratio(n: float, epsilon: float, d: float) -> float:
    """DIFF2's utility bound over DP-GD's: d^{2/3}/(nε)^{4/3} ÷ √d/(nε) = d^{1/6} (nε)^{-1/3} (< 1: DIFF2 helps).

    >>> round(regime_ratio(10_000, 1.0, 21), 3)
    0.077
    """
    n, d = check_range("n", n, 1, MAX_COUNT), check_range("d", d, 1, MAX_COUNT)
    return d ** (1 / 6) * (n * check_epsilon(epsilon)) ** (-1 / 3)
