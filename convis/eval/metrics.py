"""Metrics the harness adds to `convis.boxes`: AUROC, FPR at a TPR, curve areas, box frames.

Pure numpy. Box localisation (MaxBoxAcc, MaxBoxAccV2, IoU, pointing game) lives in
`convis.boxes` and is reused, not repeated, here.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.stats import rankdata

from convis.boxes import THRESHOLDS, Box, threshold_levels
from convis.windows import CropBox


def _split(scores: np.ndarray, positive: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    scores = np.asarray(scores, dtype=np.float64).ravel()
    positive = np.asarray(positive, dtype=bool).ravel()
    if scores.shape != positive.shape:
        raise ValueError(f"{scores.size} scores but {positive.size} labels")
    if positive.all() or not positive.any():
        raise ValueError("need at least one positive and one negative sample")
    return scores[positive], scores[~positive]


def auroc(scores: Sequence[float] | np.ndarray, positive: Sequence[bool] | np.ndarray) -> float:
    """Area under the ROC curve: P(score of a random positive > that of a random negative).

    Ties count one half (the Mann-Whitney U statistic), so the value does not depend on order.
    """
    pos, neg = _split(np.asarray(scores), np.asarray(positive))
    ranks = rankdata(np.concatenate([pos, neg]))  # average ranks: ties share
    u = ranks[: pos.size].sum() - pos.size * (pos.size + 1) / 2
    return float(u / (pos.size * neg.size))


def fpr_at_tpr(scores: Sequence[float] | np.ndarray, positive: Sequence[bool] | np.ndarray,
               tpr: float = 0.95) -> float:
    """False-positive rate at the highest threshold that flags at least `tpr` of the positives.

    A sample is flagged when its score is >= the threshold (the usual FPR95 of OOD detection).
    """
    pos, neg = _split(np.asarray(scores), np.asarray(positive))
    # The k-th highest positive score is the highest threshold that flags k positives.
    k = int(np.ceil(tpr * pos.size - 1e-9))
    threshold = np.sort(pos)[::-1][max(k, 1) - 1]
    return float((neg >= threshold).mean())


def curve_auc(values: Sequence[float] | np.ndarray) -> float:
    """Area under a curve sampled at evenly spaced fractions 0..1 (trapezoid rule)."""
    v = np.asarray(values, dtype=np.float64).ravel()
    if v.size < 2:
        raise ValueError("a curve needs at least two points")
    return float((v[:-1] + v[1:]).sum() / (2 * (v.size - 1)))


def to_map_frame(boxes: Sequence[Box], crop: CropBox, size: int) -> list[Box]:
    """Boxes of the original image in the pixels of a (size, size) map of its centre crop.

    Boxes are shifted by the crop's corner, scaled by size / side and clipped to the map;
    boxes left with no area (outside the crop) are dropped.
    """
    scale = size / crop.side
    out = []
    for x0, y0, x1, y1 in boxes:
        shifted = np.array([x0 - crop.x0, y0 - crop.y0, x1 - crop.x0, y1 - crop.y0], dtype=np.float64)
        b = np.clip(shifted * scale, 0, size)
        # Round outwards: a box keeps every pixel it touches.
        q = (int(np.floor(b[0])), int(np.floor(b[1])), int(np.ceil(b[2])), int(np.ceil(b[3])))
        if q[2] > q[0] and q[3] > q[1]:
            out.append(q)
    return out


def shift_boxes(boxes: Sequence[Box], crop: CropBox) -> list[Box]:
    """Boxes of the original image in the pixels of a crop-side map (no scaling, no clipping)."""
    return [(x0 - crop.x0, y0 - crop.y0, x1 - crop.x0, y1 - crop.y0) for x0, y0, x1, y1 in boxes]


def quantise(saliency: np.ndarray, thresholds: np.ndarray = THRESHOLDS) -> np.ndarray:
    """(H, W) uint8: how many of the (sorted) thresholds each pixel reaches.

    Stores a map in one byte per pixel with no effect on any threshold sweep over `thresholds`:
    `saliency >= thresholds[j]` exactly when the stored value is > j. NaN reaches none.
    """
    if thresholds.size > 255:
        raise ValueError("at most 255 thresholds fit in a byte")
    return threshold_levels(saliency, thresholds).astype(np.uint8)


def dequantise(levels: np.ndarray, thresholds: np.ndarray = THRESHOLDS) -> np.ndarray:
    """(H, W) float64 map that reaches exactly the thresholds the original did (inverse of `quantise`)."""
    table = np.concatenate([[-1.0], np.asarray(thresholds, dtype=np.float64)])  # float64: exact at each t
    return table[levels]


def summarise(values: Sequence[float] | np.ndarray) -> dict[str, float]:
    """Mean and standard error of a list of per-sample values."""
    v = np.asarray(values, dtype=np.float64)
    if v.size == 0:
        return {"mean": float("nan"), "sem": float("nan"), "n": 0}
    sem = float(v.std(ddof=1) / np.sqrt(v.size)) if v.size > 1 else 0.0
    return {"mean": float(v.mean()), "sem": sem, "n": int(v.size)}
