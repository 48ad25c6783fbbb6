"""How alike two saliency maps are: Spearman rank correlation and SSIM, the measures of the
sanity checks (Adebayo et al. 2018, "Sanity Checks for Saliency Maps").

Both take two (H, W) maps of any range and return a float in [-1, 1], 1 for identical maps.
Spearman compares only the pixels' order; SSIM compares local brightness, contrast and
structure of the maps normalised to [0, 1], so two maps that are both dark almost everywhere
score high on it even when their few bright spots differ.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


def average_ranks(x: np.ndarray) -> np.ndarray:
    """(N,) values -> (N,) float64 ranks from 1, tied values sharing the mean of their ranks."""
    x = np.asarray(x).ravel()
    order = np.argsort(x, kind="stable")
    sorted_x = x[order]
    # Runs of equal values: each run's ranks i..j (1-based) are replaced by their mean (i + j) / 2.
    starts = np.flatnonzero(np.r_[True, sorted_x[1:] != sorted_x[:-1]])
    ends = np.r_[starts[1:], x.size]  # exclusive
    mean_rank = (starts + 1 + ends) / 2.0
    ranks = np.empty(x.size, dtype=np.float64)
    ranks[order] = np.repeat(mean_rank, ends - starts)
    return ranks


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman's rho of two equal-shape maps over their pixels: Pearson's r of the average ranks.

    A flat map has no ranking to share, so it scores 0 (where scipy would return NaN).
    """
    ra, rb = average_ranks(a), average_ranks(b)
    if ra.shape != rb.shape:
        raise ValueError(f"maps of different shapes {np.shape(a)} and {np.shape(b)}")
    ra, rb = ra - ra.mean(), rb - rb.mean()
    den = np.sqrt((ra * ra).sum() * (rb * rb).sum())
    return float((ra * rb).sum() / den) if den > 0 else 0.0


def unit_range(m: np.ndarray) -> np.ndarray:
    """(H, W) map min-max normalised to [0, 1] as float64; a flat map becomes all zeros."""
    m = np.asarray(m, dtype=np.float64)
    lo, hi = m.min(), m.max()
    return (m - lo) / (hi - lo) if hi > lo else np.zeros_like(m)


def gaussian_window(size: int = 11, sigma: float = 1.5) -> np.ndarray:
    """(size,) float64 1-D Gaussian weights summing to 1 (the 2-D window is its outer product)."""
    c = np.arange(size, dtype=np.float64) - (size - 1) / 2
    w = np.exp(-0.5 * (c / sigma) ** 2)
    return w / w.sum()


def _filter_valid(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """(H, W) -> (H - k + 1, W - k + 1): the separable window w applied where it fits wholly
    (MATLAB's filter2(..., 'valid') in Wang's reference code)."""
    x = sliding_window_view(x, w.size, axis=1) @ w
    return sliding_window_view(x, w.size, axis=0) @ w


def ssim(a: np.ndarray, b: np.ndarray, size: int = 11, sigma: float = 1.5,
         k1: float = 0.01, k2: float = 0.03) -> float:
    """Mean structural similarity (Wang, Bovik, Sheikh & Simoncelli 2004) of two (H, W) maps.

    Each map is first min-max normalised to [0, 1] (`unit_range`), so the dynamic range L is 1
    and C1 = (k1 L)^2, C2 = (k2 L)^2. Local means, variances and the covariance are Gaussian
    weighted (window `size`, `sigma`: the paper's 11 and 1.5) over the positions where the window
    fits wholly; the result is the mean of the SSIM map there. Identical maps score 1.
    """
    x, y = unit_range(a), unit_range(b)
    if x.shape != y.shape or min(x.shape) < size:
        raise ValueError(f"SSIM needs two maps of one shape, each side >= {size}: {x.shape}, {y.shape}")
    w = gaussian_window(size, sigma)
    c1, c2 = k1 ** 2, k2 ** 2
    mx, my = _filter_valid(x, w), _filter_valid(y, w)
    vx = _filter_valid(x * x, w) - mx * mx
    vy = _filter_valid(y * y, w) - my * my
    cxy = _filter_valid(x * y, w) - mx * my
    s = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
    return float(s.mean())
