"""Where each search hit shows what was asked: its map over the mapped region and a box.

One path for every shell that shows hits (`convis search`, the app's Dataset tab, the
`/dataset_search` endpoint): maps are rebuilt from the stored window embeddings (no image
forward), boxes are the largest component of the map above a threshold, in the original
image's pixels.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from convis.boxes import map_to_box
from convis.config import GridConfig
from convis.store import search as ss
from convis.store.shards import Row
from convis.store.spec import Hit

if TYPE_CHECKING:
    from convis.concepts.hierarchy import Hierarchy
    from convis.store.store import Store


@dataclass(frozen=True)
class Found:
    """A hit with where: its row, its (h, w) map over `row.crop` and the box in image pixels."""

    hit: Hit
    row: Row
    heat: np.ndarray  # (h, w) float32 in [0, 1], h, w = the crop's height and width
    box: tuple[int, int, int, int] | None  # (x0, y0, x1, y1) in the original image, None below threshold

    def as_dict(self, path: str | None = None) -> dict:
        """JSON-ready: file (its stored path, or the one given), sha256, score, label, box. The key is
        not "path": gradio_client takes a dict with a "path" for a file to download."""
        return {"file": self.hit.path if path is None else path, "sha256": self.hit.sha256,
                "score": round(self.hit.score, 5), "label": self.hit.label,
                "box": list(self.box) if self.box else None}


def locate(store: Store, hits: Sequence[Hit], bank: torch.Tensor, hierarchy: Hierarchy, *,
           concept: str | None = None, phrase: torch.Tensor | None = None, threshold: float = 0.5,
           config: GridConfig | None = None) -> Iterator[Found]:
    """Each hit's map and box, in order (a generator: a shell can show progress per hit).

    Args:
        bank: (T, D) concept embeddings of the store's model; hierarchy: its concept set.
        concept: the synset searched for, or `phrase`: its (1, D) text embedding.
        threshold: the box's binarisation level on the [0, 1] map.
        config: the scoring (default: the store's windows with rank scores).
    """
    if (concept is None) == (phrase is None):
        raise ValueError("locate a concept or a phrase (one of them)")
    for hit in hits:
        row = store.row(hit.sha256)
        if concept is not None:
            heat = ss.concept_maps(store, hit.sha256, bank, hierarchy, [concept], config)[0]
        else:
            heat = ss.phrase_maps(store, hit.sha256, bank, phrase, config)[0]
        box = map_to_box(heat, threshold)
        x0, y0 = row.crop[:2]
        full = (int(box[0] + x0), int(box[1] + y0), int(box[2] + x0), int(box[3] + y0)) if box else None
        yield Found(hit, row, heat, full)
