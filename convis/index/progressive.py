"""Progressive indexing: the same windows as `index_image`, encoded coarse to fine.

The schedule and the partial index live here; `convis.index.build.iter_index` runs them.

Windows are ordered in stages so that each stage completes a coarser grid: by default 128 px
windows at stride 64 (36 of 730, 5 %), then 128 px at stride 32 (121, 17 %), then 64 px at
stride 32 (202, 28 %), then the rest. After each stage the snapshot is a valid index: its maps
are the mean over the covering windows indexed so far, and its top concepts come from them. The
first stage covers every pixel of the image, so a map can be drawn after ~5 % of the work. The
last snapshot holds every window in `grid_boxes` order with the ranks `index_image` gives.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from convis import saliency as sal
from convis.config import GridConfig
from convis.index.image_index import ImageIndex
from convis.windows import grid_boxes


@dataclass(frozen=True)
class Stage:
    """One coarse grid: the windows of side `scale` whose corners lie on a `stride` grid."""

    scale: int
    stride: int


# Measured on the synthetic world (median Pearson r of the stage's map with the full map):
# 0.83 after stage 1, 0.96 after stage 2, 0.97 after stage 3.
DEFAULT_SCHEDULE: tuple[Stage, ...] = (Stage(128, 64), Stage(128, 32), Stage(64, 32))


@dataclass(frozen=True, eq=False)
class PartialIndex(ImageIndex):
    """An `ImageIndex` over the windows indexed so far, and how far it is.

    `ranks` and `boxes` hold only the windows done (in `grid_boxes` order); every map and score
    method of `ImageIndex` works on them. `complete` is True for the final snapshot.
    """

    stage: int = 0  # stages done, 1-based
    stages: int = 0  # stages in the schedule
    total: int = 0  # windows of the full index
    smooth: int = 0  # box-blur side (px) of a partial map: its grid's stride; 0 = none (complete)

    @property
    def done(self) -> int:
        """Windows indexed so far."""
        return len(self.boxes)

    @property
    def complete(self) -> bool:
        return self.done == self.total

    @property
    def fraction(self) -> float:
        """Share of the full index's windows done, in [0, 1]."""
        return self.done / self.total if self.total else 1.0

    def describe(self) -> str:
        """E.g. "stage 2 of 4 (121 of 730 windows)"."""
        return f"stage {self.stage} of {self.stages} ({self.done} of {self.total} windows)"

    def _maps(self, values: np.ndarray, higher_is_better: bool,
              size: int | tuple[int, int] | None) -> np.ndarray:
        """As `ImageIndex._maps` (every map kind); a partial map is box-blurred over its grid's stride.

        A coarse grid's mean map is piecewise constant on stride-sized cells; blurring over a cell
        spreads each window's evidence like the finer grid would. On the synthetic world it lifts
        the first stage's median r with the full map from 0.83 to 0.94 and its pointing from 0.44
        to 0.61 (8 scenes). The complete index is not blurred: it is exactly today's map.
        """
        if not self.smooth:
            return super()._maps(values, higher_is_better, size)
        native = super()._maps(values, higher_is_better, 0)  # (C, h, w)
        return sal.resize_maps(sal.normalise(box_blur(native, self.smooth), invert=False), self.map_shape(size))


def box_blur(maps: np.ndarray, k: int) -> np.ndarray:
    """Mean over a k x k box around each pixel of (C, H, W) maps, edges repeated: (C, H, W) float64.

    The box spans [i - k // 2, i + k - k // 2 - 1] (scipy's `uniform_filter`, mode "nearest").
    """
    lo, hi, (h, w) = k // 2, k - 1 - k // 2, maps.shape[-2:]
    padded = np.pad(maps.astype(np.float64), ((0, 0), (lo, hi), (lo, hi)), mode="edge")
    c = np.pad(padded, ((0, 0), (1, 0), (1, 0))).cumsum(axis=1).cumsum(axis=2)  # summed-area table
    return (c[:, k:k + h, k:k + w] - c[:, :h, k:k + w] - c[:, k:k + h, :w] + c[:, :h, :w]) / (k * k)


