"""CBO benchmark: Optiscope's torch CBO vs CBXpy (the anchor) with the same dynamics, side by side.

Same Euler-Maruyama step, fixed alpha (CBXpy's ``step()`` applies no alpha schedule), anisotropic noise,
the same Rastrigin ``sum x^2 + 10 (1 - cos 2 pi x)`` in numpy for CBXpy. Reported: particle-steps per
second and success rates (||v - x*||_inf < 0.25), plus throughput as N grows.

    python bench/cbo.py [--quick] [--device cuda] [--threads 1]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from cbx.dynamics import CBO  # noqa: E402

from core.cbo import OBJECTIVES, CBOConfig, run  # noqa: E402
from core.cbo.state import success  # noqa: E402
from core.device import device_label, sync  # noqa: E402
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
    elapsed = time.perf_counter() - t
    dyn.compute_consensus()  # the consensus of the final particles, like ours
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


def throughput(m: int, n: int, d: int, steps: int, device: str, dtype=torch.float32) -> dict:
    x0 = x0_uniform(m, n, d, seed=0)
    ours_run(x0, min(steps, 20), 0, device, dtype)  # warm-up (allocator, kernels)
    _, t_ours, _ = ours_run(x0, steps, 0, device, dtype)
    _, t_cbx = cbx_run(x0, steps, 0)
    ps = m * n * steps
    return {"ours": ps / t_ours, "cbx": ps / t_cbx}


def success_rate(n: int, runs: int, steps: int, device: str, d: int = 20) -> dict:
    x0 = x0_uniform(runs, n, d, seed=1)
    v_cbx, _ = cbx_run(x0, steps, 1)
    v_ours, _, _ = ours_run(x0, steps, 1, device)
    ok_cbx = np.abs(v_cbx).max(-1) < 0.25
    ok_ours = success(v_ours.cpu(), torch.zeros(d))
    return {"ours": float(ok_ours.float().mean()), "cbx": float(ok_cbx.mean())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer steps and runs (< 60 s)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (numpy follows OMP_NUM_THREADS)")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "cbo.md"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    q = args.quick
    cbx_version = getattr(__import__("cbx"), "__version__", "1.0.4")
    lines = [
        f"# CBO benchmark: Optiscope (torch) vs CBXpy {cbx_version}",
        "",
        f"Device: {device_label(torch.device(args.device))}; torch {torch.__version__}; numpy {np.__version__}; "
        f"{platform.processor() or platform.machine()}; {'--quick' if q else 'full run'}; "
        f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores at the start (a busy machine lowers every rate).",
        f"Dynamics: anisotropic CBO, alpha = {SETUP['alpha']} fixed, sigma = {SETUP['sigma']}, lambda = 1, dt = 0.01, "
        "Rastrigin, x0 ~ U[-3, 3]^d. CBXpy computes in float64; Optiscope in float32 unless the row says float64.",
        "",
    ]

    steps = 200 if q else 1000
    lines += [
        "## Throughput (Rastrigin d = 20, N = 1000, M = 10 runs)",
        "",
        "| Optiscope dtype | steps | Optiscope particle-steps/s | CBXpy particle-steps/s | ratio |",
        "|---|---|---|---|---|",
    ]
    for dtype in (torch.float32, torch.float64):
        tp = throughput(10, 1000, 20, steps, args.device, dtype)
        name = str(dtype).removeprefix("torch.")
        lines.append(
            f"| {name} | {steps} | {tp['ours'] / 1e6:.2f} M | {tp['cbx'] / 1e6:.2f} M | **{tp['ours'] / tp['cbx']:.2f}×** |"
        )
        print(lines[-1], flush=True)
    lines.append("")

    rows = ["## Success rates (d = 20, ||v − x*||∞ < 0.25)", "", "| N | runs | steps | Optiscope | CBXpy |"]
    rows.append("|---|---|---|---|---|")
    for n, runs in ((40, 20 if q else 100), (100, 10 if q else 100)):
        st = 1000 if q else 5000
        sr = success_rate(n, runs, st, args.device)
        rows.append(f"| {n} | {runs} | {st} | {sr['ours']:.0%} | {sr['cbx']:.0%} |")
        print(rows[-1], flush=True)
    lines += rows + [""]

    rows = [
        "## Scaling in N (d = 20, M = 1, float32)",
        "",
        "| N | steps | Optiscope particle-steps/s | CBXpy particle-steps/s | ratio |",
    ]
    rows.append("|---|---|---|---|---|")
    for n in (10**2, 10**3, 10**4, 10**5) if q else (10**2, 10**3, 10**4, 10**5, 10**6):
        st = max(3, min(1000, int((2e5 if q else 2e6) / n)))
        tp = throughput(1, n, 20, st, args.device)
        rows.append(
            f"| {n:.0e} | {st} | {tp['ours'] / 1e6:.2f} M | {tp['cbx'] / 1e6:.2f} M | {tp['ours'] / tp['cbx']:.2f}× |"
        )
        print(rows[-1], flush=True)
    lines += rows
    if not q:  # a quick run never overwrites the full results
        Path(args.out).write_text("\n".join(lines) + "\n")
        print(f"\nwritten to {args.out}")


if __name__ == "__main__":
    main()
