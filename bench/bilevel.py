"""Bilevel benchmark: implicit vs unrolled hypergradients (time, memory, error) and torchopt's implicit gradient (the anchor).

Ridge regularization tuning: inner ``½ mean(res²) + ½ e^θ ‖w‖²`` solved by k gradient-descent steps, outer the
validation MSE. Memory is what autograd keeps for the backward pass (bytes of saved tensors, counted with
``saved_tensors_hooks``; on CUDA also the peak allocated), the quantity that grows with k when unrolling.

    python bench/bilevel.py [--quick] [--device cuda] [--threads 1]
"""

from __future__ import annotations

import argparse
import platform
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torchopt  # noqa: E402

from bench._common import interleaved_keeping, publish, quiet  # noqa: E402
from core.bilevel import RootSpec, custom_root, load_task, unrolled  # noqa: E402
from core.bilevel.tuning import Task, closed_form_hypergradient, exact_solution, inner_gradient, step_size  # noqa: E402
from core.device import device_label, sync  # noqa: E402

THETA = -4.0


def synthetic_task(n: int, d: int, device: str) -> Task:
    """A standardized random regression (seeded) with correlated features, so that GD needs thousands of steps."""
    g = torch.Generator().manual_seed(0)
    mixing = torch.randn(d, d, generator=g, dtype=torch.float64) * torch.logspace(-1.5, 0, d, dtype=torch.float64)
    x = torch.randn(2 * n, d, generator=g, dtype=torch.float64) @ mixing.T
    y = x @ torch.randn(d, generator=g, dtype=torch.float64) + torch.randn(2 * n, generator=g, dtype=torch.float64)
    x = (x - x.mean(0)) / x.std(0)
    return Task("ridge", *(t.to(device) for t in (x[:n], y[:n], x[n:], y[n:])))


def validation(task: Task, w: torch.Tensor) -> torch.Tensor:
    return ((task.x_val @ w - task.y_val) ** 2).mean()


def gd(task: Task, steps: int):
    lr = step_size(task, THETA)

    def solve(init, theta, x, y, kind="ridge"):
        return unrolled(lambda w, t: w - lr * inner_gradient(w, t, x, y, "ridge"), init, theta, steps=steps)

    return solve


def ours(task: Task, steps: int, solve: str = "cg") -> tuple[torch.Tensor, torch.Tensor]:
    """The forward pass: (validation loss, θ); the hypergradient is one ``autograd.grad`` away."""
    solver = custom_root(inner_gradient, spec=RootSpec(solve=solve, maxiter=500, tol=1e-12, residual_tol=1e-2))(
        gd(task, steps)
    )
    theta = task.x_train.new_tensor(THETA, requires_grad=True)
    w = solver(task.x_train.new_zeros(task.x_train.shape[1]), theta, task.x_train, task.y_train, "ridge")
    return validation(task, w), theta


def unrolled_forward(task: Task, steps: int) -> tuple[torch.Tensor, torch.Tensor]:
    theta = task.x_train.new_tensor(THETA, requires_grad=True)
    w = gd(task, steps)(task.x_train.new_zeros(task.x_train.shape[1]), theta, task.x_train, task.y_train)
    return validation(task, w), theta


def hypergradient(forward) -> torch.Tensor:
    loss, theta = forward()
    return torch.autograd.grad(loss, theta)[0]


def torchopt_forward(task: Task, steps: int, solve: str = "cg") -> tuple[torch.Tensor, torch.Tensor]:
    linear = {"cg": torchopt.linear_solve.solve_cg, "normal_cg": torchopt.linear_solve.solve_normal_cg}[solve]

    def optimality(w, theta, x, y, kind="ridge"):  # torchopt binds it to the solver's signature
        return inner_gradient(w, theta, x, y, kind)

    solver = torchopt.diff.implicit.custom_root(optimality, argnums=1, solve=linear(maxiter=500, atol=0.0, rtol=1e-12))(
        gd(task, steps)
    )
    theta = task.x_train.new_tensor(THETA, requires_grad=True)
    w = solver(task.x_train.new_zeros(task.x_train.shape[1]), theta, task.x_train, task.y_train)
    return validation(task, w), theta


def saved_bytes(fn, data: tuple[torch.Tensor, ...]) -> int:
    """Bytes of the distinct storages autograd saves for the backward pass while the forward ``fn`` runs.

    The data (saved by every matmul, but stored once and needed anyway) is left out.
    """
    storages: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        storages[storage.data_ptr()] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn()
    for t in data:
        storages.pop(t.untyped_storage().data_ptr(), None)
    return sum(storages.values())


def peak_cuda(fn, device: torch.device) -> str:
    if device.type != "cuda":
        return "—"
    torch.cuda.reset_peak_memory_stats(device)
    hypergradient(fn)
    sync(device)
    return f"{torch.cuda.max_memory_allocated(device) / 2**20:.1f}"


