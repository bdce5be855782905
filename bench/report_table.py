"""The GPU report's one table, its JSON, and the throughput rows it appends for the dry-run estimator.

Rows are (section, measure, value, detail), printed as they are measured (``progress``), then once more as one
markdown table at the end. A section that raised keeps its rows so far and adds one ``error`` row with the
exception's first line, and the sections after it still run: the report is meant to be run once on a lent
GPU, where a crash would lose every figure.
"""

from __future__ import annotations

import csv
import json
import time
import traceback
from pathlib import Path
from typing import Callable

from orchestrator.throughput import COLUMNS as THROUGHPUT_COLUMNS

# ``THROUGHPUT_COLUMNS``: the columns of ``orchestrator/throughput.csv``, the measured figures the dry run's GPU-hour
# estimate and ``--gpus-per-trial auto`` read (defined there, once).


class Report:
    """The table being filled, section by section, and its JSON twin (written after every section)."""

    def __init__(self, header: dict, json_path: str | None = None):
        self.header = header
        self.rows: list[tuple[str, str, str, str]] = []
        self.sections: dict[str, dict] = {}
        self.json_path = json_path

    def add(self, section: str, measure: str, value: str, detail: str = "") -> None:
        self.rows.append((section, measure, value, detail))
        print(f"  [{section}] {measure}: {value}" + (f" ({detail})" if detail else ""), flush=True)

    def run(self, section: str, key: str, body: Callable[[dict], None]) -> dict:
        """Run one section, guarded; ``body`` fills the dict it gets (the section's JSON) and adds rows."""
        out: dict = {}
        self.sections[key] = out
        started = time.perf_counter()
        print(f"== {section}", flush=True)
        try:
            body(out)
        except Exception as error:  # noqa: BLE001  (one failing section must not lose the others)
            message = f"{type(error).__name__}: {str(error).strip().splitlines()[0] if str(error).strip() else ''}"
            out["error"] = message[:300]
            out["traceback"] = traceback.format_exc()
            self.add(section, "error", "n/a", message[:300].replace("|", "/"))
        out["seconds"] = round(time.perf_counter() - started, 1)
        print(f"   {section}: {out['seconds']:.0f} s", flush=True)
        self.dump()
        return out

    def table(self) -> str:
        lines = ["| section | measure | value | detail |", "| --- | --- | --- | --- |"]
        lines += [f"| {' | '.join(cell.replace('|', '/') for cell in row)} |" for row in self.rows]
        return "\n".join(lines)

    def dump(self) -> None:
        if self.json_path:
            Path(self.json_path).write_text(json.dumps(
                {**self.header, "sections": self.sections, "rows": [list(row) for row in self.rows]}, indent=2,
                default=str))


def append_throughput_rows(path: str, rows: list[dict]) -> None:
    """Append ``rows`` to the CSV at ``path`` (header ``THROUGHPUT_COLUMNS``, written when the file is new or
    empty). A file with another header is refused: its reader would misread the rows."""
    target = Path(path)
    fresh = not target.exists() or target.stat().st_size == 0
    if not fresh:
        with target.open(newline="") as handle:
            header = tuple(next(csv.reader(handle), ()))
        if header != THROUGHPUT_COLUMNS:
            raise ValueError(f"{path}: header {','.join(header)} is not {','.join(THROUGHPUT_COLUMNS)}")
    with target.open("a", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=THROUGHPUT_COLUMNS)
        if fresh:
            writer.writeheader()
        for row in rows:
            writer.writerow({column: row[column] for column in THROUGHPUT_COLUMNS})


def fmt_rate(value: float) -> str:
    return f"{value:,.1f}" if value < 10_000 else f"{value:,.0f}"


def fmt_share(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f} %"
