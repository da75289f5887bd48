"""A sweep engine: one function mapped over the cells of a grid, here or on a Ray cluster.

``grid(fn, axes, fixed=...)`` calls ``fn(**fixed, **cell)`` for every cell of the product of ``axes``
(row-major) and yields a :class:`SweepProgress` after each finished cell. With ``address`` (default
``OPTISCOPE_RAY_ADDRESS``) the cells run as Ray tasks on that cluster; results are placed by cell index,
so a deterministic ``fn`` (seeded, as every ``core`` function is) gives the same grid either way.

>>> last = list(grid(pow, {"base": [2, 3], "exp": [1, 2]}))[-1]
>>> last.step, last.table()
(4, array([[2., 4.],
       [3., 9.]]))
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from core.errors import OptiscopeError, check_budget

ADDRESS_ENV = "OPTISCOPE_RAY_ADDRESS"
MAX_CELLS = 10_000  # a grid is a figure's worth of cells, not a job queue


@dataclass(frozen=True)
class SweepProgress:
    """The grid after ``step`` cells; ``results[k]`` is cell k's result (row-major), None while pending."""

    step: int  # cells done
    total: int
    shape: tuple[int, ...]
    results: tuple[Any, ...]

    @property
    def fraction(self) -> float:
        return self.step / self.total

    def table(self, index: int | None = None) -> np.ndarray:
        """The results as a float array of ``shape`` (item ``index`` of tuple results); NaN while pending."""
        values = [np.nan if r is None else (r if index is None else r[index]) for r in self.results]
        return np.asarray(values, dtype=float).reshape(self.shape)


def grid(
    fn: Callable[..., Any],
    axes: Mapping[str, Sequence[Any]],
    *,
    fixed: Mapping[str, Any] | None = None,
    address: str | None = None,
) -> Iterator[SweepProgress]:
    """``fn(**fixed, **cell)`` over every cell of ``axes``, locally or on Ray at ``address``.

    Args:
        fn (`Callable`): a module-level function (Ray ships it by reference to its workers).
        axes (`Mapping[str, Sequence]`): keyword name -> values; cells are their product, row-major.
        fixed (`Mapping`, optional): keywords shared by every cell.
        address (`str`, optional): a Ray cluster (``"auto"``, ``"ray://host:10001"``, ``"host:6379"``);
            defaults to ``OPTISCOPE_RAY_ADDRESS``; unset or empty runs the cells here, one after another.

    Shapes:
        state.table(): (len(axis_0), len(axis_1), ...)
    """
    if not axes or any(len(values) == 0 for values in axes.values()):
        raise OptiscopeError(f"Expected every axis to have at least one value, but got {dict(axes)!r}")
    fixed = dict(fixed or {})
    if overlap := fixed.keys() & axes.keys():
        raise OptiscopeError(f"Expected `fixed` and `axes` to name different keywords, but both name {overlap}")
    shape = tuple(len(values) for values in axes.values())
    check_budget("grid cells", int(np.prod(shape)), MAX_CELLS)
    cells = [dict(zip(axes, values, strict=True)) | fixed for values in itertools.product(*axes.values())]
    address = os.environ.get(ADDRESS_ENV) if address is None else address
    return _on_ray(fn, cells, shape, address) if address else _here(fn, cells, shape)


def _here(fn: Callable[..., Any], cells: list[dict], shape: tuple[int, ...]) -> Iterator[SweepProgress]:
    results: list[Any] = [None] * len(cells)
    yield SweepProgress(0, len(cells), shape, tuple(results))
    for k, cell in enumerate(cells):
        results[k] = fn(**cell)
        yield SweepProgress(k + 1, len(cells), shape, tuple(results))


def _on_ray(fn: Callable[..., Any], cells: list[dict], shape: tuple[int, ...], address: str) -> Iterator[SweepProgress]:
    import ray

    if not ray.is_initialized():
        ray.init(address=address, log_to_driver=False)
    remote = ray.remote(fn)
    pending = {remote.remote(**cell): k for k, cell in enumerate(cells)}
    results: list[Any] = [None] * len(cells)
    yield SweepProgress(0, len(cells), shape, tuple(results))
    try:
        while pending:
            (ready,), _ = ray.wait(list(pending), num_returns=1)
            results[pending.pop(ready)] = ray.get(ready)
            yield SweepProgress(len(cells) - len(pending), len(cells), shape, tuple(results))
    finally:  # a sweep stopped early (settings changed, session gone) frees the cluster
        for ref in pending:
            ray.cancel(ref)
