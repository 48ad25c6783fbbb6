"""Per-vocabulary image-level scores, laid out so one concept's scores are contiguous.

`scores/<key>/seg-*.safetensors` each hold `scores` (T, n) float16 for n images (their sha256
list in the header): row c is concept c over those images, so a search reads one row per
segment, never the (N, T) matrix. Indexing writes one segment per shard; `compact` merges them
into one (written before the parts are removed, so a crash between leaves duplicates that
readers drop by hash, never a gap).
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
import time
import uuid
from pathlib import Path

import numpy as np
import torch
from safetensors import safe_open

from convis.store.shards import write_atomic

SCORES = "scores"


def score_key(vocabulary: str, concepts: list[str], score: str) -> str:
    """Folder name of a concept set's scores: readable, and unique to the exact concept list."""
    digest = hashlib.sha256("\n".join(concepts).encode()).hexdigest()[:10]
    return f"{re.sub(r'[^A-Za-z0-9_.-]+', '_', vocabulary)[:40]}-{score}-{digest}"


def write_segment(folder: Path, sha256s: list[str], scores: np.ndarray, meta: dict | None = None) -> Path:
    """Store (n, T) image-level scores of `sha256s` as one new segment (kept transposed, (T, n))."""
    if scores.shape[0] != len(sha256s):
        raise ValueError(f"{len(sha256s)} images but scores of shape {scores.shape}")
    tensor = torch.from_numpy(np.ascontiguousarray(scores.T, dtype=np.float16))
    info = {"sha256": json.dumps(sha256s), **{k: json.dumps(v) for k, v in (meta or {}).items()}}
    # named by write time, so listing by name lists in write order (stable ranks, stable ties)
    name = f"seg-{time.time_ns():020d}-{uuid.uuid4().hex[:8]}.safetensors"
    return write_atomic(folder / name, {"scores": tensor}, info)


def segments(folder: Path) -> list[Path]:
    """A concept set's segments, oldest first."""
    return sorted(folder.glob("seg-*.safetensors"))


def scored_hashes(folder: Path) -> set[str]:
    """The images that have scores in this concept set."""
    return {h for p in segments(folder) for h in segment_hashes(p)}


@functools.lru_cache(maxsize=256)
def _hashes(path: str, _stamp: tuple[int, int]) -> tuple[str, ...]:
    """A segment's image hashes, cached while the file is unchanged (a 100k list is 6.5 MB of JSON)."""
    with safe_open(path, "pt") as f:
        return tuple(json.loads(f.metadata()["sha256"]))


def segment_hashes(path: Path) -> tuple[str, ...]:
    st = path.stat()
    return _hashes(str(path), (st.st_mtime_ns, st.st_size))


def concept_row(folder: Path, column: int) -> tuple[list[str], np.ndarray]:
    """One concept's scores over every scored image: (sha256 list, (N,) float32), each image once.

    Reads one contiguous row of each segment.
    """
    hashes: list[str] = []
    parts: list[np.ndarray] = []
    for path in segments(folder):
        hashes += segment_hashes(path)
        with safe_open(path, "pt") as f:
            parts.append(f.get_slice("scores")[column : column + 1].float().numpy()[0])
    values = np.concatenate(parts) if parts else np.zeros(0, np.float32)
    if len(parts) <= 1:  # a compacted set holds each image once
        return hashes, values
    _, first = np.unique(np.asarray(hashes), return_index=True)  # duplicates: an interrupted compact
    keep = np.sort(first)
    return [hashes[i] for i in keep], values[keep]


def compact(folder: Path) -> int:
    """Merge every segment of a concept set into one; returns the number of images scored."""
    parts = segments(folder)
    if len(parts) <= 1:
        return sum(len(segment_hashes(p)) for p in parts)
    hashes: list[str] = []
    blocks: list[torch.Tensor] = []
    for path in parts:
        hashes += segment_hashes(path)
        with safe_open(path, "pt") as f:
            blocks.append(f.get_tensor("scores"))
    matrix = torch.cat(blocks, dim=1)  # (T, n)
    _, first = np.unique(np.asarray(hashes), return_index=True)
    keep = np.sort(first)
    write_segment(folder, [hashes[i] for i in keep], matrix[:, torch.from_numpy(keep)].T.numpy())
    for path in parts:
        path.unlink()
    return len(keep)
