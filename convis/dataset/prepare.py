"""Step 1 of indexing a dataset, engine-free: read a file, hash it, decode it, pad it.

Decoding goes through `convis.image.load_image`, the app's own door, so a stored image is the
same pixels the app would map. A file that cannot be used becomes a failure with its reason; it
never stops the run.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from convis.config import GridConfig
from convis.dataset.manifest import Item
from convis.errors import UserError
from convis.image import load_image
from convis.index.build import prepare_grid

MAX_FILE_BYTES = 256 * 2**20  # bigger files are refused before being read (a photo is a few MB)


@dataclass(frozen=True)
class Prepared:
    """One manifest item after step 1.

    Attributes:
        item: where it came from.
        sha256, size: the file's identity and length in bytes ("" and 0 when unreadable).
        padded: (3, h + 2 pad, w + 2 pad) float32 pixels the windows see; None on failure.
        boxes: (N, 4) window boxes in padded pixels.
        crop: (x0, y0, width, height) of the mapped region in the original image.
        grid: (h, w) of the region at grid scale (inside the noise border).
        error: why the file was not indexed, "" when it was.
    """

    item: Item
    sha256: str = ""
    size: int = 0
    padded: np.ndarray | None = None
    boxes: np.ndarray | None = None
    crop: tuple[int, int, int, int] = (0, 0, 0, 0)
    grid: tuple[int, int] = (0, 0)
    error: str = ""


def file_digest(path: str | Path) -> tuple[str, bytes]:
    """(sha256 hex, bytes) of a file, refusing files over `MAX_FILE_BYTES`."""
    p = Path(path)
    size = p.stat().st_size
    if size > MAX_FILE_BYTES:
        raise UserError(f"the file is {size / 2**20:.0f} MB, over the {MAX_FILE_BYTES // 2**20} MB limit; downscale it")
    data = p.read_bytes()
    return hashlib.sha256(data).hexdigest(), data


def hash_item(item: Item) -> tuple[str, bytes] | str:
    """(sha256, bytes), or the reason the file cannot be read."""
    try:
        return file_digest(item.path)
    except UserError as err:
        return str(err)
    except OSError as err:
        return f"cannot read the file: {err.strerror or err}"


def decode(item: Item, sha256: str, data: bytes, config: GridConfig) -> Prepared:
    """Decode and pad one hashed file; a `Prepared` with `error` set when it cannot be used."""
    try:
        image = load_image(data, name=f"'{item.path}'")
        padded, crop, boxes = prepare_grid(image, config)
    except (UserError, ValueError) as err:  # unreadable, too small or large, too long a panorama
        return Prepared(item, sha256, len(data), error=str(err))
    p = config.pad
    grid = (padded.shape[1] - 2 * p, padded.shape[2] - 2 * p)
    h, w = crop.shape
    return Prepared(item, sha256, len(data), padded.numpy(), boxes, (crop.x0, crop.y0, w, h), grid)
