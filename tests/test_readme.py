"""The README's benchmark table is what bench/readme_table.py generates from the results history."""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _readme_table():
    spec = importlib.util.spec_from_file_location("readme_table", ROOT / "bench" / "readme_table.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_readme_benchmark_table_equals_the_results_files() -> None:
    table = _readme_table()
    readme = (ROOT / "README.md").read_text()
    assert table.replace_block(readme, table.render(table.load_results())) == readme, (
        "README's benchmark table differs from bench/results: run `python bench/readme_table.py`"
    )


def _guidance_run(overhead: float, load: str = "quiet (load 0.4)") -> dict:
    keys = [key for row in _readme_table().ROWS if row.lab == "guidance" for key in row.keys]
    return {"date": "2026-12-02 03:00", "load": load, "headline": {**dict.fromkeys(keys, 1.0), keys[0]: overhead}}


def test_the_table_shows_the_median_over_runs_and_their_number(tmp_path: Path) -> None:
    """Each row quotes the median over the history's quiet runs, not the latest run: 1.5, 2.5, 9.5 -> 2.5 of 3."""
    table = _readme_table()
    for path in (ROOT / "bench" / "results").glob("*.md"):
        (tmp_path / path.name).write_text(path.read_text())
    history = tmp_path / "history"
    history.mkdir()
    busy = "BUSY: load 7.9 after waiting 120 s — timings are upper bounds"
    runs = [_guidance_run(overhead) for overhead in (1.5, 9.5, 2.5)] + [_guidance_run(50.0, busy)]
    (history / "guidance.jsonl").write_text("".join(json.dumps(run) + "\n" for run in runs))
    row = next(line for line in table.render(table.load_results(tmp_path)).splitlines() if "interleaved" in line)
    assert "(%) **2.5**;" in row and "(median of 3 quiet runs)" in row, row


def test_busy_runs_count_only_while_no_run_was_quiet(tmp_path: Path) -> None:
    table = _readme_table()
    (tmp_path / "guidance.md").write_text("# Guidance\n")
    (tmp_path / "history").mkdir()
    busy = "BUSY: load 7.9 after waiting 120 s — timings are upper bounds"
    runs = [_guidance_run(overhead, busy) for overhead in (4.0, 6.0)]
    (tmp_path / "history" / "guidance.jsonl").write_text("".join(json.dumps(run) + "\n" for run in runs))
    row = next(line for line in table.render(table.load_results(tmp_path)).splitlines() if "interleaved" in line)
    assert "(%) **5**;" in row and "(median of 2 runs, all on a busy machine)" in row, row


def test_a_number_the_history_lacks_fails_naming_it(tmp_path: Path) -> None:
    table = _readme_table()
    (tmp_path / "guidance.md").write_text("# Guidance\n")
    (tmp_path / "history").mkdir()
    (tmp_path / "history" / "guidance.jsonl").write_text(json.dumps({"headline": {"other": 1.0}}) + "\n")
    with pytest.raises(KeyError, match="APG step overhead"):
        table.render(table.load_results(tmp_path))


def test_readme_notebook_snippet_runs() -> None:
    """The README's ```python blocks run as written (the notebook example is the API's front door)."""
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", readme, flags=re.DOTALL)
    assert blocks, "the README has no python example"
    for block in blocks:
        exec(compile(block, "README.md", "exec"), {})  # our own README
