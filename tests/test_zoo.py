"""The model zoo: safetensors round trip, integrity check, and safe loading of untrusted uploads."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import save
from torch import nn

from core import zoo
from core.device import device_label, generator, pick_device


def tiny() -> nn.Module:
    return nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))


def train_tiny(seed: int, steps: int | None) -> tuple[nn.Module, dict[str, float]]:
    torch.manual_seed(seed)
    return tiny(), {"accuracy": 0.5}


@pytest.fixture
def registry(monkeypatch):
    entry = zoo.ZooEntry("tiny", tiny, train_tiny, data="none", recipe={"lr": 0.1}, seed=3, description="a test")
    monkeypatch.setattr(zoo, "_entries", lambda: iter([entry]))
    return entry


def test_save_then_load_round_trips_with_a_sidecar(registry, tmp_path) -> None:
    model, metrics = registry.train(registry.seed, None)
    zoo.save("tiny", model, metrics, out=tmp_path)
    sidecar = json.loads((tmp_path / "tiny.json").read_text())
    assert sidecar["seed"] == 3 and sidecar["recipe"] == {"lr": 0.1} and sidecar["metrics"] == metrics
    assert sidecar["sha256"] == zoo.sha256(tmp_path / "tiny.safetensors")
    loaded = zoo.load("tiny", assets=tmp_path)
    assert not loaded.training
    for a, b in zip(model.state_dict().values(), loaded.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_load_refuses_a_tampered_asset(registry, tmp_path) -> None:
    zoo.save("tiny", tiny(), {}, out=tmp_path)
    path = tmp_path / "tiny.safetensors"
    path.write_bytes(path.read_bytes()[:-4] + b"\0\0\0\0")
    with pytest.raises(ValueError, match="sha256"):
        zoo.load("tiny", assets=tmp_path)


def test_unknown_model_names_the_known_ones(registry) -> None:
    with pytest.raises(ValueError, match=r"Unknown zoo model `nope`.*tiny"):
        zoo.entry("nope")


def test_upload_loads_a_matching_state_dict(registry) -> None:
    model = tiny()
    loaded = zoo.load_state_dict_bytes("tiny", save(model.state_dict()))
    assert torch.equal(loaded[0].weight, model[0].weight)


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"\x80\x04 this is a pickle, not safetensors", "not a readable .safetensors"),
        (save({"0.weight": torch.zeros(4, 3)}), "missing"),
        (save({**tiny().state_dict(), "0.weight": torch.zeros(5, 3)}), "wrong shapes"),
        (save({**tiny().state_dict(), "extra": torch.zeros(1)}), "unexpected"),
        (save({**tiny().state_dict(), "0.bias": torch.full((4,), float("nan"))}), "NaN"),
    ],
)
def test_upload_rejects_bad_files_with_a_clear_message(registry, payload: bytes, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        zoo.load_state_dict_bytes("tiny", payload)


def test_upload_is_size_capped(registry) -> None:
    with pytest.raises(ValueError, match="limit"):
        zoo.load_state_dict_bytes("tiny", b"0" * 2048, max_bytes=1024)


def test_every_shipped_asset_matches_its_sidecar_and_stays_small() -> None:
    for path in sorted(zoo.ASSETS.glob("*.safetensors")):
        name = path.stem
        assert path.stat().st_size < 5 * 2**20, f"{name} is over 5 MB"
        assert zoo.info(name)["sha256"] == zoo.sha256(path), name
        assert name in zoo.registry(), f"{name} has no zoo entry"


def test_device_choice_and_generators() -> None:
    assert pick_device("cpu").type == "cpu"
    assert device_label(torch.device("cpu")).startswith("cpu")
    a = torch.rand(3, generator=generator(5))
    assert torch.equal(a, torch.rand(3, generator=generator(5)))
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA"):
            pick_device("cuda")


@pytest.mark.parametrize("name", sorted(zoo.registry()))
def test_every_recipe_runs_a_few_steps_into_the_shipped_architecture(name: str) -> None:
    spec = zoo.entry(name)
    model, metrics = spec.train(spec.seed, 2)  # a smoke test of the recipe, never the full training
    shipped = spec.build().state_dict()
    trained = model.state_dict()
    assert trained.keys() == shipped.keys()
    assert all(trained[k].shape == shipped[k].shape for k in shipped)
    assert metrics and all(isinstance(v, (int, float)) for v in metrics.values()), metrics


@pytest.mark.parametrize("name", ["digits-mlp-init", "digits-mlp-early"])
def test_a_short_recipe_reproduces_its_shipped_asset_from_the_seed(name: str) -> None:
    spec = zoo.entry(name)
    model, _ = spec.train(spec.seed, None)
    shipped = zoo.load(name)
    for key, value in shipped.state_dict().items():
        torch.testing.assert_close(model.state_dict()[key], value, rtol=0, atol=1e-6)
