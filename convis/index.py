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

from convis import cosine
from convis import saliency as sal
from convis.chains import collapse_chains as collapse_chains_of
from convis.config import GridConfig, Progress, StochasticConfig
from convis.hierarchy import Hierarchy
from convis.windows import (CropBox, crop_windows, grid_boxes, map_shape, pad_with_noise, prepare_image,
                            prepare_whole)

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


def encode_windows(
    padded: torch.Tensor,
    boxes: np.ndarray,
    encode: Encoder,
    concepts: torch.Tensor,
    spec: InputSpec,
    batch_size: int = 64,
    progress: Progress | None = None,
) -> tuple[np.ndarray, torch.Tensor]:
    """Encode every window, rank all concepts for it and keep its embedding.

    Args:
        padded: (3, H, W) image in [0, 1], on the device the encoder wants.
        boxes: (N, 4) window boxes in padded pixels.
        encode: image encoder, (n, 3, S, S) -> (n, D); rows need not be normalised.
        concepts: (T, D) unit rows, on the encoder's device.

    Returns:
        (N, T) ranks, 0 = most similar, int16 (int32 beyond 32,768 concepts), on the CPU; and
        (N, D) unit window embeddings, float16 on the CPU (N x D x 2 bytes: 0.73 MB for 730 x 512).
    """
    ranks = np.empty((len(boxes), concepts.shape[0]), dtype=sal.rank_dtype(concepts.shape[0]))
    kept: list[torch.Tensor] = []
    with torch.inference_mode():
        for start in range(0, len(boxes), batch_size):
            stop = min(start + batch_size, len(boxes))
            crops = crop_windows(padded, boxes[start:stop], spec.size, spec.mean, spec.std)
            emb = F.normalize(encode(crops).float(), dim=-1)  # (n, D)
            ranks[start:stop] = sal.rank_matrix(emb @ concepts.float().T).cpu().numpy()
            kept.append(emb.to("cpu", torch.float16))
            if progress is not None:
                progress(stop, len(boxes))
    return ranks, torch.cat(kept)


