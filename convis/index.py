"""The image index: one pass of CLIP over the windows serves every concept of the hierarchy.

`build_index` encodes the windows once and keeps each window's rank of every concept in T.
`ImageIndex.saliency` then needs no model: it is a min over a subtree's columns and one box
accumulation, a few milliseconds.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from convis import saliency as sal
from convis.config import GridConfig, Progress, StochasticConfig
from convis.hierarchy import Hierarchy
from convis.windows import CropBox, crop_windows, grid_boxes, pad_with_noise, prepare_image

if TYPE_CHECKING:
    from convis.bank import Bank
    from convis.models import Clip

Encoder = Callable[[torch.Tensor], torch.Tensor]  # (N, 3, S, S) normalised -> (N, D)


@dataclass(frozen=True)
class InputSpec:
    """What the encoder expects: input side S and per-channel normalisation."""

    size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]


def encode_ranks(
    padded: torch.Tensor,
    boxes: np.ndarray,
    encode: Encoder,
    concepts: torch.Tensor,
    spec: InputSpec,
    batch_size: int = 64,
    progress: Progress | None = None,
) -> np.ndarray:
    """Encode every window and rank all concepts for it.

    Args:
        padded: (3, P, P) image in [0, 1], on the device the encoder wants.
        boxes: (N, 4) window boxes in padded pixels.
        encode: image encoder, (n, 3, S, S) -> (n, D); rows need not be normalised.
        concepts: (T, D) unit rows, on the encoder's device.

    Returns:
        (N, T) ranks, 0 = most similar, int16 (int32 beyond 32,768 concepts), on the CPU.
    """
    ranks = np.empty((len(boxes), concepts.shape[0]), dtype=sal.rank_dtype(concepts.shape[0]))
    with torch.inference_mode():
        for start in range(0, len(boxes), batch_size):
            stop = min(start + batch_size, len(boxes))
            crops = crop_windows(padded, boxes[start:stop], spec.size, spec.mean, spec.std)
            emb = F.normalize(encode(crops).float(), dim=-1)  # (n, D)
            ranks[start:stop] = sal.rank_matrix(emb @ concepts.float().T).cpu().numpy()
            if progress is not None:
                progress(stop, len(boxes))
    return ranks


@dataclass(frozen=True, eq=False)
class ImageIndex:
    """Ranks of every concept for every window of one image, and how to turn them into maps.

    Attributes:
        ranks: (N, T) ranks, 0 = most similar.
        boxes: (N, 4) windows (x0, y0, x1, y1) in padded pixels.
        hierarchy: the concept set T; column i of `ranks` is `hierarchy.ids[i]`.
        crop: where the mapped square lies in the original image.
        config: the grid settings used.
        padded: (3, P, P) the exact pixels the windows saw (noise border included).
        model_id: which model made it.
    """

    ranks: np.ndarray
    boxes: np.ndarray
    hierarchy: Hierarchy
    crop: CropBox
    config: GridConfig
    padded: torch.Tensor
    model_id: str = ""
    _cache: dict = field(default_factory=dict, repr=False)

    @property
    def image(self) -> np.ndarray:
        """The (S, S, 3) uint8 centre crop that was indexed."""
        p, s = self.config.pad, self.config.image_size
        centre = self.padded[:, p : p + s, p : p + s].permute(1, 2, 0)
        return (centre * 255.0).round().to(torch.uint8).cpu().numpy()

    def window_scores(self, concept: str) -> np.ndarray:
        """(N,) each window's score for a concept: best rank in its subtree, or gamma score."""
        sub = self.hierarchy.subtree(concept)
        best = sal.best_rank(self.ranks, sub)
        if self.config.score == "rank":
            return best
        if self.config.score == "gamma":
            return sal.gamma_score(best, self.config.gamma_n or len(sub), self.config.gamma)
        raise ValueError(f"unknown score {self.config.score!r}; use 'rank' or 'gamma'")

    def saliency_many(self, concepts: Sequence[str], size: int | None = None) -> np.ndarray:
        """Maps for several concepts.

        Args:
            concepts: synset names (or anything `Hierarchy.resolve` accepts).
            size: output side; None = the crop's side in the original image, 0 = native (S).

        Returns:
            (C, size, size) float32 in [0, 1], high = concept present.
        """
        values = np.stack([self.window_scores(c) for c in concepts])  # (C, N)
        cfg = self.config
        maps = sal.grid_maps(
            values, self.boxes, cfg.padded_size, cfg.pad, cfg.image_size, cfg.score == "gamma"
        )
        return maps if size == 0 else sal.resize_maps(maps, self.crop.side if size is None else size)

    def saliency(self, concept: str, size: int | None = None) -> np.ndarray:
        """The ConVis map of one concept: (size, size) float32 in [0, 1]; see `saliency_many`."""
        return self.saliency_many([concept], size)[0]

    def concept_scores(self) -> np.ndarray:
        """(T,) how strongly the image shows each concept, in nats.

        The mean over windows, weighted by how much of each window is image rather than noise, of
        `saliency.surprise`: how unlikely the concept's best subtree rank would be if ranks were
        random. Specific concepts beat their trivial ancestors. Cached.
        """
        if "scores" not in self._cache:
            h = self.hierarchy
            best = sal.subtree_best_ranks(self.ranks, h.topological_order(), h.child_index)
            sizes = h.subtree_sizes().astype(np.float64)
            weights = self.image_overlap()  # mostly-noise windows say little about the image
            weights = weights / weights.sum()
            cols = range(0, len(h), 4096)  # chunks bound the float64 temporaries
            self._cache["scores"] = np.concatenate(
                [weights @ sal.surprise(best[:, i : i + 4096], sizes[i : i + 4096], len(h)) for i in cols]
            )
        return self._cache["scores"]

    def image_overlap(self) -> np.ndarray:
        """(N,) share of each window's area that lies on the image rather than on the noise."""
        lo, hi = self.config.pad, self.config.pad + self.config.image_size
        b = self.boxes
        w = np.clip(np.minimum(b[:, 2], hi) - np.maximum(b[:, 0], lo), 0, None)
        h = np.clip(np.minimum(b[:, 3], hi) - np.maximum(b[:, 1], lo), 0, None)
        return (w * h) / ((b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1]))

    def top_concepts(self, k: int = 20) -> list[tuple[str, float]]:
        """The k concepts the image shows most, as (synset name, score), best first."""
        scores = self.concept_scores()
        top = np.argsort(-scores, kind="stable")[:k]
        return [(self.hierarchy.ids[i], float(scores[i])) for i in top]


