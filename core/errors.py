"""The project's error type and the input checks every lab shares.

``core`` raises :class:`OptiscopeError` for bad input, with a message that names the value; the pages
show exactly these as user messages. Any other exception is a bug: pages log it with its traceback.
"""

from __future__ import annotations

import math
from collections.abc import Collection
from typing import Any


class OptiscopeError(ValueError):
    """Bad input to a ``core`` entry point: the message names the argument and the value received.

    A subclass of ``ValueError`` so that callers catching ``ValueError`` keep working.
    """


def check_positive(name: str, value: float, *, strict: bool = True) -> float:
    """``value`` as a float if it is finite and > 0 (``>= 0`` unless ``strict``).

    >>> check_positive("lr", 0.1)
    0.1
    >>> check_positive("lr", 0.0)
    Traceback (most recent call last):
    core.errors.OptiscopeError: Expected `lr` > 0, but got 0.0
    """
    number = _number(name, value)
    if not math.isfinite(number) or (number <= 0 if strict else number < 0):
        raise OptiscopeError(f"Expected `{name}` {'>' if strict else '>='} 0, but got {value}")
    return number


def check_range(name: str, value: float, low: float, high: float) -> float:
    """``value`` as a float if ``low <= value <= high`` (and finite).

    >>> check_range("beta", 0.5, 0.0, 1.0)
    0.5
    """
    number = _number(name, value)
    if not (low <= number <= high):
        raise OptiscopeError(f"Expected `{name}` between {low:g} and {high:g}, but got {value}")
    return number


def check_int(name: str, value: Any, low: int = 1, high: int | None = None) -> int:
    """``value`` as an int if it is a whole number in ``[low, high]``.

    >>> check_int("steps", 10)
    10
    >>> check_int("steps", 2.5)
    Traceback (most recent call last):
    core.errors.OptiscopeError: Expected `steps` to be an integer >= 1, but got 2.5
    """
    bound = f">= {low}" if high is None else f"between {low} and {high}"
    try:
        ok = int(value) == value and not isinstance(value, bool)
    except (TypeError, ValueError, OverflowError):
        ok = False
    if not ok or value < low or (high is not None and value > high):
        raise OptiscopeError(f"Expected `{name}` to be an integer {bound}, but got {value!r}")
    return int(value)


MAX_SEED = 2**63 - 1  # torch.Generator.manual_seed takes any int64 ≥ 0


def check_seed(seed: Any) -> int:
    """``seed`` as an int if it is a whole number that torch's generators take (0 … 2⁶³ − 1).

    >>> check_seed(3)
    3
    >>> check_seed(-1)
    Traceback (most recent call last):
    core.errors.OptiscopeError: Expected `seed` to be an integer between 0 and 9223372036854775807, but got -1
    """
    return check_int("seed", seed, 0, MAX_SEED)


def check_choice(name: str, value: Any, options: Collection[Any]) -> Any:
    """``value`` if it is one of ``options``.

    >>> check_choice("noise", "isotropic", ("anisotropic", "isotropic"))
    'isotropic'
    """
    if value not in options:
        raise OptiscopeError(f"Expected `{name}` to be one of {', '.join(map(repr, options))}, but got {value!r}")
    return value


def check_budget(what: str, amount: float, limit: float, *, hint: str = "") -> None:
    """Refuse work past a budget: ``amount`` of ``what`` must be at most ``limit``.

    >>> check_budget("particle-steps N·d·steps", 3e9, 2e9)
    Traceback (most recent call last):
    core.errors.OptiscopeError: This run needs 3e+09 particle-steps N·d·steps; the budget is 2e+09.
    """
    if amount > limit:
        raise OptiscopeError(
            f"This run needs {amount:.3g} {what}; the budget is {limit:.3g}.{' ' + hint if hint else ''}"
        )


def _number(name: str, value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise OptiscopeError(f"Expected `{name}` to be a number, but got {value!r}") from None
    if math.isnan(number):
        raise OptiscopeError(f"Expected `{name}` to be a number, but got NaN")
    return number