@dataclass(frozen=True, eq=False)
class ImageIndex:
    """Ranks of every concept for every window of one image, and how to turn them into maps.

    Attributes:
        ranks: (N, T) ranks, 0 = most similar.
        boxes: (N, 4) windows (x0, y0, x1, y1) in padded pixels.
        hierarchy: the concept set T; column i of `ranks` is `hierarchy.ids[i]`.
        crop: where the mapped region lies in the original image (the centre square, or the
            whole image with `config.whole`).
        config: the grid settings used.
        padded: (3, h + 2 pad, w + 2 pad) the exact pixels the windows saw (noise border included).
        model_id: which model made it.
        embeddings: (N, D) unit window embeddings, float16 on the CPU (730 x D x 2 bytes), for
            maps of free text and the raw ablation; None when not kept.
    """

    ranks: np.ndarray
    boxes: np.ndarray
    hierarchy: Hierarchy
    crop: CropBox
    config: GridConfig
    padded: torch.Tensor
    model_id: str = ""
    embeddings: torch.Tensor | None = None
    _cache: dict = field(default_factory=dict, repr=False)

    @property
    def grid_shape(self) -> tuple[int, int]:
        """(h, w) of the indexed image inside the noise border: (S, S), or the whole picture's."""
        p = self.config.pad
        return (self.padded.shape[1] - 2 * p, self.padded.shape[2] - 2 * p)

    @property
    def image(self) -> np.ndarray:
        """The (h, w, 3) uint8 image that was indexed: the centre crop (S, S) or the whole picture."""
        p, (h, w) = self.config.pad, self.grid_shape
        centre = self.padded[:, p : p + h, p : p + w].permute(1, 2, 0)
        return (centre * 255.0).round().to(torch.uint8).cpu().numpy()

    def _score(self, best: np.ndarray, subtree_size: int) -> np.ndarray:
        """Window ranks as the configured score: the rank itself, or the gamma score."""
        if self.config.score == "rank":
            return best
        if self.config.score == "gamma":
            return sal.gamma_score(best, self.config.gamma_n or subtree_size, self.config.gamma)
        raise ValueError(f"unknown score {self.config.score!r}; use 'rank' or 'gamma'")

    def window_scores(self, concept: str) -> np.ndarray:
        """(N,) each window's score for a concept: best rank in its subtree, or gamma score."""
        sub = self.hierarchy.subtree(concept)
        return self._score(sal.best_rank(self.ranks, sub), len(sub))

    def map_shape(self, size: int | tuple[int, int] | None = None) -> tuple[int, int]:
        """(H, W) of maps at `size`; see `convis.windows.map_shape`."""
        return map_shape(self.crop.shape, self.grid_shape, size)

    def _maps(self, values: np.ndarray, higher_is_better: bool, size: int | tuple[int, int] | None) -> np.ndarray:
        """(C, N) window values -> (C, H, W) maps: the accumulation shared by every map kind."""
        (h, w), p = self.grid_shape, self.config.pad
        maps = sal.grid_maps(values, self.boxes, (h + 2 * p, w + 2 * p), p, (h, w), higher_is_better)
        return sal.resize_maps(maps, self.map_shape(size))

    def saliency_many(self, concepts: Sequence[str], size: int | tuple[int, int] | None = None) -> np.ndarray:
        """Maps for several concepts.

        Args:
            concepts: synset names (or anything `Hierarchy.resolve` accepts).
            size: see `map_shape`: None = the region's size in the original image, 0 = native.

        Returns:
            (C, H, W) float32 in [0, 1], high = concept present; H = W for the centre square.
        """
        values = np.stack([self.window_scores(c) for c in concepts])  # (C, N)
        return self._maps(values, self.config.score == "gamma", size)

    def saliency(self, concept: str, size: int | tuple[int, int] | None = None) -> np.ndarray:
        """The ConVis map of one concept: (H, W) float32 in [0, 1]; see `saliency_many`."""
        return self.saliency_many([concept], size)[0]

    # ---- maps from the kept window embeddings (free text, raw ablation) ---------------------
    def _embeddings(self) -> torch.Tensor:
        if self.embeddings is None:
            raise ValueError("this index kept no window embeddings; rebuild it with build_index/index_image")
        return self.embeddings

    def text_saliency_many(self, embeddings: torch.Tensor, bank: torch.Tensor,
                           size: int | tuple[int, int] | None = None) -> np.ndarray:
        """(P, H, W) ConVis maps of free-text phrases (P, D) or (D,), with no new image pass.

        Per window, a phrase's rank among T plus the phrase (`convis.cosine.phrase_ranks`, against
        `bank`, the (T, D) concepts the index was ranked with), accumulated like a leaf's rank.
        """
        ranks = cosine.phrase_ranks(self._embeddings(), bank, torch.atleast_2d(embeddings))
        return self._maps(self._score(ranks, 1), self.config.score == "gamma", size)

    def text_saliency(self, embedding: torch.Tensor, bank: torch.Tensor,
                      size: int | tuple[int, int] | None = None) -> np.ndarray:
        """The ConVis map of one phrase embedding (D,): (H, W); see `text_saliency_many`."""
        return self.text_saliency_many(embedding, bank, size)[0]

    def raw_saliency_many(self, concepts: Sequence[str], bank: torch.Tensor,
                          size: int | tuple[int, int] | None = None) -> np.ndarray:
        """(C, H, W) raw-cosine ablation maps: window-to-gloss cosine, best over the subtree, no
        rank (`convis.cosine.raw_scores`), accumulated and min-max normalised like ConVis maps."""
        subtrees = [self.hierarchy.subtree(c) for c in concepts]
        return self._maps(cosine.raw_scores(self._embeddings(), bank, subtrees), True, size)
    # ---- end of maps from embeddings ---------------------------------------------------------

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
        p, (hgt, wid) = self.config.pad, self.grid_shape
        b = self.boxes
        w = np.clip(np.minimum(b[:, 2], p + wid) - np.maximum(b[:, 0], p), 0, None)
        h = np.clip(np.minimum(b[:, 3], p + hgt) - np.maximum(b[:, 1], p), 0, None)
        return (w * h) / ((b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1]))

    def top_concepts(self, k: int = 20, collapse_chains: bool = False) -> list:
        """The k concepts the image shows most, best first.

        Returns:
            (synset name, score) pairs; with `collapse_chains`, (synset, score, context) triples
            where single-child ancestor chains are shown once, as their most specific concept,
            and context holds the folded ancestors nearest first (see `convis.chains`).
        """
        scores = self.concept_scores()
        if collapse_chains:
            return collapse_chains_of(self.hierarchy, scores, k)
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
        image: RGB image of any size; the centre square is used, or the whole picture with
            `config.whole` (short side resized to `config.image_size`).
        encode: (n, 3, S, S) -> (n, D) image encoder.
        concepts: (T, D) unit rows in `hierarchy` order, on the encoder's device.
    """
    if concepts.shape[0] != len(hierarchy):
        raise ValueError(
            f"the concept bank has {concepts.shape[0]} rows but the hierarchy has {len(hierarchy)} "
            "concepts; build the bank from the same vocabulary"
        )
    if config.whole:
        pixels, crop = prepare_whole(image, config.image_size, config.max_aspect)
    else:
        pixels, crop = prepare_image(image, config.image_size)
    padded = pad_with_noise(pixels, config.pad, config.seed)
    boxes = grid_boxes(config, pixels.shape[:2])
    ranks, emb = encode_windows(padded.to(concepts.device), boxes, encode, concepts, spec, batch_size, progress)
    return ImageIndex(ranks, boxes, hierarchy, crop, config, padded, embeddings=emb)


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
    progress: Progress | None = None,
) -> np.ndarray:
    """The reference's stochastic map for one concept, on the index's padded pixels.

    Sequential: `config.iterations` single-window forwards, `progress(done, total)` after each
    (an exception it raises stops the run). Returns (h, w) float32 in [0, 1]: (S, S), or the
    whole picture's grid shape.
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

    return sal.stochastic_map(score_box, config, index.grid_shape, index.config.pad, progress)
