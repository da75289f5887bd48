"""Guided runs shipped for the guidance lab's default view (APG): https://arxiv.org/abs/2410.02416

The default view is the paper's own setting, CFG vs APG at w = 15 on the digits UNet. Its two runs take ~7 s
on one CPU thread, past the 5 s a first screen may take, so ``python -m core.guidance.shipped`` computes them
once and writes ``assets/precomputed/guidance-default.npz``; every other setting is computed live.
"""

from __future__ import annotations

import json
from dataclasses import fields
from pathlib import Path

import numpy as np
import torch

from .guiders import GuiderConfig
from .sampler import run
from .sweep import balanced_labels, evaluate
from .trace import Trace, trace

PATH = Path(__file__).resolve().parents[2] / "assets" / "precomputed" / "guidance-default.npz"
# The page's default controls: the paper's APG (η = 0, r = 2, β = −0.5) at w = 15, CFG beside it
DEFAULT = {"w": 15.0, "eta": 0.0, "rescale": 2.0, "momentum": -0.5, "guidance_rescale": 0.7, "gamma": 0.999}
DEFAULT |= {"warmup_steps": 8}
DEFAULT_RUNS = {"kind": "unet", "guiders": ("cfg", "apg"), "n_samples": 40, "steps": 25, "seed": 0}
Run = tuple[Trace, dict, np.ndarray]  # the trace, its scores, the target class of each sample


def guided_run(
    denoiser, guider: GuiderConfig, *, n_samples: int, steps: int, seed: int, classifier: torch.nn.Module | None
) -> Run:
    """One guided run, ``n_samples`` balanced over the classes, traced and scored (with the model calls it took)."""
    target = balanced_labels(denoiser.num_classes, n_samples)
    tr = trace(run(denoiser, target, guider=guider, steps=steps, seed=seed))
    scores = evaluate(denoiser, tr.x[-1], target, classifier=classifier)
    return tr, scores | {"model calls": int(tr.model_evals[-1])}, target.numpy()


def run_key(kind: str, guider: GuiderConfig, n_samples: int, steps: int, seed: int) -> str:
    """The name a run is shipped under: every setting that changes it."""
    return repr((kind, guider, n_samples, steps, seed))


def save(runs: dict[str, Run], path: Path = PATH) -> None:
    """Write ``runs`` ({run_key: run}) as one compressed npz: trace fields, targets, and a JSON index with scores."""
    arrays, index = {}, {}
    for i, (key, (tr, scores, target)) in enumerate(runs.items()):
        arrays |= {f"{i}.{f.name}": getattr(tr, f.name) for f in fields(Trace)} | {f"{i}.target": target}
        index[key] = {"i": i, "scores": scores}
    np.savez_compressed(path, index=np.array(json.dumps(index)), **arrays)


def load(key: str, path: Path = PATH) -> Run | None:
    """The shipped run named ``key``, or None when none is shipped under that name."""
    if not path.exists():
        return None
    with np.load(path) as data:
        entry = json.loads(str(data["index"])).get(key)
        if entry is None:
            return None
        i = entry["i"]
        tr = Trace(**{f.name: data[f"{i}.{f.name}"] for f in fields(Trace)})
        return tr, entry["scores"], data[f"{i}.target"]


def default_configs() -> dict[str, GuiderConfig]:
    """The default view's guiders by their run keys, as the page builds them from its default controls."""
    configs = {g: GuiderConfig(g, **DEFAULT) for g in DEFAULT_RUNS["guiders"]}
    spec = {k: DEFAULT_RUNS[k] for k in ("n_samples", "steps", "seed")}
    return {run_key(DEFAULT_RUNS["kind"], c, **spec): c for c in configs.values()}


def main() -> None:
    from core import zoo

    from .denoisers import digits_unet

    torch.set_num_threads(1)
    denoiser, classifier = digits_unet(model=zoo.load("digits-unet")), zoo.load("digits-classifier")
    spec = {k: DEFAULT_RUNS[k] for k in ("n_samples", "steps", "seed")}
    runs = {key: guided_run(denoiser, c, **spec, classifier=classifier) for key, c in default_configs().items()}
    PATH.parent.mkdir(parents=True, exist_ok=True)
    save(runs)
    for key, (_, scores, _) in runs.items():
        print(key, scores)


if __name__ == "__main__":
    main()
