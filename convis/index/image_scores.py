"""Image-level concept scores: how strongly a whole image shows each concept of T.

Pure functions over one image's window evidence. Every score starts from the windows' best
subtree ranks (N, T); the score kinds differ only in how they pool windows:

* "surprise": the mean over windows of -log P(best rank this good by chance), weighted by how
  much of each window is image (`ImageIndex.concept_scores`, the app's top concepts).
* "top5", "top10", ...: the share of the image's windows where the concept ranks in the top k
  (weighted the same way). Read as "in how much of the picture is this among the k best
  descriptions". Searching a store uses these (see README, "Datasets", for which wins).

`best_ranks_from_sims` gets the best ranks from the cosines with one sort per window: a
concept's best rank over its subtree is the count of T whose cosine beats the subtree's best
cosine, so no (N, T) rank matrix is ever built (equal to `rank_matrix` when cosines do not tie).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

import numpy as np
import torch

from convis import saliency as sal
from convis.errors import UserError

_COLS = 4096  # columns per chunk: bounds the float64 temporaries of the surprise


def subtree_max(values: torch.Tensor, order: Sequence[int], children: Sequence[Sequence[int]]) -> torch.Tensor:
    """(N, T) -> (N, T): each concept's maximum over its subtree, children before parents."""
    best = values.T.contiguous().clone()  # (T, N): one contiguous row per concept
    for s in order:
        kids = children[s]
        if len(kids):
            best[s] = torch.maximum(best[s], best[list(kids)].amax(dim=0))
    return best.T


def best_ranks_from_sims(sims: torch.Tensor, order: Sequence[int], children: Sequence[Sequence[int]]) -> torch.Tensor:
    """(N, T) window-to-concept cosines -> (N, T) int64 best rank over each concept's subtree."""
    top = subtree_max(sims, order, children)  # (N, T)
    ascending = sims.sort(dim=1).values.contiguous()
    # how many cosines in the row are strictly greater than the subtree's best
    return sims.shape[1] - torch.searchsorted(ascending, top.contiguous(), right=True)


def window_overlap(boxes: np.ndarray, pad: int, grid: tuple[int, int]) -> np.ndarray:
    """(N,) share of each window's area (boxes (N, 4) in padded pixels) on the (h, w) image, not the noise."""
    hgt, wid = grid
    b = boxes
    w = np.clip(np.minimum(b[:, 2], pad + wid) - np.maximum(b[:, 0], pad), 0, None)
    h = np.clip(np.minimum(b[:, 3], pad + hgt) - np.maximum(b[:, 1], pad), 0, None)
    return (w * h) / ((b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1]))


def window_weights(boxes: np.ndarray, pad: int, grid: tuple[int, int]) -> np.ndarray:
    """(N,) pooling weights summing to 1: mostly-noise windows say little about the image."""
    overlap = window_overlap(boxes, pad, grid)
    return overlap / overlap.sum()


def surprise_score(best: np.ndarray, weights: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """(N, T) best ranks, (N,) weights, (T,) subtree sizes -> (T,) weighted mean surprise in nats."""
    t = best.shape[1]
    return np.concatenate([weights @ sal.surprise(best[:, i : i + _COLS], sizes[i : i + _COLS], t)
                           for i in range(0, t, _COLS)])


def topk_share(best: np.ndarray, weights: np.ndarray, k: int) -> np.ndarray:
    """(T,) weighted share of windows where the concept's best subtree rank is below k."""
    return weights @ (best < k).astype(np.float64)


class UnknownScoreError(UserError, ValueError):
    """An image-level pooling name that is not one of ours."""


ImageScore = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]  # (best, weights, sizes) -> (T,)


def image_score(name: str) -> ImageScore:
    """The pooling called `name`: "surprise" or "top<k>" (e.g. "top5")."""
    if name == "surprise":
        return surprise_score
    if m := re.fullmatch(r"top(\d+)", name):
        k = int(m.group(1))
        return lambda best, weights, _sizes: topk_share(best, weights, k)
    raise UnknownScoreError(f"unknown image score {name!r}; use 'surprise' or 'top<k>' such as 'top5'")
