"""Benchmark of the diffusion-training lab: teacher CFG vs the distilled student on the digits UNet.

    python bench/diffusion_training.py [--quick]

Model calls (NFE) and wall time per sample: the shipped ``digits-unet`` with CFG (2 calls a DDIM step, batched
as one forward of 2B) at 32 and 4 steps, against ``digits-unet-distilled`` (w in the call, 4 steps, 1 call a
step), in interleaved rounds on one thread. Quality beside it: class accuracy by an independent classifier
(a logistic regression on the raw digits) and the RMS distance to the nearest training digit.
Writes bench/results/diffusion_training.md.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _common import interleaved, publish, quiet  # noqa: E402

from core import zoo  # noqa: E402
from core.diffusion_training import models as distilled  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    n, w = (20, 3.0) if args.quick else (50, 3.0)
    teacher, student = zoo.load("digits-unet"), zoo.load("digits-unet-distilled")
    labels = torch.arange(n) % 10
    samplers = {
        "teacher CFG, 32 steps": (distilled.teacher_cfg(teacher, w), 32, 64),
        "teacher CFG, 4 steps (naive)": (distilled.teacher_cfg(teacher, w), 4, 8),
        "distilled student, 4 steps": (distilled.student_eps(student, w), 4, 4),
    }
    quiet()  # its load note heads the report
    calls = {name: (lambda p=p, k=k: distilled.sample(p, labels, k, 0)) for name, (p, k, _) in samplers.items()}
    timings = interleaved(calls, repeats=3 if args.quick else 5)
    judge = distilled.independent_classifier()
    big = torch.arange(200) % 10
    lines = [
        f"# Diffusion training lab benchmark ({'quick' if args.quick else 'full'}: {n} samples a call, w = {w:g})",
        "",
        "One thread; timings: median (min–max) over interleaved rounds, per sample.",
        "",
        "| sampler | model calls (NFE) per sample | wall time per sample | class accuracy (200) | nn-rms (200) |",
        "|---|---|---|---|---|",
    ]
    for name, (predict, steps, nfe) in samplers.items():
        x = distilled.sample(predict, big, steps, 0)
        acc = (judge(x) == big).double().mean().item()
        lines.append(
            f"| {name} | {nfe} | {timings[name].per(n).show('ms')} | {acc:.3f} | {distilled.nearest_rms(x):.3f} |"
        )
    speedup = timings["distilled student, 4 steps"].ratio(timings["teacher CFG, 32 steps"])
    lines += [
        "",
        f"Distilled 4-step student vs 32-step teacher CFG: {64 // 4}× fewer model calls, {speedup:.1f}× less wall "
        "time per sample (the teacher batches its two branches into one forward, so its 64 NFE cost 32 forwards "
        "of twice the batch).",
    ]
    publish("diffusion_training", lines, quick=args.quick, headline={"speedup": speedup, "nfe_ratio": 16.0})


if __name__ == "__main__":
    main()
