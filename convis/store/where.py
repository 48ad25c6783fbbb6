"""Where in a stored image a concept or phrase is: its map, from kept window embeddings only.

Pure: embeddings and the bank in, maps out; no image, no forward, no rank matrix. A window's
best rank over a subtree is the count of concepts of T whose cosine beats the subtree's best
cosine (equal to `rank_matrix`'s when cosines do not tie), so one (N, T) product per image
serves every concept asked of it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from convis import saliency as sal
from convis.config import GridConfig
from convis.windows import grid_boxes, map_shape


def subtree_ranks(embeddings: torch.Tensor, bank: torch.Tensor, subtrees: Sequence[np.ndarray]) -> np.ndarray:
    """(N, D) unit windows, (T, D) unit concepts -> (C, N) int64 best rank over each subtree."""
    with torch.inference_mode():
        sims = embeddings.to(bank.device, torch.float32) @ bank.float().T  # (N, T)
        rows = []
        for sub in subtrees:
            best = sims[:, torch.as_tensor(np.array(sub), device=sims.device)].amax(dim=1, keepdim=True)
            rows.append((sims > best).sum(dim=1))
        return torch.stack(rows).cpu().numpy().astype(np.int64)


def window_values(ranks: np.ndarray, config: GridConfig, subtree_sizes: Sequence[int]) -> np.ndarray:
    """(C, N) best ranks -> (C, N) the map's window values (ranks, or the gamma score)."""
    if config.score == "gamma":
        return np.stack([sal.gamma_score(r, config.gamma_n or n, config.gamma) for r, n in zip(ranks, subtree_sizes)])
    return ranks


def stored_maps(values: np.ndarray, config: GridConfig, grid: tuple[int, int], region: tuple[int, int],
                higher_is_better: bool, size: int | tuple[int, int] | None = None) -> np.ndarray:
    """(C, N) window values of a stored image -> (C, H, W) maps in [0, 1], as `ImageIndex` draws them.

    Args:
        grid: (h, w) the region at grid scale; region: (H, W) in the original image.
        size: as in `ImageIndex.saliency` (None = the region's size, 0 = native).
    """
    p = config.pad
    boxes = grid_boxes(config, grid)
    maps = sal.grid_maps(values, boxes, (grid[0] + 2 * p, grid[1] + 2 * p), p, grid, higher_is_better)
    return sal.resize_maps(maps, map_shape(region, grid, size))
