"""Shared test settings (a deterministic, CPU-only, offline run) and the `open_page` fixture."""

from __future__ import annotations

import base64
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OPTISCOPE_DEVICE", "cpu")  # the suite compares with CPU numbers; `gpu` tests ask for cuda
torch.set_num_threads(1)  # as the app does (core.device.set_threads): many small ops, 2 shared cores

ROOT = Path(__file__).resolve().parent.parent


def plotly_array(value) -> np.ndarray:
    """An array of a chart spec: a list, or plotly 6's typed array ``{"dtype", "bdata", "shape"?}`` (base64 of the
    raw buffer). Numbers come back as floats (a gap, None, as NaN); a list of labels stays a list of labels."""
    if isinstance(value, dict):
        flat = np.frombuffer(base64.b64decode(value["bdata"]), dtype=value["dtype"])
        return flat.reshape([int(s) for s in str(value["shape"]).split(",")]) if "shape" in value else flat
    try:
        return np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        return np.asarray(value)


def _open_page(path: str, timeout: float = 120, **query: str):
    """Run the router in AppTest with ``query`` as URL parameters, then switch to ``path`` (e.g. ``pages/cbo.py``)."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=timeout)
    for key, value in query.items():
        at.query_params[key] = value
    at.run()
    if path != "pages/home.py":
        at.switch_page(path).run()
    return at


@pytest.fixture
def open_page() -> Callable:
    """``open_page("pages/cbo.py", sigma="5.1")`` -> an AppTest that has run that page with those URL params."""
    return _open_page


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook, which reads the groups
def pytest_collection_modifyitems(config, items) -> None:
    """``gpu`` tests need CUDA: elsewhere they are skipped with that reason, never silently passed.

    Under pytest-xdist (`make test`: ``-n auto --dist loadgroup``) the ``browser`` tests share one worker, so one
    `streamlit run` server and one chromium serve them all; so do the tests of a file that share a module-scoped
    fixture (an expensive experiment computed once, not once per worker).
    """
    for item in items:
        if "browser" in item.keywords:
            item.add_marker(pytest.mark.xdist_group("browser"))
        elif _uses_a_module_fixture(item):
            item.add_marker(pytest.mark.xdist_group(item.nodeid.split("::")[0]))
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs CUDA: no CUDA device on this machine (run `pytest -m gpu` on a GPU host)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


def _uses_a_module_fixture(item: pytest.Item) -> bool:
    info = getattr(item, "_fixtureinfo", None)
    return info is not None and any(defs[-1].scope == "module" for defs in info.name2fixturedefs.values())


@pytest.fixture
def cuda() -> torch.device:
    """The CUDA device for a ``gpu`` test."""
    return torch.device("cuda")
