"""The learning-rules lab's charts (UI only: every number comes from `core.learning_rules` records)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
import streamlit as st
import torch
from plotly.subplots import make_subplots

from core.learning_rules import RULES, read_gates
from core.learning_rules.gates import node_names, truth_table
from core.learning_rules.noprop import class_circle
from pages import _ui as ui

ESTIMATOR_LABELS = {"weight": "Weight perturbation", "antithetic": "Antithetic (ES)", "spsa": "SPSA", "forward": "JVP"}
HONEST = (
    "Honest reading: block 1 alone already classifies the digits about as well as the whole chain: every block sees "
    "the image, so on easy data the chain adds little. And each block is still trained by backprop inside itself."
)
NOPROP_FORMULAS = [
    r"\mathcal L_t=\tfrac{T}{2}\eta\,(\mathrm{SNR}(t)-\mathrm{SNR}(t-1))\,\|\hat u_{\theta_t}(z_{t-1},x)-u_y\|^2",
    r"z_t=a_t\hat u_{\theta_t}(z_{t-1},x)+b_t z_{t-1}+\sqrt{c_t}\,\epsilon,\qquad a_t^2/c_t=\mathrm{SNR}(t)-\mathrm{SNR}(t-1)",
]
RRR_FORMULA = r"z\leftarrow z+\beta\,(P_B(2P_Az-z)-P_Az),\qquad y=\mathrm{sgn}(w\cdot x),\ |w\cdot x|\ge\sqrt{m/3}"
ZO_FORMULAS = [
    r"\hat g=\tfrac1K\sum_k \tfrac{L(\theta+\sigma u_k)-L(\theta)}{\sigma}u_k",
    r"\mathbb E\|\hat g-g\|^2/\|g\|^2=\tfrac{d+1}{K}\ (\text{SPSA: }\tfrac{d-1}{K}),\quad"
    r" \cos\approx(1+\tfrac{d+1}{K})^{-1/2}",
]
METHOD_LABELS = {"noprop": "NoProp-DT", "backprop_chain": "Backprop through the same chain", "mlp": "Plain MLP"}
COLORS = px.colors.qualitative.D3
EDGE_COLORS = {1: "#2ca02c", -1: "#d62728"}


def noprop_table(runs: dict[str, list[dict]]) -> pd.DataFrame:
    """One row per method: its last epoch's test accuracies, block 1 alone, and seconds per epoch."""
    rows = []
    for method, records in runs.items():
        last = records[-1]
        rows.append(
            {
                "method": METHOD_LABELS[method],
                "epochs": last["step"],
                "test acc (noise-free)": last["accuracy_noise_free"],
                "test acc (one noise draw)": last["accuracy"],
                "block 1 alone": last["block_accuracy"][0] if method == "noprop" else np.nan,
                "s / epoch": float(np.mean([r["seconds"] for r in records])),
            }
        )
    return pd.DataFrame(rows).round(3)


def chain_figure(chain_z: list, digit: int) -> go.Figure:
    """Left: z_t for one test image per class, replayed over t, each class's embedding on a circle; right: z_t of
    ``digit`` as 10 bars."""
    z = torch.tensor(chain_z)  # (T + 1, n, 10)
    xy = class_circle(z).numpy()
    bars = z[:, digit].numpy()
    titles = ("z_t of one test image per class (class k's label at angle 2πk/10)", f"z_t of the digit {digit}")
    fig = make_subplots(1, 2, subplot_titles=titles)
    for k in range(xy.shape[1]):
        path = go.Scatter(x=xy[:, k, 0], y=xy[:, k, 1], mode="lines", line={"color": COLORS[k], "width": 1})
        fig.add_trace(path.update(opacity=0.3, showlegend=False, hoverinfo="skip"), 1, 1)
    fig.add_trace(_points(xy[0]), 1, 1)
    fig.add_trace(go.Bar(x=list(range(10)), y=bars[0], marker_color=COLORS[: len(bars[0])], showlegend=False), 1, 2)
    n = xy.shape[1]
    frames = [
        go.Frame(data=[_points(xy[t]), go.Bar(y=bars[t])], traces=[n, n + 1], name=str(t)) for t in range(len(xy))
    ]
    reach = 3.0  # the noise z_0 spreads with sd √5 here: let its first steps fly in from outside
    fig.add_trace(_points(class_circle(torch.eye(10)).numpy()).update(marker={"symbol": "circle-open"}), 1, 1)
    fig.update_xaxes(range=[-reach, reach], row=1, col=1).update_yaxes(range=[-reach, reach], row=1, col=1)
    fig.update_yaxes(range=[min(0.0, bars.min()) - 0.05, max(1.0, bars.max()) + 0.05], row=1, col=2)
    return ui.animate(fig.update_layout(height=420), frames, duration_ms=500, prefix="t = ")


