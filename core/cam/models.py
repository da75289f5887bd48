"""The shipped CNN for the CAM lab: a small BatchNorm conv net trained on the procedural shapes."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from core.data.shapes import CLASSES, make_shapes
from core.zoo import ZooEntry

RECIPE = {
    "steps": 1500,  # fresh images every step: no over-fitting, no fixed data set to ship
    "batch_size": 96,
    "lr": 3e-3,
    "weight_decay": 5e-4,
    "schedule": "one-cycle",
    "image_size": 64,
    "eval_images": 2000,
}


def _block(c_in: int, c_out: int) -> nn.Sequential:
    # ReLU not in-place: in-place ReLU breaks layer hooks (captum #156, #165).
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU())


class ShapesCNN(nn.Module):
    """Four conv blocks (16-32-64-128 channels) → global average pooling → linear.

    ``cam_layer`` names the default CAM layer (``block4``, 8×8); ``cam_layers`` lists the choices
    (``block2`` 32×32, ``block3`` 16×16, ``block4`` 8×8), each the post-ReLU output of its block.

    Shapes:
        x: (N, 3, H, W) in [0, 1] → logits: (N, len(CLASSES))

    >>> ShapesCNN()(torch.zeros(2, 3, 64, 64)).shape
    torch.Size([2, 6])
    """

    cam_layer = "block4"
    cam_layers = ("block2", "block3", "block4")
    classes = CLASSES

    def __init__(self, num_classes: int = len(CLASSES)):
        super().__init__()
        self.block1 = _block(3, 16)
        self.block2 = _block(16, 32)
        self.block3 = _block(32, 64)
        self.block4 = _block(64, 128)
        self.fc = nn.Linear(128, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(self.block1(x), 2)  # (N, 16, 32, 32)
        x = F.max_pool2d(self.block2(x), 2)  # (N, 32, 16, 16)
        x = F.max_pool2d(self.block3(x), 2)  # (N, 64, 8, 8)
        x = self.block4(x)  # (N, 128, 8, 8)
        return self.fc(x.mean(dim=(2, 3)))


def accuracy(model: nn.Module, n: int = 2000, seed: int = 10**6, batch: int = 500) -> float:
    """Accuracy on ``n`` fresh images (a seed range the training never sees)."""
    model.eval()
    hits = 0
    with torch.no_grad():
        for i, start in enumerate(range(0, n, batch)):
            x, y, _ = make_shapes(min(batch, n - start), seed=seed + i)
            hits += int((model(x).argmax(1) == y).sum())
    return hits / n


def train_shapes_cnn(seed: int, steps: int | None = None) -> tuple[nn.Module, dict[str, float]]:
    """Train ``ShapesCNN`` on freshly generated batches; returns the model and its held-out accuracy."""
    total = RECIPE["steps"] if steps is None else int(steps)
    with torch.random.fork_rng(devices=[]):  # seeds the weight init without touching the caller's global RNG
        torch.manual_seed(seed)
        model = ShapesCNN()
    opt = torch.optim.AdamW(model.parameters(), lr=RECIPE["lr"], weight_decay=RECIPE["weight_decay"])
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=RECIPE["lr"], total_steps=max(total, 1))
    model.train()
    loss = torch.tensor(float("nan"))
    for step in range(total):
        x, y, _ = make_shapes(RECIPE["batch_size"], seed=seed * 1_000_003 + step)
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
    n_eval = RECIPE["eval_images"] if steps is None else 200
    return model.eval(), {"test_accuracy": accuracy(model, n_eval), "final_loss": float(loss.detach()), "steps": total}


ZOO = [
    ZooEntry(
        name="shapes-cnn",
        build=ShapesCNN,
        train=train_shapes_cnn,
        data="core.data.shapes.make_shapes (procedural, fresh images every step; eval on seeds ≥ 1e6)",
        recipe=RECIPE,
        seed=0,
        description="BatchNorm CNN (16-32-64-128, GAP, linear) classifying the big shape among distractors",
    )
]
