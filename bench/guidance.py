"""Benchmark of the guidance lab against diffusers' guiders (the anchor), on the shipped digits UNet.

    python bench/guidance.py [--quick]

1. Per-step cost of each guider relative to plain CFG (whole sampler runs in interleaved rounds: 2 UNet calls + the
   guider a step), and the guider's own combine cost as a share of a step; our reference `apg()` against diffusers' `AdaptiveProjectedGuidance` (max diff, time).
2. Adaptive guidance with its adaptive test (γ̄ < 1): model calls saved, and quality that is not at its ceiling
   (k-NN precision/recall against held-out digits, saturation) next to class accuracy (at its ceiling here).
Writes bench/results/guidance.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
from functools import partial
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _common import interleaved, publish, quiet  # noqa: E402

from core import zoo  # noqa: E402
from core.guidance import GuiderConfig, apg, digits_unet, evaluate, make_guider, run  # noqa: E402
from core.runs import last_state  # noqa: E402

APG = "APG (η=0, r=2, β=−0.5)"
GUIDERS = {
    "CFG": GuiderConfig("cfg"),
    APG: GuiderConfig("apg", eta=0.0, rescale=2.0, momentum=-0.5),
    "CFG + rescale φ=0.7": GuiderConfig("cfg-rescale"),
    "Tangential CFG": GuiderConfig("tcfg"),
    "CFG-Zero*": GuiderConfig("cfg-zero-star"),
    "APG-Mix": GuiderConfig("apg-mix", rescale=2.0, momentum=-0.5),
}


def sample(D, labels, config: GuiderConfig, steps: int):
    return last_state(run(D, labels, guider=config, steps=steps, seed=0))


def with_w(config: GuiderConfig, w: float) -> GuiderConfig:
    return dataclasses.replace(config, w=w)


def drive(guider, c, u, steps):
    for i in range(steps):
        guider.set_state(step=i, num_inference_steps=steps, timestep=torch.tensor(i))
        guider.prepare_inputs({})
        out = guider.forward(pred_cond=c, pred_uncond=u).pred
    return out


def guider_costs(D, labels, steps: int, repeats: int, w: float) -> tuple[list[str], dict[str, float]]:
    """Each guider's sampler step against CFG's in interleaved rounds, and its combine alone on (n, 1, 8, 8) x0s."""
    g = torch.Generator().manual_seed(0)
    c, u = torch.randn(len(labels), 1, 8, 8, generator=g), torch.randn(len(labels), 1, 8, 8, generator=g)
    configs = {label: with_w(config, w) for label, config in GUIDERS.items()}
    step = interleaved({k: partial(sample, D, labels, config, steps) for k, config in configs.items()}, repeats=repeats)
    guiders = {k: make_guider(config) for k, config in configs.items()}  # step 0 rebuilds a guider's buffers
    combine = interleaved({k: partial(drive, guider, c, u, steps) for k, guider in guiders.items()}, repeats=repeats)
    lines = [
        f"## Per-step cost relative to plain CFG (digits UNet, {len(labels)} samples, {steps} steps a run, 1 thread)",
        "",
        f"Whole sampler runs, one per guider in each of {repeats} interleaved rounds (after a warm-up round): "
        "step / CFG is the median (min–max) of the ratios within a round, so load that changes between rounds "
        "cancels. The combine is the guider alone (set_state, prepare_inputs, forward) on the same tensors; its "
        "share is combine / step.",
        "",
        "| guider | step | step / CFG, interleaved pairs | guider combine | combine share of a step |",
        "|---|---|---|---|---|",
    ]
    pairs = {}
    for label in GUIDERS:
        pairs[label] = [a / b for a, b in zip(step[label].samples, step["CFG"].samples, strict=True)]
        per_step, per_combine = step[label].per(steps), combine[label].per(steps)
        share = 100 * per_combine.median / per_step.median
        lines.append(
            f"| {label} | {per_step.show('ms')} | {_spread(pairs[label])} | {per_combine.show('µs')} | {share:.2f}% |"
        )
    overhead, low, high = (100 * (f(pairs[APG]) - 1) for f in (statistics.median, min, max))
    share = 100 * combine[APG].median / step[APG].median
    extra = 100 * (combine[APG].median - combine["CFG"].median) / step["CFG"].median
    lines += [
        "",
        f"APG overhead per step, interleaved pairs: {overhead:+.1f}% (rounds {low:+.1f}% to {high:+.1f}%); "
        f"APG's combine is {share:.2f}% of its step, {extra:+.2f}% of a CFG step more than CFG's combine "
        "(target < 3%).",
        "",
    ]
    headline = {
        "APG step overhead, interleaved pairs (%)": overhead,
        "APG combine, share of a step (%)": share,
        "APG combine − CFG combine, share of a CFG step (%)": extra,
    }
    return lines, headline


def _spread(values: list[float]) -> str:
    return f"{statistics.median(values):.3f} ({min(values):.3f}–{max(values):.3f})"


def apg_parity(n: int, steps: int, repeats: int, w: float) -> list[str]:
    """Our reference `apg()` against the anchor, diffusers' AdaptiveProjectedGuidance, over `steps` steps."""
    g = torch.Generator().manual_seed(1)
    conds = [torch.randn(n, 1, 8, 8, generator=g) for _ in range(steps)]
    unconds = [torch.randn(n, 1, 8, 8, generator=g) for _ in range(steps)]

    def ours():
        running, outs = None, []
        for cc, uu in zip(conds, unconds, strict=True):
            out, running = apg(cc, uu, w, eta=0.0, rescale=2.0, momentum=-0.5, running=running)
            outs.append(out)
        return outs

    def anchor():
        guider = make_guider(GuiderConfig("apg", w=w, eta=0.0, rescale=2.0, momentum=-0.5))
        outs = []
        for i, (cc, uu) in enumerate(zip(conds, unconds, strict=True)):
            guider.set_state(step=i, num_inference_steps=steps, timestep=torch.tensor(i))
            guider.prepare_inputs({})
            outs.append(guider.forward(pred_cond=cc, pred_uncond=uu).pred)
        return outs

    diff = max((a - b).abs().max().item() for a, b in zip(ours(), anchor(), strict=True))
    t = interleaved({"ours": ours, "diffusers": anchor}, repeats=repeats)
    return [
        "## Reference `apg()` vs diffusers `AdaptiveProjectedGuidance` (anchor)",
        "",
        f"| max abs diff | ours ({steps} steps) | diffusers | diffusers / ours |",
        "|---|---|---|---|",
        f"| {diff:.1e} | {t['ours'].show('ms')} | {t['diffusers'].show('ms')} | {t['ours'].ratio(t['diffusers']):.2f}× |",
        "",
    ]


