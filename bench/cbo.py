"""CBO benchmark: Optiscope's torch CBO vs CBXpy (the anchor) with the same dynamics, side by side.

Same Euler-Maruyama step, fixed alpha (CBXpy's ``step()`` applies no alpha schedule), anisotropic noise,
the same Rastrigin ``sum x^2 + 10 (1 - cos 2 pi x)`` in numpy for CBXpy. Reported: particle-steps per
second at N = 1e2 … 1e6 (float64 against CBXpy's float64 as the headline, float32 as a second row; timings
interleaved ours/CBXpy, median (min–max)) and success rates (||v - x*||_inf < 0.25).

    python bench/cbo.py [--quick] [--full] [--device cuda] [--threads 1]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _common import interleaved, publish, quiet  # noqa: E402
from cbx.dynamics import CBO  # noqa: E402

from core.cbo import OBJECTIVES, CBOConfig, run  # noqa: E402
from core.cbo.state import success  # noqa: E402
from core.device import sync  # noqa: E402
from core.runs import last_state  # noqa: E402

SETUP = {"alpha": 30.0, "sigma": 10.1, "lam": 1.0, "dt": 0.01, "noise": "anisotropic"}


def rastrigin_np(x: np.ndarray) -> np.ndarray:
    return (x**2 + 10 * (1 - np.cos(2 * np.pi * x))).sum(-1)


def x0_uniform(m: int, n: int, d: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-3, 3, (m, n, d))


def cbx_run(x0: np.ndarray, steps: int, seed: int) -> tuple[np.ndarray, float]:
    hyper = {
        "alpha": SETUP["alpha"],
        "sigma": SETUP["sigma"],
        "lamda": SETUP["lam"],
        "dt": SETUP["dt"],
        "noise": SETUP["noise"],
    }
    dyn = CBO(
        rastrigin_np, x=x0.copy(), f_dim="3D", max_it=steps, verbosity=0, seed=seed, track_args={"names": []}, **hyper
    )
    t = time.perf_counter()
    for _ in range(steps):
        dyn.step()
    dyn.compute_consensus()  # the consensus of the final particles, as ours computes it: timed on both sides
    elapsed = time.perf_counter() - t
    return np.asarray(dyn.consensus).reshape(x0.shape[0], -1), elapsed


def ours_run(
    x0: np.ndarray, steps: int, seed: int, device: str, dtype=torch.float32
) -> tuple[torch.Tensor, float, bool]:
    x = torch.tensor(x0, dtype=dtype, device=device)
    sync(x.device)
    t = time.perf_counter()
    last = last_state(run(OBJECTIVES["Rastrigin"], x, config=CBOConfig(**SETUP), steps=steps, seed=seed, every=steps))
    sync(x.device)
    return last.consensus, time.perf_counter() - t, last.diverged


def throughput(n: int, steps: int, repeats: int, d: int = 20) -> dict:
    """Interleaved timings of one run of ``steps`` steps (M = 1): ours in float64 and float32, CBXpy (float64)."""
    x0 = x0_uniform(1, n, d, seed=0)
    return interleaved(
        {
            "float64": lambda: ours_run(x0, steps, 0, "cpu", torch.float64),
            "float32": lambda: ours_run(x0, steps, 0, "cpu", torch.float32),
            "CBXpy": lambda: cbx_run(x0, steps, 0),
        },
        repeats=repeats,
    )


def per_second(seconds_per_item) -> str:
    """Millions of particle-steps per second: the median with its spread (slowest–fastest repeat)."""
    return (
        f"{1e-6 / seconds_per_item.median:.2f} M ({1e-6 / seconds_per_item.high:.2f}–{1e-6 / seconds_per_item.low:.2f})"
    )


def success_rate(n: int, runs: int, steps: int, device: str, d: int = 20) -> dict:
    x0 = x0_uniform(runs, n, d, seed=1)
    v_cbx, _ = cbx_run(x0, steps, 1)
    rates = {"CBXpy": float((np.abs(v_cbx).max(-1) < 0.25).mean())}
    for dtype in (torch.float64, torch.float32):
        v_ours, _, _ = ours_run(x0, steps, 1, device, dtype)
        rates[str(dtype).removeprefix("torch.")] = float(success(v_ours.cpu(), torch.zeros(d)).float().mean())
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer steps, repeats and runs")
    parser.add_argument("--full", action="store_true", help="success rates over 100 runs × 5000 steps (+2 min)")
    parser.add_argument("--device", default="cpu", help="for the success rates (throughput is measured on the CPU)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (numpy follows OMP_NUM_THREADS)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    q = args.quick
    note = quiet()
    cbx_version = getattr(__import__("cbx"), "__version__", "1.0.4")
    sr_note = "100 runs × 5000 steps (--full)" if args.full else "the runs × steps of their table (--full: 100 × 5000)"
    lines = [
        f"# CBO benchmark: Optiscope (torch) vs CBXpy {cbx_version}",
        "",
        f"Contention guard: {note}. torch {torch.__version__} ({args.threads} thread), numpy {np.__version__}; "
        f"{'--quick' if q else 'full run'}; success rates over {sr_note}.",
        f"Dynamics: anisotropic CBO, alpha = {SETUP['alpha']} fixed, sigma = {SETUP['sigma']}, lambda = 1, dt = 0.01, "
        "Rastrigin d = 20, x0 ~ U[-3, 3]^d. CBXpy computes in float64. Ours: steps between yielded states run with "
        "one host sync per segment, noise drawn in chunks (float32 draws cast to float64 in the float64 rows: torch's "
        "float64 sampler is scalar); the arithmetic is in the row's dtype. Timed on both sides: the steps and the "
        "consensus of the final particles (CBXpy's `compute_consensus()` after its last `step()`; before 2026-12-02 "
        "14:30 it was left out of CBXpy's time, one objective evaluation per call: the large-N rows, 2-5 steps a "
        "call, were understated).",
        "",
        "## Throughput (M = 1 run, d = 20): particle-steps/s, median (min–max) over interleaved repeats",
        "",
        "| N | steps | ours float64 | ours float32 | CBXpy (float64) | float64 ratio | float32 ratio |",
        "|---|---|---|---|---|---|---|",
    ]
    headline = {}
    repeats = 3 if q else 5
    for n in (10**2, 10**3, 10**4, 10**5) if q else (10**2, 10**3, 10**4, 10**5, 10**6):
        # ~5e5 particle-steps a call (2e5 with --quick), 2 to 200 steps: N = 1e6 takes 2 steps, ~12 s a round
        steps = max(2, min(200, int((2e5 if q else 5e5) / n)))
        t = throughput(n, steps, repeats)
        shown = {name: per_second(timing.per(n * steps)) for name, timing in t.items()}

        r64, r32 = t["float64"].ratio(t["CBXpy"]), t["float32"].ratio(t["CBXpy"])
        headline[f"float64 ratio N={n:.0e}"], headline[f"float32 ratio N={n:.0e}"] = r64, r32
        lines.append(
            f"| {n:.0e} | {steps} | {shown['float64']} | {shown['float32']} | {shown['CBXpy']} | **{r64:.2f}×** | "
            f"{r32:.2f}× |"
        )
        print(lines[-1], flush=True)
    lines += [
        "",
        "## Success rates (d = 20, ||v − x*||∞ < 0.25)",
        "",
        "| N | runs | steps | ours float64 | ours float32 | CBXpy |",
    ]
    lines.append("|---|---|---|---|---|---|")
    # Runs batched (M = runs): CBXpy takes ~2 µs a particle-step here, so 100 runs × 5000 steps (--full) cost
    # ~2.5 min. By default 50 runs each, to about the step where all three have converged (N = 40 reaches ~88% at
    # 2000 steps, ~99% at 3000; N = 100 ~40% at 1000, 100% at 2000).
    if q:
        sizes = ((40, 20, 1000), (100, 10, 1000))
    elif args.full:
        sizes = ((40, 100, 5000), (100, 100, 5000))
    else:
        sizes = ((40, 50, 3000), (100, 50, 2000))
    for n, runs, steps in sizes:
        sr = success_rate(n, runs, steps, args.device)
        headline[f"success N={n} ours float64"], headline[f"success N={n} CBXpy"] = sr["float64"], sr["CBXpy"]
        lines.append(f"| {n} | {runs} | {steps} | {sr['float64']:.0%} | {sr['float32']:.0%} | {sr['CBXpy']:.0%} |")
        print(lines[-1], flush=True)
    publish("cbo", lines, quick=q, headline=headline)


if __name__ == "__main__":
    main()
