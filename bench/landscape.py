"""Loss-landscape lab vs loss-landscapes and PyHessian on the digits MLP (64-64-10, 4,810 parameters).

    python bench/landscape.py [--quick]

Prints a markdown table of timings and errors (ratios = anchor / ours) and writes bench/results/landscape.md.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _common import publish  # noqa: E402

from core import landscape as ll  # noqa: E402
from core import zoo  # noqa: E402
from core.landscape.exact import hessian_matrix  # noqa: E402
from core.landscape.functional import combine, unflatten  # noqa: E402
from core.landscape.hvp import HessianOperator, hvp_forward_over_reverse  # noqa: E402
from core.landscape.models import batch_for  # noqa: E402


def timed(fn, repeat: int = 1):
    fn()  # warm-up
    start = time.perf_counter()
    for _ in range(repeat):
        out = fn()
    return out, (time.perf_counter() - start) / repeat


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="a 21×21 grid and one repeat (< 60 s)")
    args = parser.parse_args()
    n, repeat = (21, 1) if args.quick else (41, 3)
    model = zoo.load("digits-mlp-converged")
    x, y = batch_for("digits-mlp-converged")
    loss_fn, params = ll.loss_fn_for(model, x, y), ll.params_of(model)
    rows = []

    # HVP: double backward on a cached graph vs torch.func forward-over-reverse
    op = HessianOperator(loss_fn, params)
    v = torch.randn(op.size, generator=torch.Generator().manual_seed(0))
    _, t_db = timed(lambda: op.matvec(v), 20)
    _, t_fr = timed(lambda: hvp_forward_over_reverse(loss_fn, params, unflatten(v, params)), 5)
    rows.append(
        (
            "HVP: double backward (cached graph) vs jvp(grad)",
            f"{t_db * 1e3:.2f} ms",
            f"{t_fr * 1e3:.2f} ms (torch.func)",
            f"{t_fr / t_db:.1f}×",
            "",
        )
    )

    # Grid
    d1, d2 = ll.random_directions(params, seed=0)
    ours, t_ours = timed(lambda: ll.surface(loss_fn, params, (d1, d2), extent=1.0, n=n), repeat)
    grid = torch.linspace(-1, 1, n)

    def loop():
        with torch.no_grad():
            return torch.tensor(
                [[float(loss_fn(combine(params, d1, float(a), d2, float(b)))) for b in grid] for a in grid]
            )

    plain, t_loop = timed(loop, 1)
    import loss_landscapes
    import loss_landscapes.metrics

    metric = loss_landscapes.metrics.Loss(F.cross_entropy, x, y)
    _, t_ll = timed(
        lambda: loss_landscapes.random_plane(
            model, metric, distance=1, steps=n, normalization="filter", deepcopy_model=True
        ),
        1,
    )
    err = float((ours.loss - plain).abs().max())
    rows.append(
        (
            f"{n}×{n} grid (engine {ours.engine})",
            f"{t_ours:.3f} s",
            f"{t_ll:.3f} s loss-landscapes / {t_loop:.3f} s plain loop",
            f"{t_ll / t_ours:.2f}× / {t_loop / t_ours:.2f}×",
            f"max |ours − loop| = {err:.1e}",
        )
    )

    # Top-5 eigenvalues vs the exact Hessian
    if args.quick:  # eigh of the 4,810² Hessian takes ~1 min here: reference = Lanczos at tol 1e-12, trace of H
        ref, t_exact = timed(lambda: ll.eigenpairs(loss_fn, params, k=5, which="LA", tol=1e-12), 1)
        truth, true_trace = ref.eigenvalues.double(), float(hessian_matrix(loss_fn, params).trace())
    else:
        exact, t_exact = timed(lambda: ll.exact_spectrum(loss_fn, params), 1)
        truth, true_trace = exact.eigenvalues.flip(0)[:5].double(), float(exact.eigenvalues.sum())
    top, t_top = timed(lambda: ll.eigenpairs(loss_fn, params, k=5, which="LA", tol=1e-4), repeat)
    rel = float(((top.eigenvalues.double() - truth).abs() / truth.abs()).max())
    from pyhessian import hessian as PyHessian

    ph = PyHessian(model, F.cross_entropy, data=(x, y), cuda=False)
    (ph_vals, _), t_ph = timed(lambda: ph.eigenvalues(top_n=5), 1)
    ph_rel = float(np.max(np.abs(np.sort(ph_vals)[::-1] - truth.numpy()) / np.abs(truth.numpy())))
    rows.append(
        (
            "top-5 eigenvalues",
            f"{t_top * 1e3:.0f} ms, {top.num_hvps} HVPs, rel err {rel:.1e}",
            f"{t_ph * 1e3:.0f} ms PyHessian, rel err {ph_rel:.1e}",
            f"{t_ph / t_top:.1f}×",
            f"reference {t_exact:.1f} s",
        )
    )

    # Trace
    (ph_tr), t_phtr = timed(lambda: ph.trace(), 1)
    budget = len(ph_tr)
    tr, t_tr = timed(lambda: ll.hessian_trace(loss_fn, params, n_probes=budget, seed=0, method="hutch++"), 1)
    rows.append(
        (
            "trace (Hutch++ in PyHessian's HVP budget)",
            f"{t_tr * 1e3:.0f} ms, {tr.num_hvps} HVPs, rel err {abs(tr.trace - true_trace) / abs(true_trace):.2%}",
            f"{t_phtr * 1e3:.0f} ms, {budget} HVPs, rel err {abs(np.mean(ph_tr) - true_trace) / abs(true_trace):.2%}",
            f"{t_phtr / t_tr:.1f}×",
            f"exact tr H = {true_trace:.4f}",
        )
    )

    # SLQ density. PyHessian calls torch.eig, removed in torch 1.9+: shim it with eigh (real parts, eigenvectors)
    def _eig(t, eigenvectors=True):
        w, vecs = torch.linalg.eigh(t)
        return torch.stack([w, torch.zeros_like(w)], 1), vecs

    torch.eig = _eig
    slq, t_slq = timed(lambda: ll.spectral_density(loss_fn, params, n_runs=1, m=100, seed=0), 1)
    (ph_nodes, ph_w), t_phd = timed(lambda: ph.density(iter=100, n_v=1), 1)
    ours_tr = op.size * float((slq.nodes * slq.weights).sum(-1).mean())
    ph_tr_slq = op.size * float(np.sum(np.array(ph_nodes[0]) * np.array(ph_w[0])))
    rows.append(
        (
            "SLQ (1 run × 100 steps)",
            f"{t_slq:.2f} s, λmax node {float(slq.nodes.max()):.4f}, SLQ trace {ours_tr:.3f}",
            f"{t_phd:.2f} s (torch.eig shim), λmax node {max(ph_nodes[0]):.4f}, SLQ trace {ph_tr_slq:.3f}",
            f"{t_phd / t_slq:.1f}×",
            f"exact λmax {float(truth[0]):.4f}, tr {true_trace:.3f}",
        )
    )

    table = ["| task | ours | anchor | speed-up | notes |", "|---|---|---|---|---|"]
    table += ["| " + " | ".join(r) + " |" for r in rows]
    header = f"# Loss-landscape benchmark ({'quick' if args.quick else 'full'}; torch {torch.__version__}, {torch.get_num_threads()} threads)\n\n"
    publish("landscape", [header.rstrip("\n"), "", *table], quick=args.quick)


if __name__ == "__main__":
    main()
