"""The README's benchmark table is what bench/readme_table.py generates from bench/results/*.md."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

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


def test_a_changed_result_changes_the_table(tmp_path: Path) -> None:
    """The table quotes the files: edit one number and the rendered table changes with it."""
    table = _readme_table()
    for path in (ROOT / "bench" / "results").glob("*.md"):
        (tmp_path / path.name).write_text(path.read_text())
    cbo = tmp_path / "cbo.md"
    before = table.render(table.load_results(tmp_path))
    cbo.write_text(re.sub(r"\*\*[\d.]+×\*\*", "**9.99×**", cbo.read_text(), count=1))
    after = table.render(table.load_results(tmp_path))
    assert before != after and "9.99×" in after


def test_readme_notebook_snippet_runs() -> None:
    """The README's ```python blocks run as written (the notebook example is the API's front door)."""
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", readme, flags=re.DOTALL)
    assert blocks, "the README has no python example"
    for block in blocks:
        exec(compile(block, "README.md", "exec"), {})  # our own README
