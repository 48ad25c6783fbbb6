"""Step 2 of indexing a dataset: encode every window of a few images, score them, once.

`IndexWorker` is a callable class (Ray Data runs one per GPU actor; the local engine calls it in
a loop). It feeds the encoder windows of several images per forward (K x 730 rows fill a GPU),
keeps each window's unit embedding in the store's dtype, and pools image-level concept scores
from those kept embeddings, so `--rescore` later gives the very same numbers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from convis.config import GridConfig, Progress
from convis.dataset.prepare import Prepared
from convis.engine import Engine
from convis.index import image_scores
from convis.store.shards import Row
from convis.windows import crop_windows

DTYPES = {"float16": torch.float16, "float32": torch.float32}


@dataclass(frozen=True)
class Encoded:
    """What one batch of images gives: a shard's rows and tensors, and their scores.

    Attributes:
        rows: the images, in order.
        window_emb: (sum of windows, D) unit window embeddings in the store's dtype, on the CPU.
        image_emb: (n, D) unit embeddings of each region's centre square.
        scores: (n, T) float32 image-level concept scores.
    """

    rows: list[Row]
    window_emb: torch.Tensor
    image_emb: torch.Tensor
    scores: np.ndarray


def score_embeddings(emb: torch.Tensor, bank: torch.Tensor, weights: np.ndarray, ctx: image_scores.ScoreContext,
                     pool: image_scores.ImageScore) -> np.ndarray:
    """(N, D) kept window embeddings of one image -> (T,) image-level scores (on the bank's device)."""
    sims = emb.to(bank.device, torch.float32) @ bank.float().T  # (N, T)
    return pool(sims, weights, ctx)


class IndexWorker:
    """Encode and score prepared images with one loaded engine.

    Args:
        engine: the loaded model, concept set and bank.
        config: the grid (its pad gives each window's share of image).
        batch_size: windows per forward, across images.
        score: the image-level pooling ("top1", "surprise": `convis.index.image_scores`).
        dtype: "float16" or "float32", how window embeddings are kept.
    """

    def __init__(self, engine: Engine, config: GridConfig, batch_size: int = 256, score: str = "top1",
                 dtype: str = "float16") -> None:
        self.engine, self.config, self.batch_size, self.dtype = engine, config, batch_size, DTYPES[dtype]
        self.pool = image_scores.image_score(score)
        self.context = image_scores.ScoreContext.of(engine.hierarchy)

    def score(self, emb: torch.Tensor, boxes: np.ndarray, grid: tuple[int, int]) -> np.ndarray:
        """(N, D) kept embeddings of one image -> (T,) scores."""
        weights = image_scores.window_weights(boxes, self.config.pad, grid)
        return score_embeddings(emb, self.engine.bank.embeddings, weights, self.context, self.pool)

    def __call__(self, batch: Sequence[Prepared], progress: Progress | None = None) -> Encoded:
        clip = self.engine.clip
        device = self.engine.bank.embeddings.device
        pixels = [torch.from_numpy(p.padded).to(device, non_blocking=True) for p in batch]
        spans = np.cumsum([0] + [len(p.boxes) for p in batch])  # image i owns rows spans[i]:spans[i + 1]
        total, parts = int(spans[-1]), []
        for start in range(0, total, self.batch_size):  # windows of several images per forward
            stop = min(start + self.batch_size, total)
            crops = [crop_windows(pixels[i], batch[i].boxes[max(start, lo) - lo : min(stop, hi) - lo],
                                  clip.image_size, clip.mean, clip.std)
                     for i, (lo, hi) in enumerate(zip(spans[:-1], spans[1:])) if max(start, lo) < min(stop, hi)]
            emb = F.normalize(clip.encode_image(torch.cat(crops)).float(), dim=-1)  # (n, D)
            parts.append(emb.to("cpu", self.dtype))
            if progress is not None:
                progress(stop, total)
        flat = torch.cat(parts)  # (total, D)
        window_emb = [flat[lo:hi] for lo, hi in zip(spans[:-1], spans[1:])]
        centre = torch.cat([crop_windows(px, np.asarray([_centre_square(p)]), clip.image_size, clip.mean, clip.std)
                            for px, p in zip(pixels, batch)])
        image_emb = F.normalize(clip.encode_image(centre).float(), dim=-1).to("cpu", self.dtype)
        scores = np.stack([self.score(e, p.boxes, p.grid) for e, p in zip(window_emb, batch)])
        rows = [Row(p.sha256, p.item.path, p.size, p.crop, p.grid, len(p.boxes), p.item.label) for p in batch]
        return Encoded(rows, flat, image_emb, scores)


def _centre_square(p: Prepared) -> tuple[int, int, int, int]:
    """The centre square of the mapped region, in padded pixels (the whole-image embedding's input)."""
    (h, w), pad = p.grid, (p.padded.shape[1] - p.grid[0]) // 2
    side = min(h, w)
    x0, y0 = pad + (w - side) // 2, pad + (h - side) // 2
    return (x0, y0, x0 + side, y0 + side)
