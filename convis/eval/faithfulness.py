"""Deletion and insertion (Petsiuk et al., RISE 2018): does the map explain the embedding?

On the 224 x 224 centre crop the map describes, pixels are removed (deletion: set to black) or
revealed (insertion: over a blurred copy) in order of decreasing saliency, in `steps` equal
chunks. After each step the whole crop is embedded and compared with the concept: the max
cosine over the glosses of hypo*(s) (the gloss itself for a leaf), the score ConVis ranks by.
The area under each curve (x = fraction of pixels changed) summarises it: a faithful map makes
the deletion curve fall fast (low AUC) and the insertion curve rise fast (high AUC).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np
import torch
from scipy import ndimage

from convis.engine import Engine
from convis.eval.datasets import Sample, open_or_note
from convis.eval.mapmaker import MapMaker
from convis.eval.metrics import curve_auc
from convis.windows import crop_windows, prepare_image

BLUR_SIGMA = 5.0  # px at 224: RISE's insertion start (an 11-px Gaussian kernel, sigma 5)


def perturbation_series(pixels: np.ndarray, saliency: np.ndarray, steps: int, start: np.ndarray,
                        ) -> np.ndarray:
    """Images that take `pixels` towards `start` in order of decreasing saliency.

    Args:
        pixels: (S, S, 3) float image the series starts from.
        saliency: (S, S) map; ties are broken in raster order (stable sort).
        steps: number of chunks; the series has steps + 1 images.
        start: (S, S, 3) image whose pixels replace those of `pixels`.

    Returns:
        (steps + 1, S, S, 3) float32: image k has the top k/steps of the pixels replaced.
    """
    order = np.argsort(-saliency.ravel(), kind="stable")  # (S*S,) most salient first
    counts = np.rint(np.linspace(0, order.size, steps + 1)).astype(int)
    rank = np.empty(order.size, dtype=np.int64)
    rank[order] = np.arange(order.size)  # rank[p] = position of pixel p in the order
    changed = rank[None, :] < counts[:, None]  # (steps + 1, S*S)
    flat_from, flat_to = pixels.reshape(-1, 3), start.reshape(-1, 3)
    out = np.where(changed[..., None], flat_to[None], flat_from[None])
    return out.reshape(steps + 1, *pixels.shape).astype(np.float32)


def concept_similarity(engine: Engine, images: np.ndarray, concept: str, batch_size: int = 64) -> np.ndarray:
    """(K,) max cosine of each (K, S, S, 3) [0, 1] image to the glosses of hypo*(concept)."""
    clip = engine.clip
    target = engine.bank.embeddings[list(engine.hierarchy.subtree(concept))].float()  # (m, D)
    out = []
    for start in range(0, len(images), batch_size):
        x = torch.from_numpy(images[start:start + batch_size]).permute(0, 3, 1, 2).to(clip.device)
        side = x.shape[-1]
        boxes = np.array([[0, 0, side, side]])
        crops = torch.cat([crop_windows(im, boxes, clip.image_size, clip.mean, clip.std) for im in x])
        out.append((clip.encode_image(crops) @ target.T).amax(dim=1).cpu())
    return torch.cat(out).numpy()


def deletion_insertion(engine: Engine, pixels: np.ndarray, saliency: np.ndarray, concept: str,
                       steps: int = 32) -> dict[str, np.ndarray]:
    """Deletion and insertion curves ((steps + 1,) each) of one map on one (S, S, 3) uint8 crop."""
    img = pixels.astype(np.float32) / 255.0
    blurred = ndimage.gaussian_filter(img, sigma=(BLUR_SIGMA, BLUR_SIGMA, 0))
    deletion = perturbation_series(img, saliency, steps, np.zeros_like(img))
    insertion = perturbation_series(blurred, saliency, steps, img)
    return {"deletion": concept_similarity(engine, deletion, concept),
            "insertion": concept_similarity(engine, insertion, concept)}


def run_faithfulness(samples: Iterable[Sample], maker: MapMaker, concept_of: Callable[[Sample], "str | None"],
                     steps: int = 32, progress: Callable[[int], None] | None = None,
                     ) -> tuple[dict, list[dict]]:
    """Deletion/insertion AUC of every method of `maker` (maps at the grid's image size).

    Returns:
        (summary {"images", "methods": {method: {"deletion_auc", "insertion_auc"}}}, per-image rows).
    """
    rows: list[dict] = []
    unreadable: list[str] = []  # named in the summary, not scored
    for sample in samples:
        concept = concept_of(sample)
        if concept and (image := open_or_note(sample, unreadable)) is not None:
            pixels, _ = prepare_image(image, maker.config.image_size)
            maps, _ = maker(image, [concept], size=0, source=sample.path)
            row: dict = {"image": sample.image_id, "concept": concept}
            for m, stack in maps.items():
                curves = deletion_insertion(maker.engine, pixels, stack[0], concept, steps)
                row[f"{m}_deletion_auc"] = round(curve_auc(curves["deletion"]), 5)
                row[f"{m}_insertion_auc"] = round(curve_auc(curves["insertion"]), 5)
            rows.append(row)
        if progress:
            progress(1)
    summary: dict = {"images": len(rows), "steps": steps, "unreadable": len(unreadable),
                     "unreadable_images": unreadable, "methods": {}}
    for m in maker.methods:
        d = [r[f"{m}_deletion_auc"] for r in rows]
        i = [r[f"{m}_insertion_auc"] for r in rows]
        summary["methods"][m] = {"deletion_auc": float(np.mean(d)) if d else float("nan"),
                                 "insertion_auc": float(np.mean(i)) if i else float("nan")}
    return summary, rows
