"""Shard files: safetensors written to a temporary name, flushed, then renamed into place.

A reader never sees half a shard: either the rename happened or the file is not there. A crash
loses at most the shards in flight. Rows' metadata (hash, path, crop...) rides in the safetensors
header as JSON, so a shard is one self-contained file. No pickle anywhere.
"""

from __future__ import annotations

import json
import os
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save

SHARDS = "shards"


@dataclass(frozen=True)
class Row:
    """One stored image.

    Attributes:
        sha256: hex digest of the file's bytes (the image's identity: a moved file is the same image).
        path: where it was read from (as given in the manifest).
        bytes: file size.
        crop: (x0, y0, width, height) of the mapped region in the original image's pixels.
        grid: (h, w) of the region at grid scale (the windows' coordinates; (224, 224) for a square).
        windows: number of windows (rows of its window embeddings).
        label: the manifest's label, "" when none.
    """

    sha256: str
    path: str
    bytes: int
    crop: tuple[int, int, int, int]
    grid: tuple[int, int]
    windows: int
    label: str = ""

    @classmethod
    def from_json(cls, d: dict) -> Row:
        return cls(d["sha256"], d["path"], int(d["bytes"]), tuple(d["crop"]), tuple(d["grid"]), int(d["windows"]),
                   d.get("label", ""))


def write_atomic(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> Path:
    """Write a safetensors file at `path` via a temporary name in the same folder; returns `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".tmp-{uuid.uuid4().hex}-{path.name}")
    data = save({k: v.contiguous() for k, v in tensors.items()}, metadata)
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def write_shard(root: Path, rows: list[Row], window_emb: torch.Tensor, image_emb: torch.Tensor) -> Path:
    """Store a batch of images' embeddings as one new shard.

    Args:
        rows: the images, in order.
        window_emb: (sum of rows' windows, D) their window embeddings, concatenated in row order.
        image_emb: (n, D) their whole-image embeddings.
    """
    counts = [r.windows for r in rows]
    if window_emb.shape[0] != sum(counts) or image_emb.shape[0] != len(rows):
        raise ValueError(f"shard shapes disagree: {len(rows)} rows with {sum(counts)} windows, got "
                         f"{tuple(window_emb.shape)} window and {tuple(image_emb.shape)} image embeddings")
    offsets = torch.tensor([0, *counts], dtype=torch.int64).cumsum(0)  # (n + 1,)
    meta = {"rows": json.dumps([asdict(r) for r in rows])}
    name = f"part-{uuid.uuid4().hex[:16]}.safetensors"
    return write_atomic(root / SHARDS / name, {"window_emb": window_emb, "image_emb": image_emb,
                                                "offsets": offsets}, meta)


def shard_files(root: Path) -> list[Path]:
    """Every complete shard of the store (temporary files of an interrupted write are skipped)."""
    return sorted((root / SHARDS).glob("part-*.safetensors"))


def read_rows(path: Path) -> list[Row]:
    """The rows of one shard, from its header only (no tensor is read)."""
    with safe_open(path, "pt") as f:
        return [Row.from_json(d) for d in json.loads(f.metadata()["rows"])]


def read_windows(path: Path, position: int) -> torch.Tensor:
    """(windows, D) embeddings of the row at `position` in the shard, reading only its slice."""
    with safe_open(path, "pt") as f:
        offsets = f.get_tensor("offsets")
        return f.get_slice("window_emb")[int(offsets[position]) : int(offsets[position + 1])]


def read_image_emb(path: Path) -> torch.Tensor:
    """(n, D) whole-image embeddings of a shard's rows."""
    with safe_open(path, "pt") as f:
        return f.get_tensor("image_emb")
