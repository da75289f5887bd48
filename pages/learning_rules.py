"""Learning-rules lab: NoProp's denoising blocks, ±1 threshold nets trained by RRR, and perturbation learning."""

from __future__ import annotations

import streamlit as st

from core.data.digits import load_digits_split
from core.learning_rules import (
    BOOLEAN_TASKS,
    RULES,
    RuleConfig,
    boolean_task,
    error_vs_dimension,
    noprop_run,
    rrr_run,
    rules_run,
    shipped,
)
from core.learning_rules.shipped import SETTINGS, record
from pages import _learning_rules_charts as charts
from pages import _ui as ui

REFS = {
    "noprop": "NoProp (Li, Teh, Pascanu): https://arxiv.org/abs/2503.24322",
    "rrr": "Learning with Boolean threshold functions (Elser, Lal): https://arxiv.org/abs/2602.17493",
    "zo": "From gradient descent to neural adaptation (García Fernández, Ahmad, van Gerven): "
    "https://arxiv.org/abs/2510.18812",
}
PARTS = {"noprop": "NoProp (denoising blocks)", "rrr": "Boolean nets by RRR", "zo": "Perturbation learning"}
SHIPPED_RRR = (SETTINGS["rrr"]["task"], tuple(SETTINGS["rrr"]["hidden"]), SETTINGS["rrr"]["steps"], 0)
PRESETS = {
    "NoProp vs backprop on digits": {"part": "noprop", "T": 10, "epochs": 10},
    "XOR on 2-3-1": {"part": "rrr", "task": "xor", "width": 3, "layers": 1, "rrr_steps": 1000},
    "XOR on 2-1-1 (no solution)": {"part": "rrr", "task": "xor", "width": 1, "layers": 1, "rrr_steps": 1000},
    "2-bit multiplier on 4-4-4-4": {"part": "rrr", "task": "mult2", "width": 4, "layers": 2, "rrr_steps": 10000},
    "Node vs weight perturbation": {"part": "zo", "rule": "node", "estimator": "weight", "K": 10},
}

ui.header("learning_rules")
ui.presets(PRESETS)
part = ui.radio("Paper", PARTS, "noprop", "part")
seed, device = ui.seed(), ui.device()


@st.cache_data(max_entries=1, show_spinner=False)
def views() -> dict:
    return shipped.load()


@st.cache_data(max_entries=16, show_spinner="Measuring the estimator over 100 repeats per d…")
def dims_table(estimator: str, k: int, seed: int) -> list[dict]:
    return error_vs_dimension(estimator, dims=tuple(SETTINGS["dims"]["dims"]), n_samples=k, seed=seed)


def noprop_part() -> None:
    T, epochs = int(ui.slider("Blocks T", 2, 20, 10, "T")), int(ui.slider("Epochs (live)", 1, 60, 10, "epochs"))
    eta = ui.number("η (loss weight)", 0.001, 10.0, 0.1, "eta", format="%g")
    method = ui.select("Live run", charts.METHOD_LABELS, "noprop", "method")
    digit = int(ui.slider("Digit followed through the chain", 0, 9, 2, "digit"))
    runs = views()["noprop"]
    st.subheader("Shipped: NoProp-DT vs backprop on digits (T = 10, 60 epochs, seed 0)")
    table = charts.noprop_table(runs)
    ui.metrics(dict(zip(table["method"], table["test acc (noise-free)"], strict=True)))
    st.dataframe(table, hide_index=True)
    last = runs["noprop"][-1]
    ui.chart(charts.chain_figure(last["chain_z"], digit), "lr-chain", data={"z": last["chain_z"]})
    ui.chart(charts.noprop_curves(runs), "lr-noprop-curves", data=table)
    ui.chart(charts.block_accuracy_figure(last), "lr-blocks", data={"block_accuracy": last["block_accuracy"]})
    st.caption(charts.HONEST)
    ui.explainer("the NoProp-DT loss and chain", charts.NOPROP_FORMULAS, {"T": T, "η": eta}, REFS["noprop"])
    st.subheader(f"Live: {charts.METHOD_LABELS[method]}, T = {T}, {epochs} epochs")
    data = load_digits_split(0.2)
    start = lambda: noprop_run(data, method=method, T=T, eta=eta, steps=epochs, seed=seed, device=device)  # noqa: E731
    render = lambda records: charts.noprop_live(records, method, digit)  # noqa: E731
    ui.Player("lr-noprop", start, (method, T, eta, epochs, seed), render, max_states=epochs, keep=record).show()


