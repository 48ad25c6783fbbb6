"""Scores and maps of ConVis: ranks over T, best rank in a subtree, box accumulation.

Pure functions. Ranks are 0 for the concept most similar to a window; a window's score for a
concept s is the best (lowest) rank among s and its descendants (the paper's max_rank_sim).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from PIL import Image

from convis.config import StochasticConfig


def rank_matrix(sims: torch.Tensor) -> torch.Tensor:
    """Rank of every concept for every window, 0 = most similar; ties keep T's order.

    Args:
        sims: (N, T) similarities.

    Returns:
        (N, T) int64 ranks on `sims`' device.
    """
    order = sims.argsort(dim=1, descending=True, stable=True)  # (N, T) concept ids, best first
    ranks = torch.empty_like(order)
    positions = torch.arange(sims.shape[1], device=sims.device).expand_as(order)
    return ranks.scatter_(1, order, positions)


def rank_dtype(num_concepts: int) -> np.dtype:
    """int16 holds ranks of up to 32,767 concepts; bigger vocabularies need int32."""
    return np.dtype(np.int16) if num_concepts <= np.iinfo(np.int16).max + 1 else np.dtype(np.int32)


def best_rank(ranks: np.ndarray, subtree: np.ndarray) -> np.ndarray:
    """Best rank of each window among a subtree's concepts: (N, T), (K,) -> (N,) int64."""
    return ranks[:, subtree].min(axis=1).astype(np.int64)


def gamma_score(rank: np.ndarray, n: int, gamma: float = 5.0) -> np.ndarray:
    """The reference's gamma score: 2 exp(-gamma r / n) - 1 for r < n, else -1. High = present."""
    r = np.asarray(rank, dtype=np.float64)
    return np.where(r < n, 2.0 * np.exp(-gamma * r / n) - 1.0, -1.0)


