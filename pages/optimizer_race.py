"""Optimizer race lab: learning-rate-free optimizers at frozen defaults against a tuned NadamW, scored like AlgoPerf."""

from __future__ import annotations

import math

import pandas as pd
import streamlit as st

from core import optimizer_race as race
from core.optimizer_race import figures
from core.optimizer_race.optimizers import ALGOPERF_NADAMW
from core.optimizer_race.studies import Study, study_from_states
from pages import _ui as ui

PAPERS = (
    "Kasimbeg et al. 2025, https://arxiv.org/abs/2505.24005; AlgoPerf: Dahl et al. 2023, "
    "https://arxiv.org/abs/2306.07179; Prodigy 2306.06101, D-Adaptation 2301.07733, schedule-free 2405.15682, "
    "DoG 2302.12022, Mechanic 2306.00144, M-FAC 2107.03356 (arXiv)."
)
SCORE_FORMULAS = [
    r"r_{s,w} = t_{s,w} / \min_{s'} t_{s',w}\quad(\infty \text{ if } r > 4 \text{ or missed})",
    r"\rho_s(\tau) = \tfrac{1}{n}\,\#\{w : r_{s,w} \le \tau\},\qquad "
    r"B_s = \tfrac{1}{3}\int_1^4 \rho_s(\tau)\,d\tau = \tfrac{1}{n}\sum_w \max\!\big(0, \tfrac{4 - r_{s,w}}{3}\big)",
]
SCORE_TEXT = (
    "t is the median over 3 studies (seeds) of the first evaluation at or under the target; a miss is ∞. "
    "Targets: " + race.TARGET_RECIPE
)
LABELS = {key: spec.label for key, spec in race.OPTIMIZERS.items()}
WORKLOAD_LABELS = {key: w.title for key, w in race.WORKLOADS.items()}
N_STUDIES = len(race.RACE) * len(race.WORKLOADS) * 3  # 3 seeds
PRESETS = {
    "The default race": {"clock": "steps", "targets": "strict", "optimizer": "prodigy", "workload": "digits_softmax"},
    "CPU-seconds clock, relaxed targets": {"clock": "seconds", "targets": "relaxed"},
    "The schedule-free pitfall: no eval()": {"optimizer": "sf_adamw_no_eval", "workload": "digits_softmax"},
    "DoG on the spirals": {"optimizer": "dog", "workload": "spirals_mlp"},
}

ui.header("optimizer_race")
ui.presets(PRESETS)
clock = ui.radio("Clock", race.CLOCKS, "steps", "clock")
kind = ui.radio("Targets", {"strict": "Strict (AlgoPerf rule)", "relaxed": "Relaxed"}, "strict", "targets")
st.sidebar.caption("Rerun one study live: it replaces its stored twin in the scores when it ends.")
optimizer = ui.select("Optimizer", LABELS, "prodigy", "optimizer")
workload = ui.select("Workload", WORKLOAD_LABELS, "digits_softmax", "workload")
lr = ui.number("Base learning rate (0 = its frozen default)", 0.0, 10.0, 0.0, "lr", format="%g")
seed = int(ui.number("Study seed", 0, 2, 0, "study_seed"))
targets = {k: w.target if kind == "strict" else w.relaxed_target for k, w in race.WORKLOADS.items()}


@st.cache_resource(show_spinner="Loading the shipped race…")  # frozen studies: shared, never copied per rerun
def shipped() -> tuple[Study, ...]:
    return race.load_race()


def scores_view(times: dict, key: str) -> None:
    """Performance profiles and the leaderboard of the given times."""
    left, right = st.columns([3, 2])
    with left:
        ui.chart(figures.profile_figure(times), f"{key}-profile", data=pd.DataFrame(figures.leaderboard(times)))
    with right:
        board = pd.DataFrame(figures.leaderboard(times)).set_index("optimizer")
        st.dataframe(board[["score"] + [c for c in board if c.endswith("time")]].round(3), key=f"{key}-board")