def _points(xy: np.ndarray) -> go.Scatter:
    return go.Scatter(
        x=xy[:, 0],
        y=xy[:, 1],
        mode="markers+text",
        text=[str(k) for k in range(len(xy))],
        textposition="top center",
        marker={"size": 11, "color": COLORS[: len(xy)]},
        showlegend=False,
    )


def noprop_curves(runs: dict[str, list[dict]]) -> go.Figure:
    """Left: each NoProp block's own loss over epochs (log); right: test accuracy of every method over epochs."""
    fig = make_subplots(1, 2, subplot_titles=("NoProp: per-block loss (each block alone)", "Test accuracy"))
    if "noprop" in runs:
        losses = np.array([r["block_losses"] for r in runs["noprop"]])  # (epochs, T)
        epochs = [r["step"] for r in runs["noprop"]]
        for t in range(losses.shape[1]):
            fig.add_trace(go.Scatter(x=epochs, y=losses[:, t], name=f"block {t + 1}", legendgroup="blocks"), 1, 1)
    for k, (method, records) in enumerate(runs.items()):
        acc = go.Scatter(x=[r["step"] for r in records], y=[r["accuracy_noise_free"] for r in records])
        fig.add_trace(acc.update(name=METHOD_LABELS[method], line={"color": COLORS[k], "width": 3}), 1, 2)
    fig.update_yaxes(type="log", row=1, col=1)
    return fig.update_xaxes(title="epoch").update_layout(height=380)


def block_accuracy_figure(record: dict) -> go.Figure:
    acc = record["block_accuracy"]
    fig = go.Figure(go.Bar(x=list(range(1, len(acc) + 1)), y=acc, name="block alone"))
    fig.add_hline(record["accuracy_noise_free"], line_dash="dash", annotation_text="the whole chain (noise-free)")
    return fig.update_layout(title="Each block alone (argmax of its logits)", xaxis_title="block", yaxis_range=[0, 1])


def gap_figure(records: list[dict]) -> go.Figure:
    """RRR's gap of run 0 over iterations (log), with its weight / input / value parts."""
    steps = [r["step"] for r in records]
    fig = go.Figure(go.Scatter(x=steps, y=[r["gap"][0] for r in records], name="gap", line={"width": 3}))
    for i, part in enumerate(("weights w", "inputs x", "values y")):
        fig.add_trace(go.Scatter(x=steps, y=[r["gap_parts"][0][i] for r in records], name=part, line={"dash": "dot"}))
    return fig.update_layout(title="RRR gap |P_B − P_A|", xaxis_title="iteration", yaxis_type="log")


def solved_weights(record: dict) -> tuple[torch.Tensor, ...]:
    return tuple(torch.tensor(w[0], dtype=torch.float64) for w in record["weights"])


