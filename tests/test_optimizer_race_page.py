"""The optimizer-race page: the leaderboard shows the core's scores of the shipped race, on the clock and targets
the link asks for; the live study steps; bad links fall back with a notice."""

from __future__ import annotations

import json

import pytest

from core.optimizer_race import WORKLOADS, load_race, race_times, score

PAGE = "pages/optimizer_race.py"


def _expected(kind: str, clock: str) -> dict[str, float]:
    targets = {k: w.target if kind == "strict" else w.relaxed_target for k, w in WORKLOADS.items()}
    return score(race_times(load_race(), targets, clock=clock))


def _board(at) -> dict[str, float]:
    frame = at.dataframe[0].value
    return dict(zip(frame.index, frame["score"], strict=True))


@pytest.mark.parametrize(
    ("query", "kind", "clock"),
    [({}, "strict", "steps"), ({"clock": "seconds", "targets": "relaxed"}, "relaxed", "seconds")],
)
def test_leaderboard_shows_the_core_scores(open_page, query: dict, kind: str, clock: str) -> None:
    at = open_page(PAGE, **query)
    assert not at.exception
    from core.optimizer_race import OPTIMIZERS

    expected = {OPTIMIZERS[k].label: round(v, 3) for k, v in _expected(kind, clock).items()}
    assert _board(at) == pytest.approx(expected, abs=1e-9)
    profile = json.loads(at.get("plotly_chart")[0].proto.spec)
    steps = [trace for trace in profile["data"] if trace.get("line", {}).get("shape") == "hv"]
    assert len(steps) == len(expected)  # one step-function profile per optimizer


def test_curves_draw_every_workload_with_its_target_line(open_page) -> None:
    at = open_page(PAGE)
    curves = json.loads(at.get("plotly_chart")[1].proto.spec)
    lines = [s for s in curves["layout"]["shapes"] if s.get("line", {}).get("dash") == "dash"]
    assert sorted(s["y0"] for s in lines) == sorted(w.target for w in WORKLOADS.values())


def test_live_study_steps_and_unknown_keys_fall_back(open_page) -> None:
    at = open_page(PAGE, optimizer="adam9000", workload="digits_softmax")
    assert not at.exception
    assert at.selectbox(key="optimizer").value == "prodigy"  # the default, with a notice
    at.button(key="race-player-step").click().run()
    assert not at.exception
    assert any(m.label == "Step" and m.value == "1" for m in at.metric)


def test_live_race_redraws_the_profile_as_each_study_finishes(open_page) -> None:
    from core.optimizer_race import OPTIMIZERS, RACE
    from core.optimizer_race.studies import study

    at = open_page(PAGE)
    at.button(key="race-all-step").click().run()  # the start state: nothing finished, every pair a miss
    at.button(key="race-all-step").click().run()  # the first study: digits_mlp, tuned NadamW, seed 0
    assert not at.exception
    first = study("digits_mlp", "nadamw_tuned", seed=0)
    targets = {k: w.target for k, w in WORKLOADS.items()}
    expected = score(race_times([first], targets, optimizers=RACE, workloads=tuple(WORKLOADS)))
    board = [d.value for d in at.dataframe if "score" in d.value][-1]  # the live race's board comes last
    shown = dict(zip(board.index, board["score"], strict=True))
    assert shown == pytest.approx({OPTIMIZERS[k].label: round(v, 3) for k, v in expected.items()}, abs=1e-9)
    assert shown[OPTIMIZERS["nadamw_tuned"].label] == 0.25  # it hits its own target: ratio 1 on 1 lane of 4
