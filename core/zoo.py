"""The registry of embedded models: name → architecture builder, training recipe, data source, asset file.

Each lab declares its models as ``ZOO: list[ZooEntry]`` in ``core/<lab>/models.py``; this module finds
them, trains them reproducibly and loads the shipped weights from ``assets/NAME.safetensors`` (never
pickle) with a JSON sidecar ``assets/NAME.json`` holding the recipe, seed, metrics and sha256.

    python -m core.zoo list
    python -m core.zoo train NAME [--seed S] [--steps K] [--out DIR]
    python -m core.zoo verify
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import json
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors_bytes
from safetensors.torch import load_file, save_file
from torch import nn

from core.errors import OptiscopeError

ASSETS = Path(__file__).resolve().parent.parent / "assets"
MAX_UPLOAD_BYTES = 50 * 1024 * 1024
# Lab modules that declare `ZOO: list[ZooEntry]`, cheapest import first.
_ENTRY_MODULES = (
    "core.landscape.models",
    "core.cam.models",
    "core.guidance.models",
    "core.explanations.models",
    "core.diffusion_training.models",
)


@dataclass(frozen=True)
class ZooEntry:
    """One embedded model.

    Args:
        name: registry key and asset file stem, e.g. ``"shapes-cnn"``.
        build: returns a fresh, untrained instance of the architecture.
        train: ``train(seed, steps)`` returns ``(model, metrics)``; ``steps=None`` runs the full recipe,
            a small number is a smoke test.
        data: where the training data comes from (no downloads).
        recipe: the hyperparameters, written to the sidecar.
        seed: the seed the shipped asset was trained with.
        description: one line for the UI.
    """

    name: str
    build: Callable[[], nn.Module]
    train: Callable[[int, int | None], tuple[nn.Module, dict[str, float]]]
    data: str
    recipe: dict = field(default_factory=dict)
    seed: int = 0
    description: str = ""


def _entries() -> Iterator[ZooEntry]:
    """Entries lab by lab, importing each lab's module only when reached (diffusers alone takes ~1 s).

    Labs already imported come first: a page finds its own model without importing other labs' libraries
    (a cold guidance page spent 3 CPU-s importing scikit-learn and captum for the CAM lab's entries).
    """
    for module_name in sorted(_ENTRY_MODULES, key=lambda name: name.rpartition(".")[0] not in sys.modules):
        yield from importlib.import_module(module_name).ZOO


def registry() -> dict[str, ZooEntry]:
    """All entries, by name."""
    return {spec.name: spec for spec in _entries()}


def entry(name: str) -> ZooEntry:
    for spec in _entries():
        if spec.name == name:
            return spec
    raise OptiscopeError(f"Unknown zoo model `{name}`; expected one of {sorted(registry())}.")


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def save(name: str, model: nn.Module, metrics: dict[str, float], out: Path = ASSETS) -> Path:
    """Write ``NAME.safetensors`` and its JSON sidecar; returns the weights' path."""
    spec = entry(name)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{name}.safetensors"
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(path))
    sidecar = {
        "name": name,
        "description": spec.description,
        "data": spec.data,
        "recipe": spec.recipe,
        "seed": spec.seed,
        "metrics": metrics,
        "parameters": sum(p.numel() for p in model.parameters()),
        "torch": torch.__version__,
        "sha256": sha256(path),
    }
    (out / f"{name}.json").write_text(json.dumps(sidecar, indent=2) + "\n")
    return path


def info(name: str, assets: Path = ASSETS) -> dict:
    """The sidecar of a shipped model (recipe, seed, metrics, sha256)."""
    path = assets / f"{name}.json"
    if not path.exists():
        raise OptiscopeError(f"No asset for `{name}` in {assets}; train it with `python -m core.zoo train {name}`.")
    return json.loads(path.read_text())


def load(name: str, device: torch.device | str = "cpu", assets: Path = ASSETS) -> nn.Module:
    """The shipped model ``name`` in eval mode, its weights checked against the sidecar's sha256."""
    spec = entry(name)
    path = assets / f"{name}.safetensors"
    expected = info(name, assets)["sha256"]
    if sha256(path) != expected:
        raise OptiscopeError(f"`{path.name}` does not match the sha256 in its sidecar; retrain or restore it.")
    model = spec.build()
    model.load_state_dict(load_file(str(path)), strict=True)
    return model.to(device).eval()


def load_state_dict_bytes(name: str, data: bytes, max_bytes: int = MAX_UPLOAD_BYTES) -> nn.Module:
    """A zoo architecture with weights from an untrusted ``.safetensors`` upload (no pickle involved)."""
    if len(data) > max_bytes:
        raise OptiscopeError(f"The file is {len(data) / 2**20:.1f} MB; the limit is {max_bytes / 2**20:.0f} MB.")
    try:
        state = load_safetensors_bytes(data)
    except (SafetensorError, ValueError, RuntimeError) as err:
        raise OptiscopeError(f"This is not a readable .safetensors file ({err}).") from None
    model = entry(name).build()
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    # load_state_dict would cast a float64, float16 or integer tensor silently: the dtype must match too
    described = lambda t: f"{tuple(t.shape)} {str(t.dtype).removeprefix('torch.')}"  # noqa: E731
    wrong = [k for k in expected if k in state and described(state[k]) != described(expected[k])]
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append(f"missing {missing[:5]}")
        if unexpected:
            parts.append(f"unexpected {unexpected[:5]}")
        if wrong:
            parts.append(
                "wrong shapes or dtypes "
                + ", ".join(f"{k} {described(state[k])} ≠ {described(expected[k])}" for k in wrong[:5])
            )
        raise OptiscopeError(f"The state dict does not fit `{name}`: " + "; ".join(parts) + ".")
    if not all(torch.isfinite(v).all() for v in state.values() if v.is_floating_point()):
        raise OptiscopeError("The state dict contains NaN or infinite weights.")
    model.load_state_dict(state, strict=True)
    return model.eval()


def _train(name: str, seed: int | None, steps: int | None, out: Path) -> None:
    spec = entry(name)
    start = time.perf_counter()
    model, metrics = spec.train(spec.seed if seed is None else seed, steps)
    path = save(name, model, metrics, out)
    size_kb = path.stat().st_size / 1024
    print(f"{name}: {json.dumps(metrics)} ({size_kb:.0f} KB, {time.perf_counter() - start:.0f} s) -> {path}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m core.zoo", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="the registered models and their shipped metrics")
    train = sub.add_parser("train", help="reproduce an asset from its seed and print its metrics")
    train.add_argument("name")
    train.add_argument("--seed", type=int, default=None)
    train.add_argument("--steps", type=int, default=None, help="a short run (smoke test)")
    train.add_argument("--out", type=Path, default=ASSETS)
    sub.add_parser("verify", help="check every shipped asset against its sidecar")
    args = parser.parse_args(argv)
    if args.command == "list":
        for name, spec in sorted(registry().items()):
            shipped = (ASSETS / f"{name}.json").exists()
            metrics = info(name)["metrics"] if shipped else "not trained"
            print(f"{name:28s} {spec.description} | {metrics}")
    elif args.command == "train":
        _train(args.name, args.seed, args.steps, args.out)
    else:
        for name in sorted(registry()):
            load(name)
            print(f"{name}: ok")


if __name__ == "__main__":
    main()
