"""The lab's zoo: a 64-64-10 MLP on digits at three points of one training run, and a sharp/flat pair.

``digits-mlp-init``, ``-early`` and ``-converged`` are the same run (same seed, same batches) stopped at
0, 30 and 2000 SGD steps; :func:`training_trajectory` replays that run bit-exactly (~2 s) to draw the
optimizer's path. ``digits-mlp-sharp`` (full-batch heavy-ball gradient descent) and ``digits-mlp-flat`` (batch-8 SGD) share
the architecture; both fit the training set, but small-batch noise settles in a flatter basin that
generalizes better (Keskar et al., https://arxiv.org/abs/1609.04836). Measured: λmax 1.09 vs 0.68, test
accuracy 97.1% vs 98.4%.
"""

from __future__ import annotations

import math
from functools import partial

import torch
import torch.nn.functional as F
from torch import nn

from core import zoo
from core.data.digits import load_digits_split
from core.errors import OptiscopeError, check_choice, check_int
from core.zoo import ZooEntry

DATA = "scikit-learn digits (8×8, 1,797 images), load_digits_split(0.25, seed=0)"
SHAPES_BATCH = 16  # images: one CNN forward per grid point is the lab's cost (~40 ms at 16 on one CPU thread)
SHAPES_SEED = 1_000_000  # a fixed held-out batch: seeds ≥ 1e6 are never trained on


def build_mlp(generator: torch.Generator | None = None) -> nn.Module:
    """64-64-10 ReLU MLP (4,810 parameters); names ``1.weight``, ``1.bias``, ``3.weight``, ``3.bias``.

    With ``generator``, nn.Linear's default initialization is drawn from it instead of the global RNG
    (the same numbers as ``torch.manual_seed(s)`` then the default build, for a generator seeded with s).
    """
    if generator is None:
        return nn.Sequential(nn.Flatten(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 64, device="meta"), nn.ReLU(), nn.Linear(64, 10, device="meta"))
    model.to_empty(device="cpu")
    for layer in (model[1], model[3]):  # nn.Linear.reset_parameters, in its order, from `generator`
        nn.init.kaiming_uniform_(layer.weight, a=math.sqrt(5), generator=generator)
        bound = 1 / math.sqrt(layer.in_features)
        nn.init.uniform_(layer.bias, -bound, bound, generator=generator)
    return model


def digits_batch(split: str = "train") -> tuple[torch.Tensor, torch.Tensor]:
    """The full train (1,348) or test (449) split of digits as ``(x, y)``, x: (N, 8, 8)."""
    data = load_digits_split(0.25, seed=0)
    return data[f"x_{split}"], data[f"y_{split}"]


