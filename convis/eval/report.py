"""Files and tables of an evaluation run: per-image CSV, summary JSON, a plain-text table."""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def write_csv(path: Path, rows: Sequence[dict]) -> None:
    """Rows (dicts) to CSV; the header is the union of keys in first-seen order."""
    path.parent.mkdir(parents=True, exist_ok=True)
    keys = list(dict.fromkeys(k for r in rows for k in r))
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=keys)
        writer.writeheader()
        writer.writerows(rows)


def _clean(value: Any) -> Any:
    """NaN -> None, so the JSON is valid for strict parsers."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def to_json(summary: dict) -> str:
    """Indented, strict JSON (NaN written as null)."""
    return json.dumps(_clean(summary), indent=2, allow_nan=False)


def write_outputs(out: Path | None, name: str, summary: dict, rows: Sequence[dict]) -> list[Path]:
    """`<out>/<name>_images.csv` and `<out>/<name>_summary.json`; nothing when `out` is None."""
    if out is None:
        return []
    out.mkdir(parents=True, exist_ok=True)
    files = [out / f"{name}_summary.json"]
    files[0].write_text(to_json(summary) + "\n", encoding="utf-8")
    if rows:
        files.append(out / f"{name}_images.csv")
        write_csv(files[-1], rows)
    return files


def table(rows: Sequence[Sequence[Any]], header: Sequence[str], percent: Sequence[bool] | None = None) -> str:
    """An aligned text table: text left, numbers right; `percent[i]` prints column i's floats as %."""
    percent = list(percent) if percent is not None else [True] * len(header)

    def cell(v: Any, pct: bool) -> str:
        if isinstance(v, float):
            return "n/a" if math.isnan(v) else f"{v:.1%}" if pct else f"{v:.3g}"
        return str(v)

    cells = [[cell(v, p) for v, p in zip(r, percent)] for r in rows]
    widths = [max([len(h), *(len(r[i]) for r in cells)]) for i, h in enumerate(header)]
    numeric = [all(isinstance(r[i], (int, float)) for r in rows) for i in range(len(header))]

    def line(vals: Sequence[str]) -> str:
        cols = (v.rjust(w) if num else v.ljust(w) for v, w, num in zip(vals, widths, numeric))
        return "  ".join(cols).rstrip()

    return "\n".join([line(header), line(["-" * w for w in widths]), *(line(r) for r in cells)])


def method_table(summary: dict, columns: Sequence[tuple[str, str]], percent: bool = True) -> str:
    """Table of `summary["methods"]`: one row per method, `columns` = (key, header) pairs.

    Fractions print as percentages when `percent`; keys starting with "seconds" never do.
    """
    rows = [[m, *(figs.get(k, float("nan")) for k, _ in columns)] for m, figs in summary["methods"].items()]
    pct = [False, *(percent and not k.startswith(("seconds", "best_threshold")) for k, _ in columns)]
    return table(rows, ["method", *(h for _, h in columns)], pct)
