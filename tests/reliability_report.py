"""
Rewrite the results table of docs/reliability.md from the rows the hostile tests recorded
in the latest run (``record_outcome`` in tests/support.py writes them under
``test-output/reliability/``). ``make test-hostile`` runs it after the long variants;
after a default run, ``.venv/bin/python tests/reliability_report.py`` does the same.

    python tests/reliability_report.py [--rows DIR] [--report docs/reliability.md]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

HERE = Path(__file__).resolve().parent
START = "<!-- results: written by tests/reliability_report.py -->"
END = "<!-- end of results -->"
COLUMNS = ("test", "what it does", "load", "faults or inputs", "sent", "acked", "delivered",
           "lost", "dup", "outcome")


def cell(value: object) -> str:
    if value is None:
        return "–"
    return str(value).replace("|", "\\|").replace("\n", " ")


def table(rows: list[dict]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for row in sorted(rows, key=lambda row: row["test"]):
        values = (f"`{row['test']}`", row["what"], row["load"], row["faults"], row["sent"],
                  row["acked"], row["delivered"], row["lost"], row["duplicated"], row["outcome"])
        lines.append("| " + " | ".join(cell(value) for value in values) + " |")
    variants = sorted({row["variant"] for row in rows})
    times = sorted(row["recorded_at"] for row in rows)
    lines.append("")
    lines.append(
        f"{len(rows)} tests, {' and '.join(variants)} variant, recorded {times[0]} to {times[-1]}."
        if rows else "No rows recorded yet."
    )
    return "\n".join(lines)


def rewrite(report: Path, rows: list[dict]) -> None:
    text = report.read_text()
    head, found, rest = text.partition(START)
    if not found or END not in rest:
        raise SystemExit(f"{report} has no {START} ... {END} section")
    _, _, tail = rest.partition(END)
    report.write_text(f"{head}{START}\n{table(rows)}\n{END}{tail}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=Path, default=HERE.parent / "test-output" / "reliability")
    parser.add_argument("--report", type=Path, default=HERE.parent / "docs" / "reliability.md")
    options = parser.parse_args()
    rows = [json.loads(path.read_text()) for path in sorted(options.rows.glob("*.json"))]
    rewrite(options.report, rows)
    print(f"{options.report}: {len(rows)} rows")


if __name__ == "__main__":
    main()