def exactness(lines: list[str], device: str, repeats: int) -> float:
    """Hypergradients at the exact inner solution; returns torchopt's CG time / ours."""
    task = load_task("ridge", device=device)
    exact = closed_form_hypergradient(task, THETA)
    lines += [
        "## Exact inner solution (diabetes, λ = e⁻⁴): hypergradient vs the closed form",
        "",
        "| method | relative error | per hypergradient |",
        "|---|---|---|",
    ]
    w_star = exact_solution(task, THETA)

    def exact_solver(init, theta, *args):
        return w_star

    runs = {}
    for name, lib in (("Optiscope", "ours"), ("torchopt 0.7.3", "torchopt")):
        for solve in ("cg", "normal_cg") + (("gmres", "dense") if lib == "ours" else ()):
            theta = task.x_train.new_tensor(THETA, requires_grad=True)

            def run(solve=solve, lib=lib, theta=theta):
                if lib == "ours":
                    f = custom_root(inner_gradient, spec=RootSpec(solve=solve, tol=1e-13))(exact_solver)
                    w = f(w_star, theta, task.x_train, task.y_train, "ridge")
                else:
                    linear = getattr(torchopt.linear_solve, f"solve_{solve}")(maxiter=100, atol=0.0, rtol=1e-13)

                    def opt(w, t, x, y):
                        return inner_gradient(w, t, x, y, "ridge")

                    w = torchopt.diff.implicit.custom_root(opt, argnums=1, solve=linear)(exact_solver)(
                        w_star, theta, task.x_train, task.y_train
                    )
                return torch.autograd.grad(validation(task, w), theta)[0]

            runs[f"{name} `{solve}`"] = run
    timings, grads = interleaved_keeping(runs, repeats=repeats)
    for label in runs:
        lines.append(f"| {label} | {abs(float(grads[label]) - exact) / abs(exact):.1e} | {timings[label].show()} |")
    lines.append("")
    return timings["Optiscope `cg`"].ratio(timings["torchopt 0.7.3 `cg`"])


def scaling(lines: list[str], device: str, ks: tuple[int, ...], n: int, d: int, repeats: int) -> dict[str, float]:
    task = synthetic_task(n, d, device)
    dev = torch.device(device)
    a = task.x_train.T @ task.x_train / n + np.exp(THETA) * torch.eye(d, dtype=torch.float64, device=device)
    w = torch.linalg.solve(a, task.x_train.T @ task.y_train / n)
    dw = -torch.linalg.solve(a, np.exp(THETA) * w)
    exact = float(2.0 * task.x_val.T @ (task.x_val @ w - task.y_val) / n @ dw)
    lines += [
        f"## Inner iterations k (synthetic ridge, n = {n}, d = {d}, float64)",
        "",
        "| k | method | time | autograd-saved MiB (beyond the data) | CUDA peak MiB | relative error | time vs unrolled | saved vs unrolled |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for k in ks:
        methods = {
            "unrolled": lambda k=k: unrolled_forward(task, k),
            "Optiscope implicit (CG)": lambda k=k: ours(task, k),
            "torchopt implicit (CG)": lambda k=k: torchopt_forward(task, k),
        }
        calls = {name: lambda fn=fn: (hypergradient(fn), sync(dev)) for name, fn in methods.items()}
        # long calls need no warm-up; the errors are those of the last timed round's hypergradients
        timings, grads = interleaved_keeping(calls, repeats=repeats, warmup=1 if k <= 100 else 0)
        base_t = timings["unrolled"]
        mems = {
            name: saved_bytes(fn, (task.x_train, task.y_train, task.x_val, task.y_val)) / 2**20
            for name, fn in methods.items()
        }
        base_m = mems["unrolled"]
        for name, fn in methods.items():
            t, mem = timings[name], mems[name]
            err = abs(float(grads[name][0]) - exact) / abs(exact)
            lines.append(
                f"| {k} | {name} | {t.show()} | {mem:.3f} | {peak_cuda(fn, dev)} | {err:.1e} | "
                f"{t.median / base_t.median:.2f}× | {mem / base_m:.2g}× |"
            )
            print(lines[-1], flush=True)
        implicit = timings["Optiscope implicit (CG)"]
        headline = {  # the largest k's
            f"implicit / unrolled time, k = {k} (×)": implicit.median / base_t.median,
            f"torchopt / ours implicit time, k = {k} (×)": implicit.ratio(timings["torchopt implicit (CG)"]),
        }
    lines.append("")
    return headline


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer and shorter inner solves (< 1 min)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    q = args.quick
    quiet()
    lines = [
        "# Bilevel benchmark: implicit vs unrolled hypergradients; Optiscope vs torchopt 0.7.3",
        "",
        f"Device: {device_label(torch.device(args.device))}; torch {torch.__version__}; "
        f"{platform.processor() or platform.machine()}; {'--quick' if q else 'full run'}. torchopt's compiled "
        f"ops available: {torchopt.accelerated_op_available()}. Times: median (min–max) over interleaved rounds, "
        "every method once a round (memory and errors are exact).",
        "",
    ]
    headline = {"torchopt / ours CG time, exact inner solution (×)": exactness(lines, args.device, 5)}
    ks = (10, 100, 1000) if q else (10, 100, 1000, 3000)
    headline |= scaling(lines, args.device, ks, 1000 if q else 2000, 100 if q else 200, 5)
    publish("bilevel", lines, quick=q, headline=headline)


if __name__ == "__main__":
    main()
