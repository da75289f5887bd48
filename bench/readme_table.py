"""The README's benchmark table, generated from bench/results/*.md so that it cannot drift from them.

    python bench/readme_table.py           # rewrite the table between the README's markers
    python bench/readme_table.py --check   # exit 1 if the README's table differs from the results

Each row quotes cells of a results file by section, row and column; a results file whose layout
changed makes this script fail naming the file and the cell, never quote a stale number. A results
file that no row quotes still gets a row pointing to it.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
README = ROOT / "README.md"
START, END = "<!-- bench:start -->", "<!-- bench:end -->"


@dataclass(frozen=True)
class Table:
    section: str  # the heading above it ("" before any heading)
    header: list[str]
    rows: list[list[str]]


class Results:
    """One results file: its tables by section, and its lines."""

    def __init__(self, name: str, text: str) -> None:
        self.name, self.text = name, text
        self.tables = list(_tables(text))

    def cell(self, column: str, *, row: str | None = None, section: str = "") -> str:
        """The cell under ``column`` in the row whose first cell starts with ``row`` (first row if None)."""
        for table in self.tables:
            if section not in table.section or column not in table.header:
                continue
            for cells in table.rows:
                if row is None or cells[0].startswith(row):
                    return cells[table.header.index(column)].replace("**", "")
        raise KeyError(f"bench/results/{self.name}.md: no cell {column!r} in row {row!r} under {section!r}")

    def rows(self, *, section: str) -> list[dict[str, str]]:
        """The rows of the first table under ``section``, as {column: cell}."""
        for table in self.tables:
            if section in table.section:
                return [dict(zip(table.header, cells, strict=False)) for cells in table.rows]
        raise KeyError(f"bench/results/{self.name}.md: no table under {section!r}")

    def column(self, column: str, *, section: str = "") -> list[tuple[str, str]]:
        """(first cell, cell under ``column``) for every row of the table under ``section``."""
        for table in self.tables:
            if section in table.section and column in table.header:
                return [(cells[0], cells[table.header.index(column)]) for cells in table.rows]
        raise KeyError(f"bench/results/{self.name}.md: no column {column!r} under {section!r}")

    def match(self, pattern: str) -> str:
        """The first group of ``pattern`` in the file."""
        found = re.search(pattern, self.text, flags=re.MULTILINE)
        if not found:
            raise KeyError(f"bench/results/{self.name}.md: nothing matches {pattern!r}")
        return found.group(1)


def _tables(text: str):
    section, lines = "", text.splitlines()
    i = 0
    while i < len(lines):
        if lines[i].startswith("#"):
            section = lines[i].lstrip("#").strip()
        if lines[i].startswith("|") and i + 1 < len(lines) and re.match(r"^\|[\s:|-]+\|$", lines[i + 1]):
            header = _cells(lines[i])
            i += 2
            rows = []
            while i < len(lines) and lines[i].startswith("|"):
                rows.append(_cells(lines[i]))
                i += 1
            yield Table(section, header, rows)
            continue
        i += 1


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


@dataclass(frozen=True)
class Row:
    lab: str  # the results file's stem
    label: str
    what: str  # what is measured, and what the ratio compares
    value: Callable[[Results], str]
    target: str = "report"


def _cbo_throughput(r: Results) -> str:
    return "; ".join(
        f"{row.get('Optiscope dtype', 'float32')}: {row['Optiscope particle-steps/s']} vs "
        f"{next(v for k, v in row.items() if k.startswith('CBXpy'))}: **{row['ratio'].strip('*')}**"
        for row in r.rows(section="Throughput")
    )


def _faithfulness(r: Results) -> str:
    methods = {
        "Grad-CAM": "Grad-CAM (ours)",
        "CF-CAM": "CF-CAM (ours, gaussian",
        "Score-CAM": "Score-CAM (ours)",
        "random": "random",
    }
    columns = ("deletion ↓", "insertion ↑", "pointing ↑")
    return ", ".join(
        f"{name} " + " / ".join(r.cell(c, row=row, section="Faithfulness") for c in columns)
        for name, row in methods.items()
    )


APG_OVERHEAD = r"APG overhead per step: (\S+%)"
PARITY = r"max \|Δ\| over \d+ maps: (.*?) \("
ROWS = [
    Row(
        "cbo",
        "CBO",
        "particle-steps/s, Rastrigin d=20, N=1,000, M=10: ours (float32, and float64 where measured) vs CBXpy (float64)",
        _cbo_throughput,
        "≥ 4×",
    ),
    Row(
        "cbo",
        "CBO",
        "success rate, d=20, ‖v − x*‖∞ < 0.25 (ours vs CBXpy)",
        lambda r: ", ".join(
            f"N={n}: {r.cell('Optiscope', row=n, section='Success')} / {r.cell('CBXpy', row=n, section='Success')}"
            for n, _ in r.column("Optiscope", section="Success")
        ),
    ),
    Row(
        "cbo",
        "CBO",
        "scaling in N, one run (ours float32 / CBXpy float64)",
        lambda r: ", ".join(f"{ratio} (N={n})" for n, ratio in r.column("ratio", section="Scaling")),
    ),
    Row(
        "landscape",
        "Landscape",
        "41×41 loss grid, digits MLP: ours vs loss-landscapes / a plain loop",
        lambda r: (
            f"{r.cell('ours', row='41×41')} vs {r.cell('anchor', row='41×41')}: **{r.cell('speed-up', row='41×41')}**"
        ),
        "≥ 2×",
    ),
    Row(
        "landscape",
        "Landscape",
        "top-5 Hessian eigenvalues: ours (Lanczos) vs PyHessian",
        lambda r: (
            f"{r.cell('ours', row='top-5')} vs {r.cell('anchor', row='top-5')}: **{r.cell('speed-up', row='top-5')}**"
        ),
        "≥ 2× at ≤ 1e-5",
    ),
    Row(
        "landscape",
        "Landscape",
        "Hessian trace in PyHessian's HVP budget: Hutch++ vs PyHessian's Hutchinson",
        lambda r: f"{r.cell('ours', row='trace')} vs {r.cell('anchor', row='trace')} ({r.cell('notes', row='trace')})",
        "≤ 1%",
    ),
    Row(
        "landscape",
        "Landscape",
        "SLQ density (1 run × 100 steps): ours vs PyHessian",
        lambda r: f"**{r.cell('speed-up', row='SLQ')}** ({r.cell('notes', row='SLQ')})",
    ),
    Row(
        "guidance",
        "Guidance",
        "per-step cost vs plain CFG, digits UNet (step / CFG)",
        lambda r: (
            f"APG **{r.match(APG_OVERHEAD)}**; step / CFG: "
            + ", ".join(
                f"{name} {ratio}" for name, ratio in r.column("step / CFG", section="Per-step") if name != "CFG"
            )
        ),
        "APG < 3%",
    ),
    Row(
        "guidance",
        "Guidance",
        "adaptive guidance with its adaptive test (γ̄ < 1) vs CFG: model calls saved, and quality",
        lambda r: r.match(r"^\*\*Headline[^*]*\*\* *(.*)"),
        "≥ 25%",
    ),
    Row(
        "cam",
        "CF-CAM",
        "latency per image, batch 1 / 32: CF-CAM vs our Grad-CAM",
        lambda r: f"**{r.cell('batch 1', row='CF-CAM / Grad-CAM')} / {r.cell('batch 32', row='CF-CAM / Grad-CAM')}**",
        "≤ 3×",
    ),
    Row(
        "cam",
        "CF-CAM",
        "latency per image, batch 1 / 32: Score-CAM vs CF-CAM",
        lambda r: f"**{r.cell('batch 1', row='Score-CAM / CF-CAM')} / {r.cell('batch 32', row='Score-CAM / CF-CAM')}**",
        "≥ 10×",
    ),
    Row(
        "cam",
        "CF-CAM",
        "our Grad-CAM vs pytorch-grad-cam (their time / ours), batch 1 / 32; parity",
        lambda r: (
            f"{r.cell('batch 1', row='pytorch-grad-cam Grad-CAM')} / "
            f"{r.cell('batch 32', row='pytorch-grad-cam Grad-CAM')}; "
            f"max |Δ| {r.match(PARITY)}"
        ),
    ),
    Row(
        "cam",
        "CF-CAM",
        "faithfulness over 200 fresh shapes images: deletion ↓ / insertion ↑ / pointing game ↑",
        _faithfulness,
    ),
    Row(
        "attention_svm",
        "Attention SVM",
        "training step W / KQ; SVM solve Frobenius / nuclear, size (6, 8, 10)",
        lambda r: " / ".join(
            r.cell(c, row="6, 8, 10") for c in ("step W", "step KQ", "SVM fro (SOCP)", "SVM nuc (SDP)")
        ),
    ),
    Row(
        "loadtest",
        "Load",
        "8 concurrent browser sessions on `streamlit run` (`make loadtest`)",
        lambda r: r.match(r"Summary: (.*)"),
        "figures equal",
    ),
    Row(
        "soak",
        "Soak",
        "reruns of every page in AppTest, resident memory start → end (`make soak`)",
        lambda r: r.match(r"Summary: (.*)"),
        "flat within 10%",
    ),
    Row(
        "fuzz",
        "Fuzz",
        "public core entry points under hypothesis (`python bench/fuzz.py`)",
        lambda r: r.match(r"\*\*(Entry points: .*?)\*\*"),
        "0 failures",
    ),
]


def load_results(folder: Path = RESULTS) -> dict[str, Results]:
    return {p.stem: Results(p.stem, p.read_text()) for p in sorted(folder.glob("*.md"))}


def render(results: dict[str, Results]) -> str:
    """The markdown block between the markers (markers included)."""
    lines = [START, "| Lab | What (and what the ratio compares) | Measured | Target |", "|---|---|---|---|"]
    for row in ROWS:
        measured = row.value(results[row.lab]).replace("|", "\\|") if row.lab in results else "not measured yet"
        lines.append(f"| {row.label} | {row.what} | {measured} | {row.target} |")
    quoted = {row.lab for row in ROWS}
    for name in sorted(set(results) - quoted):
        title = results[name].match(r"^# (.*)").replace("|", "\\|")  # a file no row quotes yet: its title, linked
        lines.append(f"| {name} | {title} | see [`bench/results/{name}.md`](bench/results/{name}.md) | report |")
    lines.append(f"\nGenerated by `bench/readme_table.py` from `bench/results/*.md` (`make bench` reruns it). {END}")
    return "\n".join(lines)


def replace_block(readme: str, block: str) -> str:
    if START not in readme or END not in readme:
        raise KeyError(f"README.md lacks the markers {START} … {END}")
    head, rest = readme.split(START, 1)
    return head + block + rest.split(END, 1)[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="exit 1 if the README differs from the results")
    args = parser.parse_args()
    readme = README.read_text()
    updated = replace_block(readme, render(load_results()))
    if args.check:
        print("README table is up to date" if updated == readme else "README table differs: run bench/readme_table.py")
        return int(updated != readme)
    README.write_text(updated)
    return 0


if __name__ == "__main__":
    sys.exit(main())
