"""Image-level concept scores: how strongly a whole image shows each concept of T.

Pure functions over one image's window evidence. Every score starts from the windows' best
subtree ranks (N, T); the score kinds differ only in how they pool windows:

* "surprise": the mean over windows of -log P(best rank this good by chance), weighted by how
  much of each window is image (`ImageIndex.concept_scores`, the app's top concepts).
* "top1", "top5", ...: the share of the image's windows where the concept ranks in the top k
  (weighted the same way): "in how much of the picture is this among the k best descriptions".
  A store keeps "top1", which won on the synthetic world (README, "Datasets").

`best_ranks_from_sims` gets the best ranks from the cosines with one sort per window: a
concept's best rank over its subtree is the count of T whose cosine beats the subtree's best
cosine, so no (N, T) rank matrix is ever built (equal to `rank_matrix` when cosines do not tie).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from convis import saliency as sal
from convis.errors import UserError

if TYPE_CHECKING:
    from convis.concepts.hierarchy import Hierarchy

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


@dataclass(frozen=True)
class ScoreContext:
    """What the poolings need of a hierarchy, built once (`ScoreContext.of`).

    Attributes:
        order, children: the DAG, children before parents (subtree maxima).
        sizes: (T,) float64 subtree sizes (the surprise).
        ancestry: CSR of each concept's ancestors in T, itself included: concept j's are
            `idx[ptr[j]:ptr[j + 1]]` (whose subtrees hold j: the top-k share).
    """

    order: np.ndarray
    children: Sequence[Sequence[int]]
    sizes: np.ndarray
    ptr: np.ndarray
    idx: np.ndarray

    @classmethod
    def of(cls, h: Hierarchy) -> ScoreContext:
        pairs = [(int(j), c) for c in range(len(h)) for j in h.subtree(h.ids[c])]  # (descendant, ancestor)
        pairs.sort()
        desc = np.array([p[0] for p in pairs], dtype=np.int64)
        ptr = np.searchsorted(desc, np.arange(len(h) + 1))
        idx = np.array([p[1] for p in pairs], dtype=np.int64)
        return cls(h.topological_order(), h.child_index, h.subtree_sizes().astype(np.float64), ptr, idx)


def topk_share_from_sims(sims: torch.Tensor, weights: np.ndarray, ctx: ScoreContext, k: int) -> np.ndarray:
    """(T,) the top-k share straight from (N, T) cosines: a concept's best subtree rank is below k
    exactly when its subtree holds one of the window's k best concepts, so only the ancestors of
    those k are marked (no sort of the row, no walk of the DAG)."""
    n, t = sims.shape
    top = sims.topk(min(k, t), dim=1).indices.cpu().numpy()  # (N, k)
    rows, cols = [], []
    for j in top.T:  # (N,) the window's j-th best concept: mark its ancestors
        lens = ctx.ptr[j + 1] - ctx.ptr[j]
        rows.append(np.repeat(np.arange(n), lens))
        first = np.repeat(ctx.ptr[j] - (np.cumsum(lens) - lens), lens)  # CSR start minus output offset
        cols.append(ctx.idx[first + np.arange(int(lens.sum()))])
    rows, cols = np.concatenate(rows), np.concatenate(cols)
    if top.shape[1] > 1:  # an ancestor of two of the k counts once per window
        keep = np.unique(rows * t + cols)
        rows, cols = keep // t, keep % t
    return np.bincount(cols, weights=weights[rows], minlength=t)


class UnknownScoreError(UserError, ValueError):
    """An image-level pooling name that is not one of ours."""


ImageScore = Callable[[torch.Tensor, np.ndarray, ScoreContext], np.ndarray]  # (N, T) sims, (N,) weights -> (T,)


def _surprise(sims: torch.Tensor, weights: np.ndarray, ctx: ScoreContext) -> np.ndarray:
    return surprise_score(best_ranks_from_sims(sims, ctx.order, ctx.children).cpu().numpy(), weights, ctx.sizes)


def image_score(name: str) -> ImageScore:
    """The pooling called `name`: "surprise" or "top<k>" (e.g. "top1"), as a function of the cosines."""
    if name == "surprise":
        return _surprise
    if m := re.fullmatch(r"top(\d+)", name):
        k = int(m.group(1))
        return lambda sims, weights, ctx: topk_share_from_sims(sims, weights, ctx, k)
    raise UnknownScoreError(f"unknown image score {name!r}; use 'surprise' or 'top<k>' such as 'top1'")
