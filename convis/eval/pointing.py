"""The pointing game (Zhang et al. 2016, TorchRay's protocol) on VOC- or COCO-style annotations.

For every image and every class present in it, the class's synset is queried; a hit is when the
map's maximum lies within `tolerance` px (original image pixels) of a box of that class. Maps
cover the centre crop, so boxes are only shifted into the crop's frame (not clipped): a class
wholly outside the crop can still be hit from its border. "difficult" is TorchRay's subset: the
class's boxes cover less than a quarter of the image and another class is present.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable

import numpy as np

from convis.boxes import pointing_hit
from convis.eval.concepts import Resolution
from convis.eval.datasets import FBox, Sample, open_or_note
from convis.eval.mapmaker import MapMaker
from convis.eval.metrics import shift_boxes


def covered_fraction(boxes: list[FBox], width: int, height: int) -> float:
    """Share of the image covered by the union of `boxes`."""
    mask = np.zeros((height, width), dtype=bool)
    for x0, y0, x1, y1 in boxes:
        mask[max(int(y0), 0):max(int(np.ceil(y1)), 0), max(int(x0), 0):max(int(np.ceil(x1)), 0)] = True
    return float(mask.mean())


def run_pointing(samples: Iterable[Sample], resolution: Resolution, maker: MapMaker, tolerance: float = 15,
                 progress: Callable[[int], None] | None = None) -> tuple[dict, list[dict]]:
    """Pointing accuracy of every method of `maker`.

    Args:
        samples: images with their labelled boxes.
        resolution: class name -> synset queried (classes not in it are not scored).
        maker: the methods to compare.
        tolerance: hit radius in original image pixels.
        progress: called with 1 after each image.

    Returns:
        (summary, one row per (image, class)). The summary has, per method, the hit rate over all
        pairs ("all"), over the difficult pairs ("difficult") and the mean of per-class hit rates
        ("class_mean", TorchRay's headline figure).
    """
    rows: list[dict] = []
    unreadable: list[str] = []  # named in the summary, not scored
    for sample in samples:
        classes = sorted({n for n, _ in sample.objects if n in resolution.queries})
        if classes and (image := open_or_note(sample, unreadable)) is not None:
            synsets = list(dict.fromkeys(resolution.queries[c] for c in classes))
            maps, crop = maker(image, synsets, size=None, source=sample.path)  # crop-side maps: original pixels
            for c in classes:
                boxes = sample.boxes(c)
                k = synsets.index(resolution.queries[c])
                hard = covered_fraction(boxes, *image.size) < 0.25 and len(classes) > 1
                row = {"image": sample.image_id, "class": c, "synset": resolution.queries[c],
                       "difficult": hard}
                for m, stack in maps.items():
                    s = stack[k]
                    y, x = np.unravel_index(int(np.argmax(s)), s.shape)
                    row[f"{m}_hit"] = bool(pointing_hit(s, shift_boxes(boxes, crop), tolerance))
                    row[f"{m}_point"] = f"{x + crop.x0} {y + crop.y0}"
                rows.append(row)
        if progress:
            progress(1)
    summary = summarise_pointing(rows, maker.methods)
    return {**summary, "unreadable": len(unreadable), "unreadable_images": unreadable}, rows


def summarise_pointing(rows: list[dict], methods: list[str]) -> dict:
    """Hit rates per method from `run_pointing`'s rows."""
    out: dict = {"pairs": len(rows), "difficult_pairs": sum(r["difficult"] for r in rows), "methods": {}}
    for m in methods:
        hits = np.array([r[f"{m}_hit"] for r in rows], dtype=float)
        hard = np.array([r["difficult"] for r in rows], dtype=bool)
        per_class: dict[str, list[bool]] = defaultdict(list)
        for r in rows:
            per_class[r["class"]].append(r[f"{m}_hit"])
        out["methods"][m] = {
            "all": float(hits.mean()) if hits.size else float("nan"),
            "difficult": float(hits[hard].mean()) if hard.any() else float("nan"),
            "class_mean": float(np.mean([np.mean(v) for v in per_class.values()])) if per_class
            else float("nan"),
            "per_class": {c: float(np.mean(v)) for c, v in sorted(per_class.items())},
        }
    return out
