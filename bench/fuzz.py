"""Long fuzz of every public core entry point (tests/test_fuzz.py with many more examples) -> bench/results/fuzz.md.

    python bench/fuzz.py [--examples 200] [--quick]

Counts per entry point: cases tried, and the first failure found (hypothesis stops an entry at its
first failing case; a failure is an exception other than OptiscopeError, a silent NaN, an overrun).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import publish

ROOT = Path(__file__).resolve().parent.parent


def fuzz(examples: int) -> tuple[list[dict], float]:
    """Run the fuzz tests with ``examples`` cases per entry point; one record per entry point."""
    with tempfile.NamedTemporaryFile(suffix=".jsonl", delete=False) as handle:
        report = Path(handle.name)
    env = {**os.environ, "OPTISCOPE_FUZZ_EXAMPLES": str(examples), "OPTISCOPE_FUZZ_REPORT": str(report)}
    start = time.perf_counter()
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_fuzz.py"]
    subprocess.run(command, cwd=ROOT, env=env, check=False)
    records = [json.loads(line) for line in report.read_text().splitlines()]
    report.unlink()
    return records, time.perf_counter() - start


def report(records: list[dict], examples: int, seconds: float) -> list[str]:
    failures = [r for r in records if r["failure"]]
    tried = sum(r["tried"] for r in records)
    lines = [
        "# Fuzz: every public core entry point",
        "",
        f"{examples} examples per entry point asked (hypothesis, derandomized, no shrinking); {seconds:.0f} s.",
        "One corrupted argument per case: out-of-range or non-finite numbers (a float where an int belongs),",
        "unknown strings, NaN/inf in tensors, wrong dtypes and shapes. Pass: `OptiscopeError`, or results finite",
        "wherever the valid call's are; a failure is any other exception, a silent NaN, > 10 s or > 3 GiB more memory.",
        "",
        f"**Entry points: {len(records)}; cases tried: {tried}; failures found: {len(failures)}.**",
        "",
        "| entry point | cases tried | first failure |",
        "|---|---:|---|",
    ]
    for record in sorted(records, key=lambda r: r["entry"]):
        failure = (record["failure"] or "").replace("|", "\\|").replace("\n", " ")
        lines.append(f"| `{record['entry']}` | {record['tried']} | {failure} |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--examples", type=int, default=200)
    parser.add_argument("--quick", action="store_true", help="20 examples, printed only (results not written)")
    args = parser.parse_args()
    examples = 20 if args.quick else args.examples
    records, seconds = fuzz(examples)
    headline = {
        "entry points": len(records),
        "cases tried": sum(r["tried"] for r in records),
        "failures": sum(bool(r["failure"]) for r in records),
    }
    publish("fuzz", report(records, examples, seconds), quick=args.quick, headline=headline)


if __name__ == "__main__":
    main()