def _scale_rows(config: GridConfig, shape: tuple[int, int] | None) -> list[np.ndarray]:
    """Rows of `grid_boxes(config, shape)` at each scale (it lays them out scale by scale)."""
    counts = [len(grid_boxes(dataclasses.replace(config, scales=(b,)), shape)) for b in config.scales]
    edges = np.cumsum([0, *counts])
    return [np.arange(a, b) for a, b in zip(edges[:-1], edges[1:])]


def stage_rows(config: GridConfig, schedule: Sequence[Stage] = DEFAULT_SCHEDULE,
               padded_shape: tuple[int, int] | None = None) -> list[np.ndarray]:
    """Rows of `grid_boxes(config, shape)` first encoded at each stage; the last stage takes the rest.

    `padded_shape`: (H, W) of the noise-padded image (None: the centre square's); the image inside
    is (H - 2 pad, W - 2 pad).

    A stage's grid starts at its scale's first corner, so its rows are nested in any finer grid
    of the same scale; a stage adds only the windows not taken before. Empty stages are dropped.

    Raises:
        ValueError: a stage's scale is not in the config, its stride is not a multiple of the
            config's, or the first stage leaves some pixel of the image uncovered.
    """
    p = config.pad
    shape = None if padded_shape is None else (int(padded_shape[0]) - 2 * p, int(padded_shape[1]) - 2 * p)
    boxes = grid_boxes(config, shape)
    by_scale = dict(zip(config.scales, _scale_rows(config, shape)))
    taken = np.zeros(len(boxes), dtype=bool)
    out: list[np.ndarray] = []
    for st in schedule:
        if st.scale not in by_scale or st.stride % config.stride:
            raise ValueError(f"stage {st} does not fit the grid: use a scale of {config.scales} and a "
                             f"stride that is a multiple of {config.stride}")
        rows = by_scale[st.scale]
        x0, y0 = boxes[rows, 0], boxes[rows, 1]
        on_grid = ((x0 - x0.min()) % st.stride == 0) & ((y0 - y0.min()) % st.stride == 0)
        new = rows[on_grid & ~taken[rows]]
        taken[new] = True
        if len(new):
            out.append(new)
    if len(rest := np.flatnonzero(~taken)):
        out.append(rest)
    _check_covers(boxes[out[0]], config.pad, shape or (config.image_size, config.image_size))
    return out


def _check_covers(boxes: np.ndarray, pad: int, shape: tuple[int, int]) -> None:
    h, w = shape
    _, counts = sal.accumulate(np.zeros((1, len(boxes))), boxes, (h + 2 * pad, w + 2 * pad))
    if (counts[pad:pad + h, pad:pad + w] == 0).any():
        raise ValueError("the first stage leaves part of the image uncovered; give it a smaller stride")


def stage_smoothing(schedule: Sequence[Stage], stage: int) -> int:
    """Blur side of a partial map after `stage` (1-based) stages: the finest stride done so far."""
    return min(st.stride for st in schedule[:stage]) if schedule else 0


def restrict(index: ImageIndex, rows: np.ndarray, stage: int = 0, stages: int = 0,
             smooth: int = 0) -> PartialIndex:
    """The index as if only the windows `rows` (ascending, of `index.boxes`) had been encoded."""
    fields = {f.name: getattr(index, f.name) for f in dataclasses.fields(ImageIndex)}
    emb = None if index.embeddings is None else index.embeddings[torch.from_numpy(np.asarray(rows))]
    fields.update(ranks=index.ranks[rows], boxes=index.boxes[rows], embeddings=emb, _cache={})
    return PartialIndex(**fields, stage=stage, stages=stages, total=len(index.boxes),
                        smooth=0 if len(rows) == len(index.boxes) else smooth)