def render(states: list) -> None:
    """The live study on its workload's panel, and the scores with it swapped in once it has ended."""
    if not states:
        return st.info("Press Play to rerun this study live (or Step).")
    live = study_from_states(workload, optimizer, seed, states, lr=lr or None)
    others = [s for s in shipped() if s.workload == workload and s.optimizer != optimizer]
    ui.chart(
        figures.race_figure(others + [live], targets, clock, [workload]),
        "race-live",
        data={"step": live.steps, "value": live.values, "lr_belief": live.beliefs},
    )
    if live.diverged_at is not None:
        st.error(f"{LABELS[optimizer]} diverged at step {live.diverged_at}: a miss (∞) on {workload}.")
    finished = live.diverged_at is not None or live.steps[-1] == race.WORKLOADS[workload].budget
    if finished:
        twin = (workload, optimizer, seed)
        swapped = [s for s in shipped() if (s.workload, s.optimizer, s.seed) != twin] + [live]
        scores_view(race.race_times(swapped, targets, clock=clock), "race-swap")


with ui.errors("the optimizer race"):
    studies = list(shipped())
    times = race.race_times(studies, targets, clock=clock)
    scores = race.score(times)
    st.subheader(f"Leaderboard and performance profiles (the shipped race: {N_STUDIES} studies, 3 seeds each)")
    ui.metrics({LABELS[k]: v for k, v in sorted(scores.items(), key=lambda kv: -kv[1])[:4]})
    scores_view(times, "race")
    ui.explainer(
        "the AlgoPerf score",
        SCORE_FORMULAS,
        {f"B ({LABELS[k]})": v for k, v in scores.items()},
        PAPERS,
        text=SCORE_TEXT,
    )
    st.subheader("Validation curves (median study) with targets, and the learning rate each method believes in")
    ui.chart(
        figures.race_figure(studies, targets, clock), "race-curves", data=pd.DataFrame(figures.curve_rows(studies))
    )

st.subheader(f"Live: {LABELS[optimizer]} on {WORKLOAD_LABELS[workload]}, seed {seed}")
with ui.errors("the live study"):
    spec = race.OPTIMIZERS[optimizer]
    st.caption(f"Frozen defaults: {spec.source}.")
    start = lambda: race.run(workload, optimizer, seed=seed, lr=lr or None)  # noqa: E731
    ui.Player("race-player", start, (workload, optimizer, seed, lr), render, max_states=2000).show()

st.subheader("The whole race live: the profiles are redrawn as each study finishes")
with ui.errors("the live race"):

    def render_race(states: list) -> None:
        if not states:
            return st.info(f"Press Play to rerun all {N_STUDIES} studies here (minutes of CPU).")
        done = states[-1]
        lanes = {"optimizers": race.RACE, "workloads": tuple(race.WORKLOADS)}
        st.caption(f"{done.step} of {done.total} studies finished; a pair not finished yet counts as a miss (∞).")
        scores_view(race.race_times(done.studies, targets, clock=clock, **lanes), "race-live-profile")

    ui.Player("race-all", race.race, "race", render_race, max_states=N_STUDIES + 1).show()

st.subheader("Calibrate the baseline: NadamW's learning-rate grid on one workload")
with ui.errors("the calibration"):
    progress = lambda c: (c.fraction, f"{c.step} of {c.total} learning rates (3 seeds each)")  # noqa: E731
    done = ui.background(
        "race-calibrate",
        workload,
        lambda: race.calibrate(workload),
        progress,
        label=f"Run the grid on {workload} (15 studies, about 10–40 s)",
    )
    if done is not None:
        frozen = ALGOPERF_NADAMW["lr"]
        fig = figures.calibration_figure(done.lrs, done.median_best, race.WORKLOADS[workload].target, frozen)
        ui.chart(fig, "race-calibration", data={"lr": done.lrs, "median_best": done.median_best})
        values = {"best grid lr": done.best_lr, "target (median best)": done.target}
        ui.metrics(values | {"AlgoPerf-point NadamW score": scores.get("nadamw_algoperf", math.nan)})
        st.caption(
            "AlgoPerf's self-tuning NadamW point (lr 1.75e-3, calibrated on ImageNet-scale workloads) is frozen "
            "defaults from elsewhere: here it misses every target and scores 0, while the grid's best LR sets them."
        )
