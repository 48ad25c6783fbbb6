"""From saliency maps to boxes, and the localisation metrics (method doc section 5). Pure numpy/scipy.

Boxes are ``(x0, y0, x1, y1)`` in pixels with ``x1``/``y1`` exclusive, so a box's width is
``x1 - x0`` and the box of a single pixel ``(x, y)`` is ``(x, y, x + 1, y + 1)``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage

Box = tuple[int, int, int, int]  # (x0, y0, x1, y1), x1/y1 exclusive
THRESHOLDS = np.arange(0.0, 1.0, 0.01)  # the paper's and wsolevaluation's sweep, 0.00..0.99

# 4-connectivity: scipy's default structure in 2D is the cross, written out so it cannot drift.
_FOUR = ndimage.generate_binary_structure(2, 1)


def _check_map(saliency: np.ndarray) -> np.ndarray:
    s = np.asarray(saliency)
    if s.ndim != 2 or s.size == 0:
        raise ValueError(f"saliency must be a non-empty (H, W) array, got shape {s.shape}")
    return s


def map_to_box(saliency: np.ndarray, threshold: float) -> Box | None:
    """Tight box of the largest 4-connected component of ``saliency >= threshold``.

    The comparison is ``>=`` so that ``threshold = 0`` selects the whole map, as the sweep
    over ``{0, 0.01, ..., 0.99}`` expects. Ties in area go to the component met first in raster order.

    Args:
        saliency: (H, W) map, high = concept present (normally in [0, 1]).
        threshold: binarisation level.

    Returns:
        ``(x0, y0, x1, y1)`` with exclusive ``x1``/``y1``, or None when no pixel reaches ``threshold``.
    """
    labels, n = ndimage.label(_check_map(saliency) >= threshold, structure=_FOUR)  # NaN is never >=
    if n == 0:
        return None
    biggest = int(np.argmax(np.bincount(labels.ravel())[1:])) + 1  # argmax: first label on ties
    sy, sx = ndimage.find_objects(labels, max_label=biggest)[biggest - 1]
    return int(sx.start), int(sy.start), int(sx.stop), int(sy.stop)


def iou_matrix(a: np.ndarray | Sequence[Box], b: np.ndarray | Sequence[Box]) -> np.ndarray:
    """Pairwise IoU of exclusive boxes: (N, 4) x (M, 4) -> (N, M) float64; empty boxes score 0."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    iw = np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0])
    ih = np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1])
    inter = np.clip(iw, 0, None) * np.clip(ih, 0, None)
    area_a = np.clip(a[:, 2] - a[:, 0], 0, None) * np.clip(a[:, 3] - a[:, 1], 0, None)
    area_b = np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def iou(a: Box, b: Box) -> float:
    """Intersection over union of two ``(x0, y0, x1, y1)`` boxes with exclusive ``x1``/``y1``."""
    return float(iou_matrix([a], [b])[0, 0])


def threshold_levels(saliency: np.ndarray, thresholds: np.ndarray = THRESHOLDS) -> np.ndarray:
    """(H, W) int: how many of the (sorted) thresholds each pixel reaches; NaN reaches none.

    Pixel in the mask ``saliency >= thresholds[j]``  <=>  its level is > j: one array holds the
    masks of the whole sweep.
    """
    return np.searchsorted(thresholds, np.where(np.isnan(saliency), -np.inf, saliency), side="right")


