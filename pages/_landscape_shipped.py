"""The loss-landscape lab's default view, shipped precomputed (LLA): https://arxiv.org/abs/2412.10146

The default link (the converged digits MLP, filter-normalized axes, a 41×41 surface, the SGD path and the
spectrum) costs ~6 CPU-s computed live, past the 5 s a first screen may take. ``python -m
pages._landscape_shipped`` computes it once with ``core.landscape`` and writes
``assets/precomputed/landscape-default.npz`` (with the model's sha256, the core code version and the torch
version it was made with); the page serves it only for exactly that view and model, and computes every
other view live. ``tests/test_landscape_page.py`` checks it against a fresh computation.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from core import landscape as ll
from core import store, zoo
from core.landscape import models
from core.landscape.summary import SpectrumSummary
from core.landscape.trace import LayerSpectrum, TraceEstimate

PATH = Path(__file__).resolve().parent.parent / "assets" / "precomputed" / "landscape-default.npz"
# The page's default controls (view "surface"; the z scale is display only): what the shipped view answers
VIEW = {"model": "digits-mlp-converged", "axes": "random", "i": 1, "j": 2, "seed": 0, "n": 41, "extent": 1.0}
VIEW |= {"bn": "eval", "k": 5}
EVERY = 20  # the SGD path's stride, as the page replays it


@dataclass(frozen=True)
class DefaultView:
    label: str  # the plane's description
    loss: np.ndarray  # (n, n) loss[a][b] on the surface
    path: np.ndarray  # (P, 2) the SGD path projected on the plane, every EVERY steps
    spectrum: SpectrumSummary


def compute(view: dict = VIEW) -> DefaultView:
    """The default view computed live, as the page would."""
    model = zoo.load(view["model"]).requires_grad_(False)
    inputs, target = models.batch_for(view["model"])
    loss_fn, params = ll.loss_fn_for(model, inputs, target, bn=view["bn"]), ll.params_of(model)
    p = ll.plane(loss_fn, params, axes=view["axes"], i=view["i"], j=view["j"], seed=view["seed"])
    loss = ll.surface(loss_fn, params, (p.d1, p.d2), extent=view["extent"], n=view["n"]).loss
    path = ll.project(models.training_trajectory(every=EVERY), params, (p.d1, p.d2))
    spectrum = ll.spectrum_summary(loss_fn, params, k=view["k"], seed=view["seed"])
    return DefaultView(p.label, loss.double().numpy(), path.numpy(), spectrum)


def _stamp() -> dict:
    """What the shipped view was made from: a different model makes it invalid, the rest is a record."""
    sha = zoo.info(VIEW["model"])["sha256"]
    return {"view": VIEW, "model_sha256": sha, "code": store.code_version("landscape"), "torch": torch.__version__}


def save(shipped: DefaultView, path: Path = PATH) -> None:
    s = shipped.spectrum
    meta = {k: v for k, v in asdict(s).items() if k not in ("grid", "density")} | {"label": shipped.label}
    arrays = {"loss": shipped.loss, "path": shipped.path, "grid": s.grid, "density": s.density}
    np.savez_compressed(path, meta=np.array(json.dumps(meta | {"stamp": _stamp()})), **arrays)


def load(path: Path = PATH) -> DefaultView | None:
    """The shipped default view, or None when it is missing or was made from other weights."""
    if not path.exists():
        return None
    with np.load(path, allow_pickle=False) as data:
        meta, arrays = json.loads(str(data["meta"])), {name: data[name] for name in data.files}
    stamp = meta.pop("stamp")
    if stamp["model_sha256"] != _stamp()["model_sha256"] or stamp["view"] != VIEW:
        return None
    trace, layers = TraceEstimate(**meta.pop("trace")), [LayerSpectrum(**layer) for layer in meta.pop("layers")]
    label, top = meta.pop("label"), tuple(meta.pop("top"))
    spectrum = SpectrumSummary(
        **meta, top=top, trace=trace, layers=layers, grid=arrays["grid"], density=arrays["density"]
    )
    return DefaultView(label, arrays["loss"], arrays["path"], spectrum)


def serves(view: dict) -> bool:
    """Whether ``view`` (the page's controls, no upload) is the shipped one."""
    return view == VIEW


if __name__ == "__main__":
    torch.set_num_threads(1)
    PATH.parent.mkdir(parents=True, exist_ok=True)
    save(compute())
    print(json.dumps(_stamp()), load() is not None)
