"""Step 2 of indexing a dataset: encode every window of a few images, score them, once.

`IndexWorker` is a callable class (Ray Data runs one per GPU actor; the local engine calls it in
a loop). It feeds the encoder windows of several images per forward (K x 730 rows fill a GPU),
keeps each window's unit embedding in the store's dtype, and pools image-level concept scores
from those kept embeddings, on the device, so `--rescore` later gives the very same numbers.
`WorkerRecipe` rebuilds a worker in another process from the model's name and the bank.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch
import torch.nn.functional as F

from convis.clip.bank import Bank
from convis.clip.models import load_model
from convis.concepts.hierarchy import Hierarchy
from convis.config import GridConfig, Progress
from convis.dataset.prepare import Prepared
from convis.engine import Engine
from convis.index import image_scores
from convis.store.shards import Row
from convis.windows import crop_windows

DTYPES = {"float16": torch.float16, "float32": torch.float32}
AUTOCAST = {"fp16": torch.float16, "bf16": torch.bfloat16}


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


def autocast_dtype(device: torch.device, precision: str) -> torch.dtype | None:
    """The autocast dtype of a model in `precision` on `device`: fp16/bf16 on CUDA, else None (off).

    The weights are already fp16/bf16; autocast runs layer norms and softmax in fp32 on top, which
    costs little and keeps the maps closer to fp32's. On a CPU it stays off: slower there.
    """
    return AUTOCAST.get(precision) if device.type == "cuda" else None


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """`torch.autocast` as `autocast_dtype` says, or a no-op."""
    dtype = autocast_dtype(device, precision)
    return torch.autocast(device.type, dtype=dtype) if dtype is not None else contextlib.nullcontext()


def to_device(pixels: np.ndarray, device: torch.device) -> torch.Tensor:
    """Host pixels on `device`; on CUDA through page-locked memory, so the copy does not block."""
    t = torch.from_numpy(pixels)
    if device.type == "cuda":
        return t.pin_memory().to(device, non_blocking=True)
    return t.to(device)


class IndexWorker:
    """Encode and score prepared images with one loaded engine.

    Args:
        engine: the loaded model, concept set and bank.
        config: the grid (its pad gives each window's share of image).
        batch_size: windows per forward, across images.
        score: the image-level pooling ("top1", "surprise": `convis.index.image_scores`).
        dtype: "float16" or "float32", how window embeddings are kept.
        images_per_forward: K > 0 puts the windows of K whole images in each forward (K x 730
            rows: 4 fill a GPU), instead of `batch_size` windows.
    """

    def __init__(self, engine: Engine, config: GridConfig, batch_size: int = 256, score: str = "top1",
                 dtype: str = "float16", images_per_forward: int = 0) -> None:
        self.engine, self.config, self.batch_size, self.dtype = engine, config, batch_size, DTYPES[dtype]
        self.score_name, self.images_per_forward = score, images_per_forward
        self.pool = image_scores.image_score(score)
        self.context = image_scores.ScoreContext.of(engine.hierarchy)

    def score(self, emb: torch.Tensor, boxes: np.ndarray, grid: tuple[int, int]) -> np.ndarray:
        """(N, D) kept embeddings of one image -> (T,) scores."""
        weights = image_scores.window_weights(boxes, self.config.pad, grid)
        return score_embeddings(emb, self.engine.bank.embeddings, weights, self.context, self.pool)

    def bounds(self, spans: np.ndarray) -> list[int]:
        """Row bounds of the forwards over a batch whose image i owns rows spans[i]:spans[i + 1]."""
        total = int(spans[-1])
        cuts = spans[:: self.images_per_forward] if self.images_per_forward > 0 else range(0, total, self.batch_size)
        return sorted({int(c) for c in cuts} | {0, total})

    def __call__(self, batch: Sequence[Prepared], progress: Progress | None = None) -> Encoded:
        clip = self.engine.clip
        device = self.engine.bank.embeddings.device
        pixels = [to_device(p.padded, device) for p in batch]
        spans = np.cumsum([0] + [len(p.boxes) for p in batch])  # image i owns rows spans[i]:spans[i + 1]
        bounds, parts = self.bounds(spans), []
        for start, stop in zip(bounds[:-1], bounds[1:]):  # windows of several images per forward
            crops = [crop_windows(pixels[i], batch[i].boxes[max(start, lo) - lo : min(stop, hi) - lo],
                                  clip.image_size, clip.mean, clip.std)
                     for i, (lo, hi) in enumerate(zip(spans[:-1], spans[1:])) if max(start, lo) < min(stop, hi)]
            with autocast(device, clip.precision):
                emb = clip.encode_image(torch.cat(crops))
            parts.append(F.normalize(emb.float(), dim=-1).to(self.dtype))  # kept as stored, still on the device
            if progress is not None:
                progress(stop, bounds[-1])
        kept = torch.cat(parts)  # (total, D)
        # scores from the kept (store-dtype) rows, on the device: what --rescore recomputes later
        scores = np.stack([self.score(kept[lo:hi], p.boxes, p.grid)
                           for lo, hi, p in zip(spans[:-1], spans[1:], batch)])
        centre = torch.cat([crop_windows(px, np.asarray([_centre_square(p)]), clip.image_size, clip.mean, clip.std)
                            for px, p in zip(pixels, batch)])
        with autocast(device, clip.precision):
            image_emb = F.normalize(clip.encode_image(centre).float(), dim=-1).to("cpu", self.dtype)
        rows = [Row(p.sha256, p.item.path, p.size, p.crop, p.grid, len(p.boxes), p.item.label) for p in batch]
        return Encoded(rows, kept.cpu(), image_emb, scores)


@dataclass(frozen=True)
class WorkerRecipe:
    """What rebuilds an `IndexWorker` in another process (a Ray actor), concept bank included.

    The model is loaded there by name: the weights come from that node's cache or checkpoint
    path, and a seeded random init is the same everywhere. The hierarchy and the bank travel as
    they are (the bank on the CPU), so no node re-encodes the glosses: 7,156 for "physical".
    """

    model: str
    pretrained: str
    precision: str
    hierarchy: Hierarchy
    bank: Bank
    config: GridConfig
    batch_size: int
    score: str
    dtype: str
    images_per_forward: int

    @classmethod
    def of(cls, worker: IndexWorker) -> WorkerRecipe:
        clip, bank = worker.engine.clip, worker.engine.bank
        dtype = next(k for k, v in DTYPES.items() if v == worker.dtype)
        return cls(clip.name, clip.pretrained, clip.precision, worker.engine.hierarchy,
                   replace(bank, embeddings=bank.embeddings.cpu()), worker.config, worker.batch_size,
                   worker.score_name, dtype, worker.images_per_forward)

    def __call__(self, device: str = "auto") -> IndexWorker:
        """The worker, its model on `device` in the recipe's precision (the store's)."""
        clip = load_model(self.model, self.pretrained, device=device, precision=self.precision)
        bank = replace(self.bank, embeddings=self.bank.embeddings.to(clip.device))
        return IndexWorker(Engine(clip, self.hierarchy, bank), self.config, self.batch_size, self.score,
                           self.dtype, self.images_per_forward)


def _centre_square(p: Prepared) -> tuple[int, int, int, int]:
    """The centre square of the mapped region, in padded pixels (the whole-image embedding's input)."""
    (h, w), pad = p.grid, (p.padded.shape[1] - p.grid[0]) // 2
    side = min(h, w)
    x0, y0 = pad + (w - side) // 2, pad + (h - side) // 2
    return (x0, y0, x0 + side, y0 + side)
