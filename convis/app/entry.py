"""One indexed image as the app keeps it (`Entry`), and the keys the app's caches use.

An entry is shared by every session that shows the same picture under the same model,
vocabulary, seed and region; the `Backend` owns its bytes, sessions only refer to it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from convis.index.image_index import ImageIndex
from convis.clip.models import DEFAULT_PRETRAINED, parse_model

Key = tuple[str, str, str, int, bool]  # (image hash, model key, vocabulary, seed, whole picture)


def model_key(model: str, pretrained: str | None = None) -> str:
    """Canonical "arch/tag" key of a model spec ("ViT-B-32" -> "ViT-B-32/openai")."""
    if pretrained:
        return f"{model}/{pretrained}"
    name, tag = parse_model(model)
    if tag and tag == DEFAULT_PRETRAINED.get(name) and Path(tag).is_absolute():
        return name  # a checkpoint shipped in the repository: its server path stays out of the UI
    return f"{name}/{tag}" if tag else name


def image_hash(image: Image.Image) -> str:
    """Full SHA-256 of the decoded pixels (a key shared by all users): re-saved copies share an index."""
    digest = hashlib.sha256(f"{image.size}{image.mode}".encode())
    digest.update(image.tobytes())
    return digest.hexdigest()


@dataclass(frozen=True, eq=False)
class Entry:
    """One indexed image: the engine's index and the mapped region of the original at display size."""

    key: Key
    index: ImageIndex
    display: np.ndarray  # (h, w, 3) uint8: the region of the original image the map covers
    name: str  # file name shown to the user
    seconds: float  # indexing time (0 for a cache hit)
    origin: str = ""  # where the index was made when not here ("the dataset store"), for the status

    @property
    def complete(self) -> bool:
        """False for a progressive snapshot (some windows not indexed yet)."""
        return getattr(self.index, "complete", True)

    @property
    def nbytes(self) -> int:
        padded = self.index.padded
        kept = self.index.embeddings  # (N, D) float16 window embeddings, for phrases and the raw map
        extra = 0 if kept is None else kept.element_size() * kept.nelement()
        return int(self.index.ranks.nbytes + padded.element_size() * padded.nelement() + self.display.nbytes
                   + extra)
