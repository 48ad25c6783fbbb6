"""What to index: a folder (recursive) or a text/CSV list of paths with an optional label."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from convis.errors import UserError
from convis.image import IMAGE_SUFFIXES


@dataclass(frozen=True)
class Item:
    """One file to index, and its label from the list ("" when none)."""

    path: str
    label: str = ""


def read_manifest(data: str | Path) -> list[Item]:
    """The files of a dataset, in a stable order.

    Args:
        data: a folder (every image file below it, by suffix: `convis.image.IMAGE_SUFFIXES`), a
            `.txt` file with one path per line, or a `.csv` file whose first column is the path
            and second, if any, the label (a header row naming "path" is skipped). Relative paths
            in a list are read from the list's folder.

    Raises:
        UserError: the path does not exist, or the folder/list names no image.
    """
    root = Path(data)
    if root.is_dir():
        files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        items = [Item(str(p)) for p in files]
    elif root.is_file():
        items = _read_list(root)
    else:
        raise UserError(f"no such folder or file list: '{data}'; pass a folder of images or a .txt/.csv of paths")
    if not items:
        raise UserError(f"'{data}' names no image ({', '.join(IMAGE_SUFFIXES)}); check the path")
    return items


def _read_list(path: Path) -> list[Item]:
    base = path.parent
    with open(path, newline="", encoding="utf-8") as f:
        if path.suffix.lower() == ".csv":
            rows = [r for r in csv.reader(f) if r and r[0].strip()]
            if rows and rows[0][0].strip().lower() == "path":
                rows = rows[1:]
        else:
            rows = [[line.strip()] for line in f if line.strip() and not line.lstrip().startswith("#")]
    return [Item(str(base / r[0].strip()), r[1].strip() if len(r) > 1 else "") for r in rows]