def _run(seed: int, steps: int, batch_size: int, lr: float, momentum: float, every: int = 0):
    """One reproducible SGD run; yields ``(step, model)`` every ``every`` steps (and at the end).

    Never touches the global RNG, so a replay in a server thread is bit-exact whatever other threads draw.
    """
    model = build_mlp(torch.Generator().manual_seed(seed))
    x, y = digits_batch("train")
    gen = torch.Generator().manual_seed(seed + 1)
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum)
    order = torch.randperm(len(y), generator=gen)
    cursor = 0
    for step in range(steps):
        if every and step % every == 0:
            yield step, model
        if cursor + batch_size > len(y):
            order, cursor = torch.randperm(len(y), generator=gen), 0
        idx = order[cursor : cursor + batch_size]
        cursor += batch_size
        loss = F.cross_entropy(model(x[idx]), y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    yield steps, model


def _metrics(model: nn.Module) -> dict[str, float]:
    from core.landscape.functional import loss_fn_for, params_of
    from core.landscape.lanczos import eigenpairs

    model.eval()
    out = {}
    with torch.no_grad():
        for split in ("train", "test"):
            x, y = digits_batch(split)
            logits = model(x)
            out[f"{split}_loss"] = float(F.cross_entropy(logits, y))
            out[f"{split}_acc"] = float((logits.argmax(1) == y).float().mean())
    x, y = digits_batch("train")
    top = eigenpairs(loss_fn_for(model, x, y), params_of(model), k=1, which="LA", seed=0)
    out["lambda_max"] = float(top.eigenvalues[0])
    return out


def _train(seed: int, steps: int | None, *, full_steps: int, batch_size: int, lr: float, momentum: float):
    steps = full_steps if steps is None else min(steps, full_steps)
    *_, (_, model) = _run(seed, steps, batch_size, lr, momentum)
    return model.eval(), _metrics(model)


RUN = {"batch_size": 64, "lr": 0.1, "momentum": 0.9}
CHECKPOINTS = {"digits-mlp-init": 0, "digits-mlp-early": 30, "digits-mlp-converged": 2000}
PAIR = {
    "digits-mlp-sharp": {"full_steps": 2000, "batch_size": 1348, "lr": 0.05, "momentum": 0.9},
    "digits-mlp-flat": {"full_steps": 3000, "batch_size": 8, "lr": 0.2, "momentum": 0.0},
}


def training_trajectory(*, every: int = 20, seed: int = 0, steps: int | None = None) -> list[dict[str, torch.Tensor]]:
    """Replays the ``digits-mlp-*`` run and returns its parameters every ``every`` steps (init … converged).

    Holds at most ``steps / every + 2`` copies of the 4,810 parameters (``steps`` ≤ 2,000 by default, ≤ 10,000).

    >>> path = training_trajectory(every=5, steps=10)
    >>> len(path), tuple(path[0]["1.weight"].shape)
    (3, (64, 64))
    """
    every = check_int("every", every, 1)
    seed = check_int("seed", seed, 0, 2**63 - 2)  # the batches take seed + 1
    steps = CHECKPOINTS["digits-mlp-converged"] if steps is None else check_int("steps", steps, 0, 10_000)
    return [
        {k: v.detach().clone() for k, v in model.named_parameters()}
        for _, model in _run(seed, steps, every=every, **RUN)
    ]


ZOO = [
    *(
        ZooEntry(
            name,
            build_mlp,
            partial(_train, full_steps=steps, **RUN),
            DATA,
            {"steps": steps, **RUN, "loss": "cross-entropy", "optimizer": "SGD"},
            0,
            f"Digits MLP 64-64-10 after {steps} SGD steps (one run: init / early / converged)",
        )
        for name, steps in CHECKPOINTS.items()
    ),
    *(
        ZooEntry(
            name,
            build_mlp,
            partial(_train, **recipe),
            DATA,
            {"steps": recipe["full_steps"], **{k: v for k, v in recipe.items() if k != "full_steps"}},
            0,
            f"Digits MLP 64-64-10, {'full-batch GD (sharp)' if 'sharp' in name else 'batch-8 SGD (flat)'}",
        )
        for name, recipe in PAIR.items()
    ),
]


MODELS = (*CHECKPOINTS, *PAIR, "shapes-cnn")  # the zoo models this lab draws (shapes-cnn: the CF-CAM lab's CNN)


def batch_for(name: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The fixed batch ``(inputs, target)`` the lab evaluates zoo model ``name`` on (on the CPU).

    Digits models: the full training split (1,348 images). The shapes CNN: 16 held-out images
    (seed 10⁶), so that a 21×21 grid of CNN forwards stays within seconds on a CPU.

    >>> [tuple(t.shape) for t in batch_for("shapes-cnn")]
    [(16, 3, 64, 64), (16,)]
    """
    check_choice("name", name, MODELS)
    if name.startswith("digits"):
        return digits_batch("train")
    from core.data.shapes import make_shapes

    return make_shapes(SHAPES_BATCH, seed=SHAPES_SEED)[:2]


def upload_limit(name: str) -> int:
    """Bytes an uploaded ``.safetensors`` for ``name`` may have: 1.1 × its tensors' bytes (the header is small).

    >>> upload_limit("digits-mlp-converged")
    21164
    """
    state = zoo.entry(check_choice("name", name, MODELS)).build().state_dict()
    return int(1.1 * sum(v.numel() * v.element_size() for v in state.values()))


def load_upload(name: str, data: bytes, *, device: torch.device | str = "cpu") -> nn.Module:
    """Zoo architecture ``name`` with untrusted weights (safetensors only; keys, shapes, dtypes and size checked)."""
    limit = upload_limit(name)
    if len(data) > limit:
        raise OptiscopeError(
            f"Expected weights for `{name}` of at most {limit:,} bytes, but the file has {len(data):,}"
        )
    try:
        return zoo.load_state_dict_bytes(name, data, max_bytes=limit).to(device)
    except ValueError as err:  # the zoo's messages name the problem: a user's file, not a bug
        raise OptiscopeError(str(err)) from None
