"""Explanation-choice lab benchmark: captum's eight calls against the direct LFA solution.

    python bench/explanations.py [--quick]

1. Time per explanation, per method: captum (``core.explanations.explain``) vs the direct LFA solve
   (``core.explanations.lfa``, same neighbourhood, loss and sample count), on the cancer MLP (30 features)
   and the shapes CNN (64×64 images, 16 patches as features).
2. Samples each sampled captum method needs to come within 1e-2 (relative L2) of its LFA solution, the
   reference being a large-n LFA solve (Gauss–Legendre with 512 nodes for IG).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np
import torch

from bench._common import interleaved, publish, quiet
from core import zoo
from core.data.shapes import make_shapes
from core.explanations import METHODS, LFAConfig, explain, lfa, patch_features, tabular

SAMPLED = ("lime", "kernelshap", "clime", "smoothgrad", "ig")
TOLERANCE = 1e-2


def subjects(quick: bool) -> dict[str, dict]:
    cancer = zoo.load("cancer-mlp").requires_grad_(False)
    x_tab = tabular("cancer").x_test[:1]
    cnn = zoo.load("shapes-cnn").requires_grad_(False)
    x_img = make_shapes(1, seed=3)[0]
    return {
        "tabular (cancer MLP, d = 30)": dict(
            model=cancer,
            inputs=x_tab,
            target=int(cancer(x_tab).argmax()),
            features=None,
            n_samples=300,
            config=LFAConfig(),
        ),
        "image (shapes CNN, 16 patches)": dict(
            model=cnn,
            inputs=x_img,
            target=int(cnn(x_img).argmax()),
            features=patch_features(64, 16),
            n_samples=32 if quick else 64,
            config=LFAConfig(kernel_width=40.0),
        ),
    }


def timing_table(quick: bool) -> tuple[list[str], dict[str, float]]:
    repeats = 5
    lines, headline = [], {}
    for name, s in subjects(quick).items():
        model, inputs = s.pop("model"), s.pop("inputs")
        lines += [
            f"### {name}, n = {s['n_samples']}",
            "",
            "| method | captum | direct LFA | captum / LFA |",
            "|---|---:|---:|---:|",
        ]
        calls = {}
        for key, m in METHODS.items():
            calls["lfa", key] = functools.partial(lfa, model, inputs, neighbourhood=m.neighbourhood, loss=m.loss, **s)
            calls["captum", key] = functools.partial(explain, model, inputs, method=key, **s)
        t = interleaved(calls, repeats=repeats)
        ratios = {key: t["lfa", key].ratio(t["captum", key]) for key in METHODS}
        for key, m in METHODS.items():
            lines.append(f"| {m.label} | {t['captum', key].show()} | {t['lfa', key].show()} | {ratios[key]:.1f}× |")
        lines.append("")
        headline[f"captum / LFA, {name.split(' (')[0]}, median over methods (×)"] = statistics.median(ratios.values())
    return lines, headline


@contextlib.contextmanager
def leggauss_memo():
    """numpy's Gauss–Legendre rule memoized while the (untimed) sample counts run: captum's IG asks for the same
    n-node rule twice a call, and at n = 4096 each (a dense eigenproblem) takes ~10 s."""
    original = np.polynomial.legendre.leggauss
    np.polynomial.legendre.leggauss = functools.cache(original)
    try:
        yield
    finally:
        np.polynomial.legendre.leggauss = original


def sample_counts(quick: bool) -> list[str]:
    model = zoo.load("cancer-mlp").requires_grad_(False).double()
    x0 = tabular("cancer").x_test[:1].double()
    target, seeds = int(model(x0).argmax()), (0, 1, 2)
    sizes = [2**k for k in range(5, 11 if quick else 13)]
    n_ref = 2**14 if quick else 2**16
    lines = [
        f"Cancer MLP (float64), one test point; relative L2 error ‖w_n − w*‖/‖w*‖, median of {len(seeds)} seeds; "
        f"w* = LFA with n = {n_ref} (IG: captum Gauss–Legendre, 512 nodes).",
        "",
        f"| method | {' | '.join(f'n={n}' for n in sizes)} | n for ≤ {TOLERANCE:g} |",
        f"|---|{'---:|' * len(sizes)}---:|",
    ]
    for key in SAMPLED:
        m = METHODS[key]
        if key == "ig":
            ref = explain(model, x0, method="ig", target=target, n_samples=512)
        else:
            ref = lfa(model, x0, neighbourhood=m.neighbourhood, loss=m.loss, target=target, n_samples=n_ref, seed=99)
        errors = []
        for n in sizes:
            with leggauss_memo():
                # IG has no sampling (Gauss–Legendre nodes): every seed gives the same map, so one call stands for all
                per_seed = [
                    explain(model, x0, method=key, target=target, n_samples=n, seed=s)
                    for s in (seeds[:1] if key == "ig" else seeds)
                ]
            errors.append(float(torch.tensor([float((w - ref).norm() / ref.norm()) for w in per_seed]).median()))
        reached = next((n for n, e in zip(sizes, errors, strict=True) if e <= TOLERANCE), None)
        cells = " | ".join(f"{e:.1e}" for e in errors)
        lines.append(f"| {m.label} | {cells} | {reached if reached else f'> {sizes[-1]}'} |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="fewer repeats and sizes (about a minute)")
    quick = parser.parse_args().quick
    torch.set_num_threads(1)
    start = time.perf_counter()
    quiet()
    timings, headline = timing_table(quick)
    lines = [
        "# Explanation-choice lab benchmark",
        "",
        "Device: cpu (1 thread), captum 0.9.0. Times: median (min–max) over interleaved rounds, every call once a "
        "round; ratios of medians.",
        "",
        "## Time per explanation: captum vs the direct LFA solve",
        "",
    ]
    lines += timings
    lines += ["## Samples to reach 1e-2 of the LFA solution (captum calls)", ""]
    lines += sample_counts(quick)
    lines += [
        "",
        "Vanilla gradients and Gradient × input: captum takes the limit (σ → 0, a → 1: one gradient), the LFA solve "
        "averages n gradients over its narrow neighbourhood, so it is n times the work there.",
        "",
        f"Total {time.perf_counter() - start:.0f} s{' (--quick)' if quick else ''}.",
    ]
    publish("explanations", lines, quick=quick, headline=headline)


if __name__ == "__main__":
    main()
