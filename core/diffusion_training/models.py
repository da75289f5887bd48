"""The lab's zoo entry: the digits UNet distilled for guidance (On Distillation of Guided Diffusion Models,
https://arxiv.org/abs/2210.03142), conditioned on w through diffusers' ``class_embed_type="identity"``.

Stage 1 copies the shipped ``digits-unet`` (the teacher) and learns its CFG output ε_u + w(ε_c − ε_u) in one
call for w ∈ [1, 5]; stage 2 halves its DDIM steps 32 → 16 → 8 → 4 by progressive distillation. The sidecar
reports the class accuracy of 4-step student samples and 32-step teacher CFG samples, judged by an
independent classifier (a logistic regression on the raw training digits, not the zoo's classifier).

    python -m core.zoo train digits-unet-distilled
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from core.data.digits import load_digits_split
from core.guidance.denoisers import leading_timesteps
from core.guidance.models import NULL_CLASS, NUM_TRAIN_TIMESTEPS, build_unet, make_scheduler, to_model_range
from core.zoo import ZooEntry

from .mlp import fourier

W_RANGE = (1.0, 5.0)
TEACHER_STEPS, STUDENT_STEPS = 32, 4
RECIPE = {
    "teacher": "digits-unet (shipped), CFG with null class 10",
    "w_range": list(W_RANGE),  # w = 1 + Meng's w: CFG = ε_u + w(ε_c − ε_u)
    # sized for a shared 2-core CPU (0.15 s of CPU per step at batch 32): minutes, not hours
    "stage1_steps": 400,
    "stage2_steps_per_halving": 150,
    "batch_size": 32,
    "lr": [5e-4, 2e-4],  # stage 1, stage 2; cosine to 0 per phase
    "grad_clip": 1.0,
    "stage2_grid": "DDIM leading timesteps, 32 -> 16 -> 8 -> 4 (student grid = teacher grid[::2])",
    "stage2_loss": "max(SNR, 1)·‖x̂ − x̃‖², x̃ from two teacher DDIM steps",
    "eval": "200 samples (20 per digit) at w = 3, seed 0; logistic regression on the training digits",
}


class WDigitsUNet(nn.Module):
    """The digits UNet with emb(y) + MLP(Fourier(w)) added to its time embedding (``class_embed_type="identity"``)."""

    def __init__(self) -> None:
        super().__init__()
        self.w_range = W_RANGE
        self.unet = build_unet(class_embed_type="identity")
        self.label = nn.Embedding(NULL_CLASS + 1, 128)
        self.w_embed = nn.Sequential(nn.Linear(12, 128), nn.SiLU(), nn.Linear(128, 128))
        nn.init.zeros_(self.w_embed[2].weight)  # starts as the teacher's conditional branch
        nn.init.zeros_(self.w_embed[2].bias)

    def forward(self, x: torch.Tensor, t: torch.Tensor, labels: torch.Tensor, w: torch.Tensor | float) -> torch.Tensor:
        w = torch.as_tensor(w, dtype=x.dtype, device=x.device).expand(len(x))
        scaled = (w - W_RANGE[0]) / (4 * (W_RANGE[1] - W_RANGE[0]))
        return self.unet(x, t, class_labels=self.label(labels.long()) + self.w_embed(fourier(scaled))).sample


def from_teacher(teacher: nn.Module) -> WDigitsUNet:
    """A student that starts as the teacher's conditional branch (its weights, its label embedding, w ignored)."""
    student = WDigitsUNet()
    state = {k: v for k, v in teacher.state_dict().items() if not k.startswith("class_embedding")}
    student.unet.load_state_dict(state, strict=False)
    student.label.weight.data.copy_(teacher.class_embedding.weight.data)
    return student


def alpha_bar(t: torch.Tensor) -> torch.Tensor:
    """ᾱ_t of the teacher's schedule, with ᾱ = 1 at t = −1 (after the last DDIM step)."""
    table = make_scheduler("ddpm").alphas_cumprod
    return torch.where(t >= 0, table[t.clamp_min(0).cpu()].to(t.device), torch.ones_like(t, dtype=table.dtype))