def net_figure(weights: tuple[torch.Tensor, ...]) -> go.Figure:
    """The net as gates: nodes by layer labelled with the gate each computes, edges by rounded weight (+ green, − red)."""
    gates = read_gates(weights)
    widths = (weights[0].shape[1] - 1, *(w.shape[0] for w in weights))
    names = node_names(widths)
    pos = {(k, j): (k, j - (n - 1) / 2) for k, n in enumerate(widths) for j in range(n)}
    fig = go.Figure()
    for layer in gates:
        for gate in layer:
            for i, sign in enumerate(gate.rounded[:-1]):
                if sign:
                    (x0, y0), (x1, y1) = pos[(gate.layer - 1, i)], pos[(gate.layer, gate.node)]
                    edge = go.Scatter(x=[x0, x1], y=[y0, y1], mode="lines", line={"color": EDGE_COLORS[sign]})
                    fig.add_trace(edge.update(showlegend=False, hoverinfo="skip"))
    labels = {(0, j): name for j, name in enumerate(names[0])}
    labels |= {(g.layer, g.node): f"{names[g.layer][g.node]} = {g.label}" for layer in gates for g in layer}
    xs, ys = zip(*(pos[key] for key in labels), strict=True)
    fig.add_trace(go.Scatter(x=xs, y=ys, mode="markers+text", text=list(labels.values()), textposition="top center"))
    fig.update_traces(marker={"size": 16, "color": "#444"}, selector={"mode": "markers+text"})
    half = (max(widths) - 1) / 2
    fig.update_xaxes(visible=False, range=[-0.5, len(widths) - 0.5])
    fig.update_yaxes(visible=False, range=[-half - 0.5, half + 0.7])
    return fig.update_layout(title="The solved net as gates (green +1, red −1 edges)", showlegend=False, height=380)


def truth_table_frame(weights: tuple[torch.Tensor, ...], inputs: torch.Tensor, targets: torch.Tensor) -> pd.DataFrame:
    values = truth_table(weights, inputs)
    names = node_names(tuple(v.shape[1] for v in values))
    columns = {name: v[:, j] for layer, v in zip(names, values, strict=True) for j, name in enumerate(layer)}
    columns |= {f"target {j + 1}": targets[:, j] for j in range(targets.shape[1])}
    return pd.DataFrame({k: v.numpy().astype(int) for k, v in columns.items()})


def seeds_figure(solved_at: list[int], steps: int) -> go.Figure:
    hit = [k for k in solved_at if k > 0]
    fig = go.Figure(go.Histogram(x=hit, nbinsx=20))
    title = f"Iterations to solve: {len(hit)} of {len(solved_at)} seeds within {steps}"
    return fig.update_layout(title=title, xaxis_title="iteration", yaxis_title="seeds")


def dims_figure(rows: list[dict], label: str) -> go.Figure:
    """Relative error and cosine of the estimate against d, measured (markers) and theory (line), log-log."""
    table = pd.DataFrame(rows)
    fig = make_subplots(1, 2, subplot_titles=("E‖ĝ − g‖² / ‖g‖²", "cos(ĝ, g)"))
    for col, (measured, theory) in enumerate((("rel_mse", "theory_rel_mse"), ("cosine", "theory_cosine")), 1):
        fig.add_trace(go.Scatter(x=table["d"], y=table[measured], mode="markers", name=f"{label} (measured)"), 1, col)
        fig.add_trace(go.Scatter(x=table["d"], y=table[theory], name="theory", line={"dash": "dash"}), 1, col)
    return fig.update_xaxes(type="log", title="d").update_yaxes(type="log").update_layout(height=360)