def accumulate(values: np.ndarray, boxes: np.ndarray, side: int | tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Sum per pixel of the values of the boxes covering it, and how many boxes cover it.

    A difference array and two cumulative sums: O(N + side²) per row of `values`, exact for
    integer values (float64 throughout).

    Args:
        values: (C, N) one value per box for each of C maps.
        boxes: (N, 4) int boxes (x0, y0, x1, y1), exclusive ends, inside the canvas.
        side: side of the square canvas, or its (H, W).

    Returns:
        sums (C, H, W) float64 and counts (H, W) int64.
    """
    values = np.atleast_2d(np.asarray(values, dtype=np.float64))
    x0, y0, x1, y1 = (boxes[:, i] for i in range(4))
    hgt, wid = (side, side) if np.isscalar(side) else side
    w = wid + 1
    corners = [(y0 * w + x0, 1.0), (y0 * w + x1, -1.0), (y1 * w + x0, -1.0), (y1 * w + x1, 1.0)]

    def integrate(weights: np.ndarray) -> np.ndarray:
        diff = sum(sign * np.bincount(k, weights=weights, minlength=(hgt + 1) * w) for k, sign in corners)
        return diff.reshape(hgt + 1, w).cumsum(0).cumsum(1)[:hgt, :wid]

    sums = np.stack([integrate(v) for v in values])
    counts = np.rint(integrate(np.ones(len(boxes)))).astype(np.int64)
    return sums, counts


def normalise(maps: np.ndarray, invert: bool) -> np.ndarray:
    """Min-max each (H, W) map of a (C, H, W) stack to [0, 1]; a flat map becomes all zeros."""
    lo = maps.min(axis=(-2, -1), keepdims=True)
    hi = maps.max(axis=(-2, -1), keepdims=True)
    span = np.where(hi > lo, hi - lo, 1.0)
    out = (hi - maps) / span if invert else (maps - lo) / span
    return np.where(hi > lo, out, 0.0).astype(np.float32)


def resize_maps(maps: np.ndarray, size: int | tuple[int, int]) -> np.ndarray:
    """Bilinear resize of an (h, w) map or a (C, h, w) stack to (H, W) (an int: square); float32 in [0, 1].

    PIL's bilinear filter: plain bilinear when enlarging, and when shrinking (a small display,
    a crop under 224 px) its support widens to cover every source pixel, so a thin peak is
    averaged in, not skipped as by 4-tap bilinear (`F.interpolate` without antialias).
    """
    m = np.asarray(maps, dtype=np.float32)
    hw = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
    if m.shape[-2:] == hw:
        return m
    flat = m.reshape(-1, *m.shape[-2:])  # (C, h, w)
    out = np.stack([np.asarray(Image.fromarray(np.ascontiguousarray(x)).resize(hw[::-1], Image.Resampling.BILINEAR))
                    for x in flat])  # mode "F": float32 in and out
    return np.clip(out, 0.0, 1.0).reshape(*m.shape[:-2], *hw)


def grid_maps(
    values: np.ndarray,
    boxes: np.ndarray,
    side: int | tuple[int, int],
    pad: int,
    size: int | tuple[int, int],
    higher_is_better: bool,
) -> np.ndarray:
    """Algorithm 1's map: per-pixel mean over covering windows, central crop, min-max.

    Args:
        values: (C, N) window scores: ranks (lower is better) or gamma scores (higher is better).
        boxes: (N, 4) boxes in padded pixels.
        side: padded side P (or its (H + 2 pad, W + 2 pad)); pad: border width; size: central
            image side S (or its (H, W), the whole picture).

    Returns:
        (C, S, S) or (C, H, W) float32 maps in [0, 1], high = concept present.
    """
    sums, counts = accumulate(values, boxes, side)
    h, w = (size, size) if np.isscalar(size) else size
    centre = np.s_[..., pad : pad + h, pad : pad + w]
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = sums[centre] / counts[centre]
    if (counts[centre] == 0).any():
        raise ValueError("some central pixels are covered by no window; check the window settings")
    return normalise(mean, invert=not higher_is_better)


def scale_schedule(cfg: StochasticConfig) -> np.ndarray:
    """(iterations,) window side per iteration of the reference's sampler.

    The reference adds the accumulator into the global map and resets it after every
    `reset_every` iterations, and at the first reset at an iteration j >= iterations / 2 - 1
    (0-based) it switches from scales[0] to scales[-1]: 600 iterations give 300 + 300, 500 give
    300 + 200 (not 250 + 250).
    """
    sides = np.full(cfg.iterations, cfg.scales[0], dtype=np.int64)
    for j in range(cfg.reset_every - 1, cfg.iterations, cfg.reset_every):
        if j >= cfg.iterations / 2 - 1:
            sides[j + 1 :] = cfg.scales[-1]
            break
    return sides


def stochastic_map(
    score_box: Callable[[tuple[int, int, int, int]], float],
    cfg: StochasticConfig,
    size: int | tuple[int, int] = 224,
    pad: int = 128,
    progress: Callable[[int, int], None] | None = None,
) -> np.ndarray:
    """The reference's adaptive sampler: windows drawn where the evidence has been high so far.

    Args:
        score_box: returns a score in [-1, 1] (gamma score) for a box (x0, y0, x1, y1) in padded
            pixels. Called `cfg.iterations` times, in sequence.
        cfg: sampler settings; `cfg.seed` makes it reproducible.
        size: image side S inside the border, or (H, W) for a whole picture.
        progress: called with (done, iterations) after each iteration; an exception it raises
            stops the run (that is how a caller cancels).

    Returns:
        (S, S) or (H, W) float32 map in [0, 1].
    """
    rng = np.random.default_rng(cfg.seed)
    h, w = (size, size) if np.isscalar(size) else size
    shape = (h + 2 * pad, w + 2 * pad)
    # Corners in [0, P - max B) keep every window inside, at both sizes (the reference's 352).
    ly, lx = shape[0] - max(cfg.scales), shape[1] - max(cfg.scales)
    acc = np.ones(shape)
    total = np.zeros(shape)
    for it, b in enumerate(scale_schedule(cfg)):
        p = acc[:ly, :lx].ravel()
        y, x = divmod(int(rng.choice(p.size, p=p / p.sum())), lx)
        acc[y : y + b, x : x + b] *= 1.0 + cfg.epsilon * score_box((x, y, x + int(b), y + int(b)))
        if (it + 1) % cfg.reset_every == 0:
            total += acc
            acc[:] = 1.0
        if progress is not None:
            progress(it + 1, cfg.iterations)
    return normalise(total[None, pad : pad + h, pad : pad + w], invert=False)[0]


def subtree_best_ranks(ranks: np.ndarray, order: Sequence[int], children: Sequence[Sequence[int]]) -> np.ndarray:
    """Best rank inside hypo*(s) for every concept s at once, by dynamic programming on the DAG.

    Args:
        ranks: (N, T) ranks.
        order: concept indices, children before parents.
        children: children[s] = indices of s's children inside T.

    Returns:
        (N, T) best rank in each concept's subtree.
    """
    best = np.ascontiguousarray(ranks.T)  # (T, N): one contiguous row per concept
    for s in order:
        kids = children[s]
        if len(kids):
            np.minimum(best[s], best[list(kids)].min(axis=0), out=best[s])
    return best.T


def surprise(best: np.ndarray, sizes: np.ndarray, num_concepts: int) -> np.ndarray:
    """-log P(best rank in a random subset of that size <= observed), per window and concept.

    Under "ranks carry no information" the best rank of an m-concept subtree is at most r with
    probability 1 - (1 - (r + 1) / T)^m. A root whose subtree holds everything scores ~0.5 nats
    for rank 0; a single concept at rank 0 scores log T. So the score favours specific concepts
    over trivial ancestors without hand-made stop lists.

    Args:
        best: (N, T) best subtree ranks; sizes: (T,) subtree sizes; num_concepts: T.

    Returns:
        (N, T) float64 surprise in nats, about 1 on average when nothing is there.
    """
    frac = np.minimum((best.astype(np.float64) + 1.0) / num_concepts, 1.0)
    p = -np.expm1(sizes[None, :] * np.log1p(-np.minimum(frac, 1.0 - 1e-12)))
    return -np.log(np.maximum(p, 1e-300))