def index_image(
    image: Image.Image,
    encode: Encoder,
    concepts: torch.Tensor,
    hierarchy: Hierarchy,
    spec: InputSpec,
    config: GridConfig = GridConfig(),
    batch_size: int = 64,
    progress: Progress | None = None,
) -> ImageIndex:
    """Index an image with any encoder (the seam tests use with fake encoders).

    Args:
        image: RGB image of any size; the centre square is used.
        encode: (n, 3, S, S) -> (n, D) image encoder.
        concepts: (T, D) unit rows in `hierarchy` order, on the encoder's device.
    """
    if concepts.shape[0] != len(hierarchy):
        raise ValueError(
            f"the concept bank has {concepts.shape[0]} rows but the hierarchy has {len(hierarchy)} "
            "concepts; build the bank from the same vocabulary"
        )
    pixels, crop = prepare_image(image, config.image_size)
    padded = pad_with_noise(pixels, config.pad, config.seed)
    boxes = grid_boxes(config)
    ranks = encode_ranks(padded.to(concepts.device), boxes, encode, concepts, spec, batch_size, progress)
    return ImageIndex(ranks, boxes, hierarchy, crop, config, padded)


def build_index(
    image: Image.Image,
    clip: Clip,
    bank: Bank,
    hierarchy: Hierarchy,
    config: GridConfig = GridConfig(),
    batch_size: int = 64,
    progress: Progress | None = None,
) -> ImageIndex:
    """Index an image with a loaded CLIP and its concept bank (730 forwards with the defaults)."""
    if bank.vocabulary != hierarchy.vocabulary:
        raise ValueError(
            f"bank is for vocabulary {bank.vocabulary!r} but the hierarchy is {hierarchy.vocabulary!r}"
        )
    spec = InputSpec(clip.image_size, clip.mean, clip.std)
    idx = index_image(image, clip.encode_image, bank.embeddings, hierarchy, spec, config, batch_size, progress)
    return dataclasses.replace(idx, model_id=clip.model_id)


def stochastic_saliency(
    index: ImageIndex,
    concept: str,
    encode: Encoder,
    concepts: torch.Tensor,
    spec: InputSpec,
    config: StochasticConfig = StochasticConfig(),
) -> np.ndarray:
    """The reference's stochastic map for one concept, on the index's padded pixels.

    Sequential: `config.iterations` single-window forwards. Returns (S, S) float32 in [0, 1].
    """
    sub = index.hierarchy.subtree(concept)
    n = config.gamma_n or len(sub)
    padded = index.padded.to(concepts.device)

    def score_box(box: tuple[int, int, int, int]) -> float:
        with torch.inference_mode():
            crop = crop_windows(padded, np.asarray([box]), spec.size, spec.mean, spec.std)
            emb = F.normalize(encode(crop).float(), dim=-1)
            ranks = sal.rank_matrix(emb @ concepts.float().T).cpu().numpy()
        return float(sal.gamma_score(sal.best_rank(ranks, sub), n, config.gamma)[0])

    return sal.stochastic_map(score_box, config, index.config.image_size, index.config.pad)