def rules_figure(runs: dict[str, list[dict]]) -> go.Figure:
    """Test accuracy and the estimate's cosine with the true gradient, against forward passes, for each rule."""
    fig = make_subplots(1, 2, subplot_titles=("Test accuracy", "cos(estimate, true minibatch gradient)"))
    for k, (rule, records) in enumerate(runs.items()):
        passes = [r["forward_passes"] for r in records]
        style = {"name": RULES.get(rule, rule), "legendgroup": rule, "line": {"color": COLORS[k % len(COLORS)]}}
        fig.add_trace(go.Scatter(x=passes, y=[r["accuracy"] for r in records], **style), 1, 1)
        fig.add_trace(go.Scatter(x=passes, y=[r["cosine"] for r in records], showlegend=False, **style), 1, 2)
    fig.update_xaxes(type="log", title="forward passes").update_yaxes(type="log", row=1, col=2)
    return fig.update_layout(height=380)


def rules_table(runs: dict[str, list[dict]]) -> pd.DataFrame:
    rows = [
        {
            "rule": RULES.get(rule, rule),
            "steps": records[-1]["step"],
            "test acc": records[-1]["accuracy"],
            "mean cosine": float(np.mean([r["cosine"] for r in records])),
            "forward passes": records[-1]["forward_passes"],
            "s": records[-1]["seconds"],
        }
        for rule, records in runs.items()
    ]
    return pd.DataFrame(rows).round(3)


def noprop_live(records: list[dict], method: str, digit: int) -> None:
    """A live NoProp (or baseline) run: its epoch and accuracy, curves, and the chain of its last epoch."""
    if not records:
        return st.info("Press Play to train it here, one state per epoch (NoProp: about half a second each).")
    ui.metrics({"epoch": records[-1]["step"], "test acc (noise-free)": records[-1]["accuracy_noise_free"]})
    ui.chart(noprop_curves({method: records}), "lr-live-curves", data={"epochs": records})
    if method != "mlp":
        ui.chart(chain_figure(records[-1]["chain_z"], digit), "lr-live-chain", data={"z": records[-1]})


def rrr_view(records: list[dict], steps: int, inputs: torch.Tensor, targets: torch.Tensor) -> None:
    """One RRR run: its status, gap curve, and once solved the net as gates with its truth table."""
    last = records[-1]
    solved = last["solved"][0]
    verdict = f"solved at iteration {last['solved_at'][0]}" if solved else "not solved yet"
    if last["step"] == steps and not solved:
        verdict = f"no solution within {steps} iterations"
    ui.metrics({"status": verdict, "gap": last["gap"][0], "truth-table accuracy": last["accuracy"][0]})
    ui.chart(gap_figure(records), "lr-gap", data={"records": records})
    if solved:
        weights = solved_weights(last)
        ui.chart(net_figure(weights), "lr-net", data={"weights": last["weights"]})
        st.dataframe(truth_table_frame(weights, inputs, targets), hide_index=True)


def seeds_view(solved_at: list[int], steps: int) -> None:
    n_solved = sum(k > 0 for k in solved_at)
    ui.metrics({f"solved runs (of {len(solved_at)} seeds)": n_solved or f"no solution within {steps} iterations"})
    ui.chart(seeds_figure(solved_at, steps), "lr-seeds", data={"solved_at": solved_at})


def dims_view(rows: list[dict], estimator: str) -> None:
    """The estimator's cosine at the largest d against theory, and error and cosine against d."""
    worst = max(abs(r["cosine"] / r["theory_cosine"] - 1) for r in rows)
    top = rows[-1]
    ui.metrics(
        {f"cosine at d = {top['d']}": top["cosine"], "theory": top["theory_cosine"], "worst |cos/theory − 1|": worst}
    )
    ui.chart(dims_figure(rows, ESTIMATOR_LABELS[estimator]), "lr-dims", data={"rows": rows})


def rules_live(runs: dict[str, list[dict]], records: list[dict], rule: str) -> None:
    if not records:
        return st.info("Press Play to train it here (2,000 steps, a state every 50).")
    ui.metrics({"step": records[-1]["step"], "test acc": records[-1]["accuracy"], "cosine": records[-1]["cosine"]})
    ui.chart(rules_figure(runs | {f"live: {rule}": records}), "lr-live-rules", data={"records": records})