def _sweep(s: np.ndarray, thresholds: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every 4-connected component of ``s >= t`` for every t in ``thresholds`` (sorted ascending).

    Returns boxes (C, 4), areas (C,) and each component's threshold index (C,), grouped by
    threshold index and, within a threshold, in label order (raster order of the first pixel).
    """
    q = threshold_levels(s, thresholds).astype(np.int16 if thresholds.size < 2**15 else np.int64)  # narrow ints: faster compares
    # Merging identical adjacent rows/cols changes no component, only areas and coordinates, which
    # we map back; ConVis grid maps are constant on 16-px blocks, so 224x224 shrinks to 14x14.
    runs = []
    for axis in (0, 1):
        keep = np.ones(q.shape[axis], dtype=bool)
        keep[1:] = (np.diff(q, axis=axis) != 0).any(axis=1 - axis)
        q = np.compress(keep, q, axis=axis)
        start = np.flatnonzero(keep)
        runs.append((start, np.append(start[1:], keep.size)))  # run j covers [start, stop)
    (r0, r1), (c0, c1) = runs
    h, w = q.shape
    levels = int(q.max())  # thresholds j >= levels select nothing
    if levels == 0:
        return np.zeros((0, 4), np.int64), np.zeros(0), np.zeros(0, np.int64)
    # One label call for all thresholds: masks stacked vertically, separated by an empty row.
    tiles = np.zeros((levels, h + 1, w), dtype=bool)
    tiles[:, :h] = q[None] > np.arange(levels)[:, None, None]
    labels, n = ndimage.label(tiles.reshape(-1, w), structure=_FOUR)
    spans = np.array([(sy.start, sy.stop, sx.start, sx.stop) for sy, sx in ndimage.find_objects(labels)])
    spans = spans.reshape(-1, 4)
    level = spans[:, 0] // (h + 1)
    ya, yb = spans[:, 0] - level * (h + 1), spans[:, 1] - level * (h + 1)
    boxes = np.stack([c0[spans[:, 2]], r0[ya], c1[spans[:, 3] - 1], r1[yb - 1]], axis=1)
    cell = np.outer(r1 - r0, c1 - c0)  # (h, w) original pixels per merged pixel
    if h * w == s.size:  # nothing merged: plain pixel counts, much cheaper than weighted ones
        areas = np.bincount(labels.ravel(), minlength=n + 1)[1:].astype(np.float64)
    else:
        weights = np.broadcast_to(np.vstack([cell, np.zeros((1, w), cell.dtype)]), (levels, h + 1, w))
        areas = np.bincount(labels.ravel(), weights=weights.ravel(), minlength=n + 1)[1:]
    return boxes, areas, level


def box_accuracy(
    maps: Sequence[np.ndarray],
    gt_boxes: Sequence[Sequence[Box]],
    thresholds: np.ndarray | Sequence[float] = THRESHOLDS,
    iou_threshold: float = 0.5,
    v2_iou_thresholds: Sequence[float] = (0.3, 0.5, 0.7),
) -> dict:
    """MaxBoxAcc and MaxBoxAccV2 over a set of maps (Choe et al. 2020, clovaai/wsolevaluation).

    For each threshold an image counts as correct when its predicted box reaches IoU ``>= delta``
    with any of its ground-truth boxes (``>=`` as in wsolevaluation; the paper writes "> 0.5").
    MaxBoxAcc predicts one box, the largest component's, at ``iou_threshold`` and takes the best
    threshold. MaxBoxAccV2 uses the best box over *all* components (wsolevaluation's
    ``multi_contour_eval=True``) and averages, over ``v2_iou_thresholds``, the accuracy at each
    delta's own best threshold. Accuracies are fractions in [0, 1], not percentages.

    Args:
        maps: (H, W) maps, one per image; sizes may differ between images.
        gt_boxes: per image, a non-empty list of ground-truth boxes in that map's pixel frame.
        thresholds: binarisation levels to sweep (``saliency >= t``).
        iou_threshold: delta of MaxBoxAcc.
        v2_iou_thresholds: the deltas MaxBoxAccV2 averages over.

    Returns:
        ``{"maxboxacc", "best_threshold", "maxboxacc_v2", "per_iou": {delta: acc}}``.
    """
    if len(maps) != len(gt_boxes) or not maps:
        raise ValueError(f"need as many gt box lists as maps (>0), got {len(maps)} and {len(gt_boxes)}")
    thresholds = np.asarray(thresholds, dtype=np.float64).ravel()
    order = np.argsort(thresholds, kind="stable")
    deltas = np.asarray(v2_iou_thresholds, dtype=np.float64)
    best_one = np.zeros((len(maps), thresholds.size))  # (I, K) IoU of the largest component's box
    best_any = np.zeros((len(maps), thresholds.size))  # (I, K) best IoU over all components' boxes
    for i, (saliency, gts) in enumerate(zip(maps, gt_boxes)):
        if len(gts) == 0:
            raise ValueError(f"image {i} has no ground-truth box")
        boxes, areas, level = _sweep(_check_map(saliency), thresholds[order])
        if level.size == 0:
            continue
        ious = iou_matrix(boxes, gts).max(axis=1)  # (C,) best gt per component
        first = np.flatnonzero(np.r_[True, np.diff(level) != 0])  # (L,) where each threshold's group starts
        best_any[i, order[level[first]]] = np.maximum.reduceat(ious, first)
        # Largest area per threshold; ties go to the lowest label, as in map_to_box.
        rank = np.lexsort((np.arange(level.size), -areas, level))
        best_one[i, order[level[first]]] = ious[rank[first]]
    acc_one = (best_one >= iou_threshold).mean(axis=0)  # (K,)
    acc_any = (best_any[None] >= deltas[:, None, None]).mean(axis=1)  # (len(deltas), K)
    k_best = int(np.argmax(acc_one))  # first best threshold on ties
    per_iou = {float(d): float(a) for d, a in zip(deltas, acc_any.max(axis=1))}
    return {
        "maxboxacc": float(acc_one[k_best]),
        "best_threshold": float(thresholds[k_best]),
        "maxboxacc_v2": float(np.mean(list(per_iou.values()))),
        "per_iou": per_iou,
    }


def pointing_hit(saliency: np.ndarray, gt_boxes: Sequence[Box], tolerance: float = 15) -> bool:
    """Pointing game: is the map's maximum within ``tolerance`` px of any ground-truth box?

    The point is the first maximum in raster order (NaN counts as lowest). Distance is Euclidean
    from the pixel to the nearest pixel of the box, so a point inside a box has distance 0.
    """
    s = _check_map(saliency)
    y, x = np.unravel_index(int(np.argmax(np.nan_to_num(s, nan=-np.inf))), s.shape)
    for x0, y0, x1, y1 in gt_boxes:
        dx = max(x0 - x, 0, x - (x1 - 1))  # x1 is exclusive: the last pixel column is x1 - 1
        dy = max(y0 - y, 0, y - (y1 - 1))
        if np.hypot(dx, dy) <= tolerance:
            return True
    return False
