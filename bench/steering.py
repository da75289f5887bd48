"""Benchmark of the steering lab on the shipped digits UNet: per-step cost of each method against CFG.

    python bench/steering.py [--quick]

1. Per-step cost of a whole sampler step (model calls + the method) relative to CFG, at equal samples, and the
   model calls per sample of a run (CFG-MP: 2 + 2K per projected step; EluCD: 1 per step, its oracle off).
2. Dynamic CFG's evaluator overhead: scoring |S| candidate x̂0s with the shipped classifier and the nearest
   training digit, against one CFG step (target ≤ 10%).
3. Quality at equal model calls: each method beside CFG with as many calls, judged by digits-mlp-converged
   (not the evaluator), with saturation (share of pixels beyond ±1.1).
Writes bench/results/steering.md.
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
from core.guidance import balanced_labels, digits_unet  # noqa: E402
from core.guidance import steering as S  # noqa: E402
from core.guidance.steering.base import StepInput  # noqa: E402
from core.guidance.steering.dynamic import candidate_predictions, choose, evaluator_scores  # noqa: E402
from core.runs import last_state  # noqa: E402

CANDIDATES = (1.0, 2.0, 3.0, 5.0, 7.5, 10.0)


def methods(clf) -> dict:
    return {
        "CFG (w = 3)": S.CFG(w=3.0),
        "Dynamic CFG (λ = 3, 6 candidates)": S.DynamicCFG(
            S.digits_evaluators(clf, fidelity=3.0), candidates=CANDIDATES
        ),
        "CFG-MP, Picard K = 2 (w = 2)": S.CFGMP(w=2.0, iterations=2),
        "CFG-MP+, Anderson K = 2 (w = 2)": S.CFGMP(w=2.0, iterations=2, solver="anderson"),
        "EluCD (s = 0.1, on x̂0, oracle off)": S.EluCD(clf, scale=0.1, oracle=False),
    }


def step_costs(D, labels, guiders: dict, steps: int, repeats: int) -> tuple[list[str], dict[str, float]]:
    runs = {label: (lambda g=g: last_state(S.run(D, labels, guider=g, steps=steps))) for label, g in guiders.items()}
    t = interleaved(runs, repeats=repeats, warmup=1)
    base = t["CFG (w = 3)"]
    lines = [
        f"## Per-step cost relative to CFG ({len(labels)} samples, {steps} DDIM steps per run, CPU, 1 thread)",
        "",
        "| method | step (ms) | step / CFG | model calls per sample (run) |",
        "|---|---|---|---|",
    ]
    headline = {}
    for label, g in guiders.items():
        per, calls = t[label].per(steps), S.model_calls(g, D, steps=steps)
        ratio = t[label].median / base.median
        lines.append(f"| {label} | {per.show('ms')} | {ratio:.2f}× | {calls} |")
        headline[f"{label}: step / CFG"] = ratio
    return lines + [""], headline


def evaluator_overhead(D, labels, clf, repeats: int) -> tuple[list[str], dict[str, float]]:
    """Scoring the candidates (no model call) against one full CFG step, at the first (noisiest) step."""
    guider = S.DynamicCFG(S.digits_evaluators(clf, fidelity=3.0), candidates=CANDIDATES)
    levels, x = D.levels(25), D.init(len(labels), 0)
    s = StepInput(D, x, 0, levels, labels)
    x0_cond, x0_uncond = s.predict(x, labels), s.predict(x, None)
    candidates = torch.tensor(CANDIDATES, dtype=torch.float64)
    weights = torch.tensor([e.weight for e in guider.evaluators], dtype=torch.float64)

    def cfg_step():
        out = S.CFG(w=3.0).guide(s)
        return D.step(out.x, out.x0_guided, 0, levels)

    def scoring():
        scores = evaluator_scores(guider.evaluators, candidate_predictions(x0_cond, x0_uncond, candidates), labels)
        return choose(scores, weights)

    t = interleaved({"CFG step": cfg_step, "evaluators": scoring}, repeats=repeats, warmup=2)
    share = 100 * t["evaluators"].median / t["CFG step"].median
    lines = [
        "## Dynamic CFG: evaluator overhead against one CFG step",
        "",
        f"{len(CANDIDATES)} candidates × {len(labels)} samples scored by the shipped classifier (log p(y|x̂0)) "
        "and the nearest of 1,348 training digits (one matmul).",
        "",
        "| CFG step (2 UNet calls + combine + DDIM) | evaluators + argmax | share |",
        "|---|---|---|",
        f"| {t['CFG step'].show('ms')} | {t['evaluators'].show('ms')} | {share:.1f}% |",
        "",
        f"Target ≤ 10%: {'met' if share <= 10 else 'NOT met'}.",
        "",
    ]
    return lines, {"Dynamic CFG evaluator overhead (% of a CFG step)": share}


def equal_calls(D, labels, guiders: dict, judge, steps: int) -> list[str]:
    lines = [
        f"## Quality at equal model calls ({len(labels)} samples, {steps} steps for the method)",
        "",
        "Judge: digits-mlp-converged (ReLU MLP of the landscape lab), not the evaluator digits-classifier.",
        "",
        "| method | model calls | judge accuracy | saturation | CFG with as many calls: steps, accuracy, saturation |",
        "|---|---|---|---|---|",
    ]
    cfg_rows = {}  # CFG at (w, steps): both CFG-MP variants match the same 55-step w = 2 run
    for label, g in guiders.items():
        if isinstance(g, S.CFG):
            continue
        cfg, cfg_steps = S.equal_nfe_cfg(g, D, steps=steps, w=getattr(g, "w", 3.0))
        # every run of a comparison starts from the same seeded start, so a run's row does not depend on the others
        (m,) = last_state(S.compare(D, labels, runs={"m": (g, steps)}, judge=judge)).rows
        if (cfg.w, cfg_steps) not in cfg_rows:
            cfg_rows[cfg.w, cfg_steps] = last_state(
                S.compare(D, labels, runs={"c": (cfg, cfg_steps)}, judge=judge)
            ).rows[0]
        c = cfg_rows[cfg.w, cfg_steps]
        lines.append(
            f"| {label} | {m['model calls']} | {m['judge accuracy']:.3f} | {m['saturation']:.4f} | "
            f"{cfg_steps} steps (w = {cfg.w:g}), {c['judge accuracy']:.3f}, {c['saturation']:.4f} |"
        )
    return lines + [""]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="fewer samples, steps and rounds")
    args = parser.parse_args()
    n, steps, repeats = (20, 6, 3) if args.quick else (40, 10, 5)
    torch.set_num_threads(1)
    D, clf, judge = digits_unet(), zoo.load("digits-classifier"), zoo.load("digits-mlp-converged")
    labels = balanced_labels(10, n)
    note = quiet()
    guiders = methods(clf)
    lines = [f"# Steering lab benchmark ({'quick' if args.quick else 'full'}: {n} samples; {note})", ""]
    costs, headline = step_costs(D, labels, guiders, steps, repeats)
    overhead, oh_headline = evaluator_overhead(D, labels, clf, 3 * repeats)
    lines += costs + overhead
    if not args.quick:
        lines += equal_calls(D, labels, guiders, judge, 25)
    publish("steering", lines, quick=args.quick, headline=headline | oh_headline)


if __name__ == "__main__":
    main()