def levels(steps: int) -> torch.Tensor:
    """The DDIM grid of ``steps`` leading timesteps (every k-th of the 32-step teacher's) and a final −1."""
    grid = torch.cat([leading_timesteps(TEACHER_STEPS, NUM_TRAIN_TIMESTEPS), torch.tensor([-1])])
    return grid[:: TEACHER_STEPS // steps]


def ddim_step(x: torch.Tensor, x0: torch.Tensor, t: torch.Tensor, t_next: torch.Tensor) -> torch.Tensor:
    """DDIM (η = 0) from t to t_next with the x0 prediction fixed; per-sample t."""
    a, a_next = alpha_bar(t).float()[:, None, None, None], alpha_bar(t_next).float()[:, None, None, None]
    eps = (x - a.sqrt() * x0) / (1 - a).sqrt()
    return a_next.sqrt() * x0 + (1 - a_next).sqrt() * eps


def to_x0(x: torch.Tensor, eps: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    a = alpha_bar(t).float()[:, None, None, None]
    return (x - (1 - a).sqrt() * eps) / a.sqrt()


@torch.no_grad()
def sample(predict_eps, labels: torch.Tensor, steps: int, seed: int) -> torch.Tensor:
    """DDIM on ``levels(steps)`` with ``predict_eps(x, t, labels)``; the start is seeded on the CPU."""
    x = torch.randn((len(labels), 1, 8, 8), generator=torch.Generator().manual_seed(seed)).to(labels.device)
    grid = levels(steps).to(labels.device)
    for i in range(steps):
        t = grid[i].expand(len(x))
        x = ddim_step(x, to_x0(x, predict_eps(x, t.clamp_min(0), labels), t), t, grid[i + 1].expand(len(x)))
    return x


def teacher_cfg(teacher: nn.Module, w: float | torch.Tensor):
    """The teacher's CFG ε_u + w(ε_c − ε_u): both branches in one batched call (2 NFE per step)."""

    def predict(x: torch.Tensor, t: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        null = torch.full_like(labels, NULL_CLASS)
        eps_c, eps_u = teacher(
            torch.cat([x, x]), torch.cat([t, t]), class_labels=torch.cat([labels, null])
        ).sample.chunk(2)
        scale = torch.as_tensor(w, dtype=x.dtype, device=x.device).reshape(-1, 1, 1, 1)
        return eps_u + scale * (eps_c - eps_u)

    return predict


def student_eps(student: WDigitsUNet, w: float | torch.Tensor):
    return lambda x, t, labels: student(x, t, labels, w)


def _batch(x_all, y_all, n, gen):
    idx = torch.randint(0, len(y_all), (n,), generator=gen)
    return x_all[idx], y_all[idx], torch.rand(n, generator=gen) * (W_RANGE[1] - W_RANGE[0]) + W_RANGE[0]


def _stage1(student, teacher, x_all, y_all, steps, gen):
    opt, sched = _optimizer(student, RECIPE["lr"][0], steps)
    scheduler = make_scheduler("ddpm")
    for _ in range(steps):
        x0, y, w = _batch(x_all, y_all, RECIPE["batch_size"], gen)
        t = torch.randint(0, NUM_TRAIN_TIMESTEPS, (len(y),), generator=gen)
        x_t = scheduler.add_noise(x0, torch.randn(x0.shape, generator=gen), t)
        with torch.no_grad():
            target = teacher_cfg(teacher, w)(x_t, t, y)
        _step(opt, sched, student, F.mse_loss(student(x_t, t, y, w), target))


def _halving(student, x_all, y_all, steps, gen, student_steps):
    teacher = _frozen_copy(student)
    opt, sched = _optimizer(student, RECIPE["lr"][1], steps)
    teacher_grid = levels(2 * student_steps)
    for _ in range(steps):
        x0, y, w = _batch(x_all, y_all, RECIPE["batch_size"], gen)
        k = 2 * torch.randint(0, student_steps, (len(y),), generator=gen)
        t, t_mid, t_s = teacher_grid[k], teacher_grid[k + 1], teacher_grid[k + 2]
        a_t = alpha_bar(t).float()[:, None, None, None]
        z_t = a_t.sqrt() * x0 + (1 - a_t).sqrt() * torch.randn(x0.shape, generator=gen)
        with torch.no_grad():
            z_mid = ddim_step(z_t, to_x0(z_t, teacher(z_t, t, y, w), t), t, t_mid)
            z_s = ddim_step(z_mid, to_x0(z_mid, teacher(z_mid, t_mid.clamp_min(0), y, w), t_mid), t_mid, t_s)
            a_s = alpha_bar(t_s).float()[:, None, None, None]
            ratio = ((1 - a_s) / (1 - a_t)).sqrt()  # σ_s/σ_t
            target = (z_s - ratio * z_t) / (a_s.sqrt() - ratio * a_t.sqrt())
        snr = (a_t / (1 - a_t)).clamp_min(1.0)
        loss = (snr * (to_x0(z_t, student(z_t, t, y, w), t) - target).square()).mean()
        _step(opt, sched, student, loss)


def _optimizer(model, lr, steps):
    opt = torch.optim.AdamW(model.parameters(), lr=lr)
    return opt, torch.optim.lr_scheduler.LambdaLR(opt, lambda i: 0.5 * (1 + math.cos(math.pi * min(i, steps) / steps)))


def _step(opt, sched, model, loss):
    opt.zero_grad(set_to_none=True)
    loss.backward()
    nn.utils.clip_grad_norm_(model.parameters(), RECIPE["grad_clip"])
    opt.step()
    sched.step()


def _frozen_copy(model: nn.Module) -> nn.Module:
    import copy

    return copy.deepcopy(model).eval().requires_grad_(False)


def independent_classifier(seed: int = 0):
    """A logistic regression on the raw training digits ([-1, 1]): shares nothing with the diffusion models."""
    from sklearn.linear_model import LogisticRegression

    data = load_digits_split(0.25, seed=0)
    x = to_model_range(data["x_train"]).reshape(len(data["y_train"]), -1).numpy()
    clf = LogisticRegression(max_iter=2000, random_state=seed).fit(x, data["y_train"].numpy())
    return lambda images: torch.from_numpy(clf.predict(images.reshape(len(images), -1).clamp(-1, 1).numpy()))


def nearest_rms(images: torch.Tensor) -> float:
    """Mean RMS distance from each sample to its nearest training digit (fidelity; lower is closer to the data)."""
    train = to_model_range(load_digits_split(0.25, seed=0)["x_train"]).reshape(-1, 64)
    return (torch.cdist(images.reshape(len(images), 64), train).min(1).values / 8).mean().item()


def evaluate(student: nn.Module, teacher: nn.Module, *, w: float = 3.0, n_samples: int = 200, seed: int = 0) -> dict:
    """Class accuracy (independent classifier) of 4-step student vs 32-step teacher CFG samples at ``w``."""
    labels = torch.arange(n_samples) % 10
    judge = independent_classifier()
    x_student = sample(student_eps(student, w), labels, STUDENT_STEPS, seed)
    x_teacher = sample(teacher_cfg(teacher, w), labels, TEACHER_STEPS, seed)
    x_naive = sample(teacher_cfg(teacher, w), labels, STUDENT_STEPS, seed)
    acc = lambda x: (judge(x) == labels).double().mean().item()  # noqa: E731
    return {
        "accuracy_student_4_steps": acc(x_student),
        "accuracy_teacher_32_steps": acc(x_teacher),
        "accuracy_teacher_4_steps": acc(x_naive),
        "nn_rms_student_4_steps": nearest_rms(x_student),
        "nn_rms_teacher_32_steps": nearest_rms(x_teacher),
        "nn_rms_teacher_4_steps": nearest_rms(x_naive),
        "model_calls_student": float(STUDENT_STEPS),
        "model_calls_teacher": float(2 * TEACHER_STEPS),
        "w": w,
    }


def train_distilled(seed: int, steps: int | None = None) -> tuple[nn.Module, dict[str, float]]:
    """Stage 1, then 32 → 16 → 8 → 4; ``steps`` (a smoke test) replaces every phase's step count."""
    from core import zoo

    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)  # diffusers' weight init (all overwritten or zero here) uses the global RNG
    teacher = zoo.load("digits-unet").requires_grad_(False)
    student = from_teacher(teacher).train()
    data = load_digits_split(0.25, seed=0)
    x_all, y_all = to_model_range(data["x_train"]), data["y_train"]
    _stage1(student, teacher, x_all, y_all, steps or RECIPE["stage1_steps"], gen)
    for student_steps in (16, 8, 4):
        _halving(student, x_all, y_all, steps or RECIPE["stage2_steps_per_halving"], gen, student_steps)
    student.eval()
    n_eval = 200 if steps is None else 20  # a smoke test samples a few
    return student, evaluate(student, teacher, n_samples=n_eval) | {"steps": float(steps or RECIPE["stage1_steps"])}


ZOO = [
    ZooEntry(
        name="digits-unet-distilled",
        build=WDigitsUNet,
        train=train_distilled,
        data="scikit-learn digits (train split, seed 0), scaled to [-1, 1]; teacher: the shipped digits-unet",
        recipe=RECIPE,
        seed=0,
        description="Digits UNet distilled for CFG: w ∈ [1, 5] in one call, 4 DDIM steps (Meng et al. 2023)",
    ),
]
