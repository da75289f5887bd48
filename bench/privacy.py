"""Privacy benchmark: the cost of a private round (per-sample gradients via torch.func vmap) vs plain GD.

Per model, seconds per round of: plain full-batch GD (an nn.Module, autograd of the mean loss), per-sample gradients by
``torch.func.vmap(grad)`` and by opacus's ``GradSampleModule`` (the anchor library's hook-based engine), the
closed form (logistic only), and whole DP-GD / DIFF2-GD rounds of ``core.privacy.run``; ratios to plain GD in the
same run. Then opacus's accountant against the classic conversion for the calibrated noise.

    python bench/privacy.py [--quick] [--device cuda] [--threads 1]
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import warnings
from pathlib import Path

import torch
from torch.func import grad_and_value, vmap

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from opacus import GradSampleModule

from bench._common import Timing, interleaved, publish, quiet
from core.device import device_label
from core.privacy import PrivateConfig, calibrate, classic_epsilon, load, rdp_epsilon, run
from core.privacy.data import HIDDEN, init_parameters, per_sample_gradients, sample_loss
from core.runs import last_state

PLAIN = "plain GD (nn.Module, autograd of the mean loss)"


def module(model: str, d: int) -> torch.nn.Module:
    layers = (
        [torch.nn.Linear(d, 1)]
        if model == "logistic"
        else [torch.nn.Linear(d, HIDDEN), torch.nn.Softplus(), torch.nn.Linear(HIDDEN, 1)]
    )
    return torch.nn.Sequential(*layers).double()


def timings(model: str, n: int, rounds: int, device: str, repeats: int) -> dict[str, Timing]:
    data = load("unit-logistic", n_samples=n)
    x, y = data.inputs.to(device), data.target.to(device)
    d = x.shape[1]
    p = init_parameters(model, d, seed=0, like=x)
    loss_one = sample_loss(model, d, data.task)
    bce = torch.nn.BCEWithLogitsLoss(reduction="sum")
    plain = module(model, d).to(device)

    def plain_gd():
        plain.zero_grad(set_to_none=True)
        (bce(plain(x).squeeze(1), y) / len(y)).backward()

    net = GradSampleModule(module(model, d).to(device))

    def opacus_per_sample():
        net.zero_grad(set_to_none=True)
        bce(net(x).squeeze(1), y).backward()
        return [q.grad_sample for q in net.parameters()]

    calls = {
        PLAIN: plain_gd,
        "per-sample, torch.func vmap(grad)": lambda: vmap(grad_and_value(loss_one), in_dims=(None, 0, 0))(p, x, y),
        "per-sample, opacus GradSampleModule": opacus_per_sample,
    }
    if model == "logistic":
        fast = per_sample_gradients(model, d, data.task)
        calls["per-sample, closed form (the lab's path)"] = lambda: fast(p, x, y)
    out = interleaved(calls, repeats=repeats)
    # whole runs are long: their own interleaved rounds, without warm-up
    runs = {}
    for name, restart in (("DP-GD round (run, T = 1)", 1), ("DIFF2-GD round (run, T = 10)", 10)):
        config = dataclasses.replace(PrivateConfig(), restart=restart)
        runs[name] = lambda c=config: last_state(run(model, data, config=c, steps=rounds, device=device))
    return out | {name: t.per(rounds) for name, t in interleaved(runs, repeats=5, warmup=0).items()}


def accountant_rows() -> list[str]:
    rows = ["| target ε | T | R | opacus RDP ε | classic ε |", "|---|---|---|---|---|"]
    for epsilon in (0.3, 1.0, 3.0):
        for restart in (1, 10, 25):
            c = calibrate(epsilon, 1e-5, rounds=200, restart=restart)
            spent = {"full": c.full_rounds, "difference": c.difference_rounds}
            rows.append(
                f"| {epsilon:g} | {restart} | 200 | {rdp_epsilon(c, 1e-5, **spent):.3f} | "
                f"{classic_epsilon(c, 1e-5, **spent):.3f} |"
            )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="N = 2000, fewer rounds (a minute)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore", "Full backward hook is firing")  # opacus's hooks on inputs without grad
    n, rounds, repeats = (2000, 5, 5) if args.quick else (10_000, 10, 5)
    quiet()
    headline = {}
    lines = [
        "# Privacy benchmark: the cost of per-sample gradients, and the accountant",
        "",
        f"Device: {device_label(torch.device(args.device))}; torch {torch.__version__}; opacus 1.6.0; "
        f"{'--quick' if args.quick else 'full run'}. Data: the generated unit-norm set, N = {n}, d = 20, float64. "
        f"Times: median (min–max) over {repeats} interleaved rounds (whole runs of {rounds} rounds: 5, in rounds of "
        "their own); ratios of medians.",
        "",
    ]
    for model in ("logistic", "mlp"):
        t = timings(model, n, rounds, args.device, repeats)
        base = t[PLAIN]
        lines += [
            f"## {model} (D = {21 if model == 'logistic' else 221})",
            "",
            "| what | per round | × plain GD |",
            "|---|---|---|",
        ]
        lines += [f"| {k} | {v.show()} | {v.median / base.median:.1f}× |" for k, v in t.items()]
        headline[f"vmap per-sample / plain GD, {model} (×)"] = base.ratio(t["per-sample, torch.func vmap(grad)"])
        headline[f"opacus / vmap per-sample, {model} (×)"] = t["per-sample, torch.func vmap(grad)"].ratio(
            t["per-sample, opacus GradSampleModule"]
        )
        lines.append("")
        print("\n".join(lines[-len(t) - 4 :]), flush=True)
    lines += ["## Accountant: opacus RDP vs the classic conversion (δ = 1e-5), both ≤ the target", ""]
    lines += accountant_rows()
    publish("privacy", lines, quick=args.quick, headline=headline)


if __name__ == "__main__":
    main()
