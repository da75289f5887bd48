"""The guidance lab's zoo: a tiny class-conditional UNet on the 8×8 digits and a digits classifier.

python -m core.zoo train digits-unet
python -m core.zoo train digits-classifier
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from core.data.digits import load_digits_split
from core.zoo import ZooEntry

NULL_CLASS = 10  # label used for the unconditional branch of CFG
NUM_TRAIN_TIMESTEPS = 1000

UNET_RECIPE = {
    "steps": 2000,
    "batch_size": 128,
    "lr": 2e-3,
    "grad_clip": 1.0,
    "lr_schedule": "linear warm-up over 5% of steps, then cosine to 0",
    "label_dropout": 0.15,  # share of labels replaced by the null class, so one net is both D_cond and D_uncond
    "beta_schedule": "squaredcos_cap_v2",
    "prediction_type": "epsilon",
    "data_range": "[-1, 1]",  # x = 2·pixel − 1, so saturation (|x| > 1) is visible
}
CLASSIFIER_RECIPE = {"steps": 1500, "batch_size": 128, "lr": 2e-3, "weight_decay": 1e-4, "noise_std": 0.1}


def to_model_range(images: torch.Tensor) -> torch.Tensor:
    """Digits pixels in [0, 1], shape (n, 8, 8) -> model space in [-1, 1], shape (n, 1, 8, 8)."""
    return (2.0 * images - 1.0).unsqueeze(1)


def build_unet(**class_embedding: object) -> nn.Module:
    """The digits UNet (8×8, 1 channel); ``class_embedding`` defaults to a label table with the null label."""
    from diffusers import UNet2DModel

    return UNet2DModel(
        sample_size=8,
        in_channels=1,
        out_channels=1,
        layers_per_block=1,
        block_out_channels=(32, 64),
        down_block_types=("DownBlock2D", "AttnDownBlock2D"),
        up_block_types=("AttnUpBlock2D", "UpBlock2D"),
        norm_num_groups=8,
        attention_head_dim=8,
        **(class_embedding or {"num_class_embeds": NULL_CLASS + 1}),
    )


def make_scheduler(kind: str = "ddim"):
    """The training (DDPM) or sampling (DDIM) scheduler of the digits UNet; `clip_sample` off everywhere."""
    from diffusers import DDIMScheduler, DDPMScheduler

    train = DDPMScheduler(
        num_train_timesteps=NUM_TRAIN_TIMESTEPS, beta_schedule=UNET_RECIPE["beta_schedule"], clip_sample=False
    )
    if kind == "ddpm":
        return train
    # "leading" spacing: "trailing" would start at ᾱ ≈ 2e-9 where the x0 prediction explodes.
    return DDIMScheduler.from_config(train.config, clip_sample=False, timestep_spacing="leading", set_alpha_to_one=True)


def train_unet(seed: int, steps: int | None = None) -> tuple[nn.Module, dict[str, float]]:
    steps = UNET_RECIPE["steps"] if steps is None else steps
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)  # weight init inside diffusers uses the global RNG
    model = build_unet().train()
    scheduler = make_scheduler("ddpm")
    data = load_digits_split(0.25, seed=0)
    x_all, y_all = to_model_range(data["x_train"]), data["y_train"]
    opt = torch.optim.AdamW(model.parameters(), lr=UNET_RECIPE["lr"])
    # short warm-up then cosine decay to 0: the last steps average out the noise of small batches
    warm = max(1, steps // 20)
    lr_sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda i: min(1.0, (i + 1) / warm) * 0.5 * (1 + math.cos(math.pi * min(i, steps) / steps))
    )
    losses = []
    for _ in range(steps):
        idx = torch.randint(0, len(y_all), (UNET_RECIPE["batch_size"],), generator=gen)
        x0, y = x_all[idx], y_all[idx].clone()
        drop = torch.rand(len(y), generator=gen) < UNET_RECIPE["label_dropout"]
        y[drop] = NULL_CLASS
        noise = torch.randn(x0.shape, generator=gen)
        t = torch.randint(0, NUM_TRAIN_TIMESTEPS, (len(y),), generator=gen)
        x_t = scheduler.add_noise(x0, noise, t)
        loss = F.mse_loss(model(x_t, t, class_labels=y).sample, noise)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), UNET_RECIPE["grad_clip"])
        opt.step()
        lr_sched.step()
        losses.append(loss.item())
    tail = losses[-min(200, len(losses)) :]
    return model.eval(), {"final_loss": float(sum(tail) / len(tail)), "steps": float(steps)}


class DigitsClassifier(nn.Module):
    """A small MLP on 8×8 digits in [-1, 1]; `features` is the penultimate layer (for precision/recall)."""

    def __init__(self, hidden: int = 128):
        super().__init__()
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(64, hidden), nn.SiLU(), nn.Linear(hidden, 64), nn.SiLU())
        self.head = nn.Linear(64, 10)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x.reshape(len(x), 64).clamp(-1.5, 1.5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (n, 1, 8, 8) or (n, 8, 8) -> logits (n, 10)
        return self.head(self.features(x))


def train_classifier(seed: int, steps: int | None = None) -> tuple[nn.Module, dict[str, float]]:
    steps = CLASSIFIER_RECIPE["steps"] if steps is None else steps
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = DigitsClassifier().train()
    data = load_digits_split(0.25, seed=0)
    x_all, y_all = to_model_range(data["x_train"]), data["y_train"]
    opt = torch.optim.AdamW(
        model.parameters(), lr=CLASSIFIER_RECIPE["lr"], weight_decay=CLASSIFIER_RECIPE["weight_decay"]
    )
    for _ in range(steps):
        idx = torch.randint(0, len(y_all), (CLASSIFIER_RECIPE["batch_size"],), generator=gen)
        # light noise so the classifier is not thrown by the slight blur of generated samples
        x = x_all[idx] + CLASSIFIER_RECIPE["noise_std"] * torch.randn(x_all[idx].shape, generator=gen)
        loss = F.cross_entropy(model(x), y_all[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        acc = (model(to_model_range(data["x_test"])).argmax(1) == data["y_test"]).float().mean().item()
    return model, {"test_accuracy": acc, "steps": float(steps)}


ZOO = [
    ZooEntry(
        name="digits-unet",
        build=build_unet,
        train=train_unet,
        data="scikit-learn digits (train split, seed 0), scaled to [-1, 1]",
        recipe=UNET_RECIPE,
        seed=0,
        description="Tiny class-conditional diffusers UNet2DModel (ε-prediction, null class 10) on 8×8 digits",
    ),
    ZooEntry(
        name="digits-classifier",
        build=DigitsClassifier,
        train=train_classifier,
        data="scikit-learn digits (train split, seed 0), scaled to [-1, 1]",
        recipe=CLASSIFIER_RECIPE,
        seed=0,
        description="MLP digits classifier (class accuracy and precision/recall features of generated samples)",
    ),
]