def adaptive_guidance(D, clf, labels, steps: int, w: float = 7.5) -> tuple[list[str], dict[str, float]]:
    """Model calls saved by AG's adaptive test (γ̄ < 1), with quality metrics that are not at their ceiling."""
    runs = {"CFG": GuiderConfig("cfg", w=w), "conditional only (w = 1)": GuiderConfig("cfg", w=1.0)}
    for gamma in (0.99, 0.995, 0.98):  # the headline first
        runs[f"AG warm-up 8, γ̄={gamma}"] = GuiderConfig("adaptive", w=w, gamma=gamma, warmup_steps=8)
    for warm in (5, 8):  # γ̄ = −1 truncates right after the warm-up: a fixed schedule, not the adaptive test
        runs[f"fixed schedule: CFG for {warm} steps, then conditional (γ̄=-1, not adaptive)"] = GuiderConfig(
            "adaptive", w=w, gamma=-1.0, warmup_steps=warm
        )
    results = {}
    for label, config in runs.items():
        state = sample(D, labels, config, steps)
        results[label] = (state.model_evals, evaluate(D, state.x, labels, classifier=clf))
    base_calls, base = results["CFG"]
    ceiling = sum(m["accuracy"] == 1.0 for _, m in results.values())
    lines = [
        "## Adaptive guidance: model calls saved by the adaptive test, and what it costs in quality",
        "",
        f"w = {w}, {steps} DDIM steps, {len(labels)} samples. Saved = 1 − calls / calls(CFG). Precision / recall: "
        f"k-NN (k = 3) in pixel space against 200 held-out digits. Class accuracy is 1.000 in {ceiling} of "
        f"{len(results)} runs: at its ceiling it cannot tell runs apart; precision, recall and saturation can.",
        "",
        "| run | model calls | saved | precision | recall | saturation | class accuracy |",
        "|---|---|---|---|---|---|---|",
    ]
    for label, (calls, m) in results.items():
        saved = 1 - calls / base_calls
        lines.append(
            f"| {label} | {calls} | {100 * saved:.0f}% | {m['precision']:.3f} | {m['recall']:.3f} | "
            f"{m['saturation']:.3f} | {m['accuracy']:.3f} |"
        )
    calls, m = results["AG warm-up 8, γ̄=0.99"]
    lines += [
        "",
        f"**Headline (adaptive test γ̄ = 0.99, warm-up 8):** {100 * (1 - calls / base_calls):.0f}% fewer model calls "
        f"than CFG; precision {m['precision']:.3f} vs {base['precision']:.3f}, recall {m['recall']:.3f} vs "
        f"{base['recall']:.3f}, saturation {m['saturation']:.3f} vs {base['saturation']:.3f}, class accuracy "
        f"{m['accuracy']:.3f} vs {base['accuracy']:.3f}.",
    ]
    headline = {
        "AG model calls saved (%)": 100 * (1 - calls / base_calls),
        "AG precision": m["precision"],
        "CFG precision": base["precision"],
        "AG recall": m["recall"],
        "CFG recall": base["recall"],
    }
    return lines, headline


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="fewer samples and steps (about a minute)")
    args = parser.parse_args()
    # timing batch and steps are kept small: every guider runs once per round, and ≥ 5 rounds are timed
    n, steps, timing_n, timing_steps, repeats, w = (20, 10, 10, 3, 5, 15.0) if args.quick else (100, 25, 50, 5, 5, 15.0)
    torch.set_num_threads(1)
    D, clf = digits_unet(), zoo.load("digits-classifier")
    labels = torch.arange(10).repeat(n // 10)
    lines = [f"# Guidance lab benchmark ({'quick' if args.quick else 'full'}: {n} samples, {steps} DDIM steps, w={w})"]
    quiet()
    costs, headline = guider_costs(D, labels[:timing_n], timing_steps, repeats, w)
    lines += ["", *costs, *apg_parity(n, steps, repeats, w)]
    ag_lines, ag_headline = adaptive_guidance(D, clf, labels, steps)
    publish("guidance", lines + ag_lines, quick=args.quick, headline=headline | ag_headline)


if __name__ == "__main__":
    main()