def rrr_part() -> None:
    task = ui.select("Task", {k: t.label for k, t in BOOLEAN_TASKS.items()}, "xor", "task")
    width = int(ui.slider("Hidden gates per layer", 1, 8, 3, "width"))
    layers = int(ui.slider("Hidden layers", 1, 2, 1, "layers"))
    steps = int(ui.select("Iterations at most", [1000, 3000, 10000], 1000, "rrr_steps"))
    hidden, (x, y) = (width,) * layers, boolean_task(task)
    config, widths = (task, hidden, steps, seed), "-".join(map(str, (x.shape[1], *hidden, y.shape[1])))
    st.subheader(f"{BOOLEAN_TASKS[task].label} on a {widths} net of ±1 threshold gates, one seed live")
    start = lambda: rrr_run(x, y, hidden=hidden, steps=steps, every=5, seed=seed)  # noqa: E731

    def render(records: list[dict]) -> None:
        if not records and config == SHIPPED_RRR:
            records = views()["rrr"]["run"]
            st.caption("The shipped run (seed 0); Play reruns it here.")
        if not records:
            return st.info("Press Play to run RRR here (XOR: about 2 s; the multiplier: about 10 ms per iteration).")
        charts.rrr_view(records, steps, x, y)

    ui.Player("lr-rrr", start, config, render, max_states=steps // 5 + 1, keep=record).show()
    st.subheader("Success rate over 20 seeds")
    if config == SHIPPED_RRR:
        charts.seeds_view(views()["rrr"]["solved_at"], steps)
    else:
        job = lambda: rrr_run(x, y, hidden=hidden, steps=steps, every=max(1, steps // 100), n_runs=20, seed=seed)  # noqa: E731
        progress = lambda s: (s.step / steps, f"iteration {s.step}: {int(s.solved.sum())} of 20 solved")  # noqa: E731
        done = ui.background("lr-rrr-seeds", config, job, progress, label="Solve from 20 seeds")
        if done is not None:
            charts.seeds_view(done.solved_at.tolist(), steps)
    ui.explainer("RRR on a divide-and-concur split", charts.RRR_FORMULA, {"hidden": hidden, "β": 0.2}, REFS["rrr"])


def zo_part() -> None:
    estimator = ui.select("Estimator (error vs d)", charts.ESTIMATOR_LABELS, "weight", "estimator")
    k = int(ui.slider("Probes K", 1, 100, 10, "K"))
    rule = ui.select("Live training rule", RULES, "node", "rule")
    units = int(ui.select("MLP hidden units", [8, 32, 128], 32, "units"))
    sigma = float(ui.select("σ (perturbation)", [1e-6, 1e-4, 1e-2], 1e-4, "sigma"))
    shipped_dims = k == SETTINGS["dims"]["n_samples"] and seed == SETTINGS["dims"]["seed"]
    rows = views()["dims"][estimator] if shipped_dims else dims_table(estimator, k, seed)
    st.subheader(f"{charts.ESTIMATOR_LABELS[estimator]}: error and cosine against d, K = {k}")
    charts.dims_view(rows, estimator)
    ui.explainer("the estimators", charts.ZO_FORMULAS, {"K": k}, REFS["zo"])
    st.subheader("An MLP 64-32-10 on digits trained by each rule (shipped: Adam 1e-3, batch 64, one probe, seed 0)")
    runs = views()["rules"]
    table = charts.rules_table(runs)
    st.dataframe(table, hide_index=True)
    ui.chart(charts.rules_figure(runs), "lr-rules", data=table)
    st.subheader(f"Live: {RULES[rule]}, 64-{units}-10, K = {k}, σ = {sigma:g}")
    data = load_digits_split(0.2)
    config = RuleConfig(rule=rule, hidden=units, n_samples=k, sigma=sigma)
    start = lambda: rules_run(data, config=config, steps=2000, every=50, seed=seed, device=device)  # noqa: E731
    render = lambda records: charts.rules_live(runs, records, rule)  # noqa: E731
    ui.Player("lr-rules-live", start, (config, seed), render, max_states=40, keep=record).show()


with ui.errors(PARTS[part]):
    {"noprop": noprop_part, "rrr": rrr_part, "zo": zo_part}[part]()
