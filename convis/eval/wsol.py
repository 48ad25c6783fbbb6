"""Weakly supervised object localisation (the paper's CUB experiment, wsolevaluation's metrics).

Protocol: every image is centre-cropped as ConVis sees it; ground-truth boxes are moved into the
crop's frame and scaled to the 224 x 224 map; boxes wholly outside the crop are dropped and an
image left with none is skipped (and counted). MaxBoxAcc (IoU >= 0.5, largest component) and
MaxBoxAccV2 (mean over IoU 0.3/0.5/0.7, best component) sweep the thresholds 0.00..0.99.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np

from convis.boxes import THRESHOLDS, box_accuracy, iou_matrix, map_to_box
from convis.eval.datasets import Sample, open_or_note
from convis.eval.mapmaker import MapMaker
from convis.eval.metrics import dequantise, quantise, to_map_frame
from convis.windows import centre_crop_box

ConceptOf = Callable[[Sample], "str | None"]  # the synset to query for an image, None = skip it


@dataclass
class Localisation:
    """Maps (quantised: exact for the threshold sweep) and boxes collected image by image."""

    methods: list[str]
    size: int = 224
    levels: dict[str, list[np.ndarray]] = field(default_factory=dict)  # method -> [(size, size) uint8]
    gts: list[list[tuple[int, int, int, int]]] = field(default_factory=list)
    rows: list[dict] = field(default_factory=list)  # one per image: id, concept, ...
    skipped: list[str] = field(default_factory=list)

    def add(self, row: dict, maps: dict[str, np.ndarray], gts: list[tuple[int, int, int, int]]) -> None:
        """Record one image's (size, size) map per method and its boxes in the map frame."""
        for m in self.methods:
            self.levels.setdefault(m, []).append(quantise(maps[m]))
        self.gts.append(gts)
        self.rows.append(row)

    def summary(self) -> dict[str, dict]:
        """Per method: box_accuracy's figures; adds per-image IoU at the best threshold to `rows`."""
        out = {}
        for m in self.methods:
            maps = [dequantise(q) for q in self.levels.get(m, [])]
            if not maps:
                continue
            acc = box_accuracy(maps, self.gts, THRESHOLDS)
            out[m] = {k: acc[k] for k in ("maxboxacc", "best_threshold", "maxboxacc_v2")}
            out[m]["per_iou"] = {str(k): v for k, v in acc["per_iou"].items()}
            for row, s, gts in zip(self.rows, maps, self.gts):
                box = map_to_box(s, acc["best_threshold"])
                row[f"{m}_iou"] = round(float(iou_matrix([box], gts).max()), 4) if box else 0.0
                row[f"{m}_box"] = " ".join(map(str, box)) if box else ""
        return out


def run_wsol(samples: Iterable[Sample], maker: MapMaker, concept_of: ConceptOf,
             progress: Callable[[int], None] | None = None) -> tuple[dict, list[dict]]:
    """MaxBoxAcc / MaxBoxAccV2 of every method of `maker` over `samples`.

    Args:
        samples: images with their class boxes (`Sample.label` names the class; all boxes if none).
        maker: the methods to compare, sharing the window pass.
        concept_of: the synset queried for an image (e.g. always "bird.n.01"); None skips the image.
        progress: called with 1 after each image.

    Returns:
        (summary: {"images", "skipped", "unreadable", "methods": {method: figures}}, per-image rows);
        an image that cannot be read is counted and named in "unreadable_images", not scored.
    """
    loc, unreadable = Localisation(maker.methods, maker.config.image_size), []
    for sample in samples:
        concept = concept_of(sample)
        image = open_or_note(sample, unreadable)
        boxes = sample.boxes(sample.label or None) if concept and image is not None else []
        gts = to_map_frame(boxes, centre_crop_box(*image.size), loc.size) if boxes else []
        if image is not None and not gts:
            loc.skipped.append(sample.image_id)
        elif gts:
            maps, crop = maker(image, [concept], size=0, source=sample.path)
            loc.add({"image": sample.image_id, "path": str(sample.path), "concept": concept,
                     "gt_boxes": ";".join(" ".join(map(str, b)) for b in gts)},
                    {m: v[0] for m, v in maps.items()}, gts)
        if progress:
            progress(1)
    summary = {"images": len(loc.rows), "skipped": len(loc.skipped), "skipped_ids": loc.skipped,
               "unreadable": len(unreadable), "unreadable_images": unreadable,
               "methods": loc.summary() if loc.rows else {}}
    return summary, loc.rows

