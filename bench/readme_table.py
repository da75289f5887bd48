"""The README's benchmark table, generated from the results history so that it cannot drift from it.

    python bench/readme_table.py           # rewrite the table between the README's markers
    python bench/readme_table.py --check   # exit 1 if the README's table differs from the results

A full benchmark run appends its headline numbers to bench/results/history/<lab>.jsonl (bench/_common.py); each
row here shows the median over runs of the headline numbers it names, with the number of runs: over the runs the
contention guard found quiet where there are any, else over all runs, and then it says so. A row naming a
number its lab's history lacks fails naming the lab and the number, never quotes a stale one. Labs with no
numeric headline (load test, soak) are quoted from their latest report. A lab no row names still gets a row.
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
README = ROOT / "README.md"
START, END = "<!-- bench:start -->", "<!-- bench:end -->"

sys.path.insert(0, str(ROOT / "bench"))
from _common import read_history  # noqa: E402


class Results:
    """One lab: its latest report (bench/results/<lab>.md) and its runs (bench/results/history/<lab>.jsonl)."""

    def __init__(self, name: str, text: str, runs: list[dict]) -> None:
        self.name, self.text, self.all_runs = name, text, runs
        # runs the contention guard found quiet, when there are any: a busy machine's timings are upper bounds
        quiet = [run for run in runs if str(run.get("load", "")).startswith("quiet")]
        self.runs, self.busy = (quiet, False) if quiet else (runs, bool(runs))

    def median(self, key: str) -> tuple[float, int]:
        """The median of headline number ``key`` over the runs that have it, and how many runs have it."""
        values = [run["headline"][key] for run in self.runs if key in run["headline"]]
        if not values:
            raise KeyError(f"bench/results/history/{self.name}.jsonl: no run has the headline number {key!r}")
        return statistics.median(values), len(values)

    def keys(self) -> list[str]:
        return list(dict.fromkeys(key for run in self.runs for key in run["headline"]))

    def match(self, pattern: str) -> str:
        """The first group of ``pattern`` in the latest report."""
        found = re.search(pattern, self.text, flags=re.MULTILINE)
        if not found:
            raise KeyError(f"bench/results/{self.name}.md: nothing matches {pattern!r}")
        return found.group(1)


@dataclass(frozen=True)
class Row:
    lab: str  # the results file's stem
    label: str
    what: str  # what is measured, and what the ratio compares
    keys: tuple[str, ...] = ()  # headline numbers shown (median over runs); () = every one the lab has
    target: str = "report"
    quote: str = ""  # instead of numbers: a regex whose first group is quoted from the latest report


def measured(row: Row, r: Results) -> str:
    if row.quote:
        return r.match(row.quote)
    if not r.runs:
        return f"no run in the history yet: `python bench/{r.name}.py`"
    keys = row.keys or r.keys()
    if not keys:
        return "no headline numbers in its history: see the report"
    medians = {key: r.median(key) for key in keys}
    counts = sorted({n for _, n in medians.values()})
    if counts == [1]:
        over = "1 run, on a busy machine" if r.busy else "1 quiet run"
    else:
        runs = f"{counts[0]}" if len(counts) == 1 else f"{counts[0]}–{counts[-1]}"
        over = f"median of {runs} " + ("runs, all on a busy machine" if r.busy else "quiet runs")
    return "; ".join(f"{key} **{_number(value)}**" for key, (value, _) in medians.items()) + f" ({over})"


def _number(x: float) -> str:
    return f"{x:.3g}" if abs(x) < 1000 else f"{x:,.0f}"


ROWS = [
    Row(
        "cbo",
        "CBO",
        "particle-steps/s, Rastrigin d=20, ours vs CBXpy at N = 10²…10⁶ (float64 vs float64, float32 second); "
        "success rates",
        target="≥ 4× at every N; equal success",
    ),
    Row(
        "landscape",
        "Landscape",
        "41×41 loss grid vs loss-landscapes; top-5 eigenvalues vs PyHessian; Hessian trace error vs PyHessian's at "
        "equal HVPs; SLQ density",
        target="≥ 2×; ≥ 2× at ≤ 1e-5; trace ≤ 1% at ≤ 40 HVPs",
    ),
    Row(
        "guidance",
        "Guidance",
        "APG's cost over plain CFG, digits UNet: whole sampler steps timed in interleaved APG/CFG pairs, and the "
        "guider's combine alone as a share of a step",
        ("APG step overhead, interleaved pairs (%)", "APG combine, share of a step (%)"),
        "APG < 3%",
    ),
    Row(
        "guidance",
        "Guidance",
        "adaptive guidance with its adaptive test (γ̄ = 0.99) vs CFG: model calls saved, and k-NN precision / recall",
        ("AG model calls saved (%)", "AG precision", "CFG precision", "AG recall", "CFG recall"),
        "≥ 25%",
    ),
    Row(
        "steering",
        "Steering",
        "Dynamic CFG's evaluator overhead as a share of a CFG step; per-step cost of CFG-MP+ vs CFG, digits UNet",
        ("Dynamic CFG evaluator overhead (% of a CFG step)", "CFG-MP+, Anderson K = 2 (w = 2): step / CFG"),
        "≤ 10%",
    ),
    Row(
        "cam",
        "CF-CAM",
        "latency per image, batch 1 / 32: CF-CAM vs our Grad-CAM",
        ("CF-CAM / Grad-CAM, batch 1 (×)", "CF-CAM / Grad-CAM, batch 32 (×)"),
        "≤ 3×",
    ),
    Row(
        "cam",
        "CF-CAM",
        "latency per image, batch 1 / 32: Score-CAM vs CF-CAM",
        ("Score-CAM / CF-CAM, batch 1 (×)", "Score-CAM / CF-CAM, batch 32 (×)"),
        "≥ 10×",
    ),
    Row(
        "cam",
        "CF-CAM",
        "our Grad-CAM vs pytorch-grad-cam (their time / ours), batch 1 / 32; parity (max |Δ| over 8 maps)",
        (
            "pytorch-grad-cam / our Grad-CAM, batch 1 (×)",
            "pytorch-grad-cam / our Grad-CAM, batch 32 (×)",
            "max |Δ| vs captum",
            "max |Δ| vs pytorch-grad-cam",
        ),
    ),
    Row(
        "cam",
        "CF-CAM",
        "faithfulness over fresh shapes images (32 by default, `--images 200` for the full table): deletion ↓ / insertion ↑ / pointing game ↑",
        tuple(
            f"{method} {metric}"
            for method in ("Grad-CAM", "CF-CAM", "Score-CAM", "random")
            for metric in ("deletion", "insertion", "pointing")
        ),
    ),
    Row(
        "attention_svm",
        "Attention SVM",
        "training step W / KQ; SVM solve Frobenius / nuclear, size (6, 8, 10)",
        ("step W (ms)", "step KQ (ms)", "SVM fro (ms)", "SVM nuc (ms)"),
    ),
    Row(
        "loadtest",
        "Load",
        "8 concurrent browser sessions on `streamlit run` (`make loadtest`)",
        target="figures equal",
        quote=r"Summary: (.*)",
    ),
    Row(
        "soak",
        "Soak",
        "reruns of every page in AppTest, resident memory start → end (`make soak`)",
        target="flat within 10%",
        quote=r"Summary: (.*)",
    ),
    Row(
        "fuzz",
        "Fuzz",
        "public core entry points under hypothesis (`python bench/fuzz.py`)",
        ("entry points", "cases tried", "failures"),
        "0 failures",
    ),
]


def load_results(folder: Path = RESULTS) -> dict[str, Results]:
    return {
        p.stem: Results(p.stem, p.read_text(), read_history(p.stem, folder / "history"))
        for p in sorted(folder.glob("*.md"))
    }


def render(results: dict[str, Results]) -> str:
    """The markdown block between the markers (markers included)."""
    lines = [START, "| Lab | What (and what the ratio compares) | Measured | Target |", "|---|---|---|---|"]
    rows = ROWS + [
        Row(name, name, results[name].match(r"^# (.*)"))  # a lab no row names: its title, every headline number
        for name in sorted(set(results) - {row.lab for row in ROWS})
    ]
    for row in rows:
        value = measured(row, results[row.lab]) if row.lab in results else "not measured yet"
        cells = (row.label, row.what, f"{value} ([report](bench/results/{row.lab}.md))", row.target)
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    lines.append(
        "\nGenerated by `bench/readme_table.py` from `bench/results/history/*.jsonl`: the median of each headline "
        f"number over the runs `make bench` appended, with how many. {END}"
    )
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
