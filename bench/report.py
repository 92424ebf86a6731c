"""The printed tables and the JSON file."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any


def table(title: str, header: list[str], rows: list[list[str]]) -> str:
    """A plain-text table: the first column left-aligned, the rest right-aligned."""
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows, strict=True)]

    def line(cells: list[str]) -> str:
        first, *rest = (str(cell) for cell in cells)
        parts = [first.ljust(widths[0])]
        parts += [cell.rjust(width) for cell, width in zip(rest, widths[1:], strict=True)]
        return "  ".join(parts).rstrip()

    rule = "-" * len(line(header))
    return "\n".join([title, rule, line(header), rule, *map(line, rows), rule])


def target(text: str, value: float, limit: float) -> dict:
    """One line of the targets table: met when the value is at most the limit."""
    return {"target": text, "value": value, "limit": limit, "met": value <= limit}


def targets_table(targets: list[dict]) -> str:
    rows = [
        [t["target"], f"{t['value']:.3f}", f"{t['limit']:.3f}", "met" if t["met"] else "MISSED"]
        for t in targets
    ]
    return table("Targets", ["target", "value", "limit", ""], rows)


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None  # JSON has no NaN; a missing figure reads as missing
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def write_json(results: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(_jsonable(results), indent=2, sort_keys=False) + "\n")
