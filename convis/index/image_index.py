"""The image index: each window's rank of every concept of T, and the maps drawn from it.

`convis.index.build` builds it (one pass of CLIP over the windows). `ImageIndex.saliency` then needs
no model: a min over a subtree's columns and one box accumulation, a few milliseconds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from convis.index import cosine, image_scores
from convis import saliency as sal
from convis.concepts.chains import collapse_chains as collapse_chains_of
from convis.config import GridConfig
from convis.concepts.hierarchy import Hierarchy
from convis.windows import CropBox, map_shape


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
        precision: the encoder's precision ("fp32", "fp16", "bf16", "int8"): int8 and fp32 share a
            model_id, not their maps.
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
    precision: str = ""
    _cache: dict = field(default_factory=dict, repr=False)

    @property
    def complete(self) -> bool:
        """True: every window is indexed (a `convis.index.progressive.PartialIndex` may not be)."""
        return True

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

        Per window, a phrase's rank among T plus the phrase (`convis.index.cosine.phrase_ranks`, against
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
        rank (`convis.index.cosine.raw_scores`), accumulated and min-max normalised like ConVis maps."""
        subtrees = [self.hierarchy.subtree(c) for c in concepts]
        return self._maps(cosine.raw_scores(self._embeddings(), bank, subtrees), True, size)

    def raw_text_saliency_many(self, embeddings: torch.Tensor,
                               size: int | tuple[int, int] | None = None) -> np.ndarray:
        """(P, H, W) raw-cosine maps of free-text phrases (P, D) or (D,): each window's cosine to the
        phrase (`convis.index.cosine.text_scores`), no rank, accumulated like the raw concept maps."""
        return self._maps(cosine.text_scores(self._embeddings(), torch.atleast_2d(embeddings)), True, size)
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
            weights = image_scores.window_weights(self.boxes, self.config.pad, self.grid_shape)
            self._cache["scores"] = image_scores.surprise_score(best, weights, h.subtree_sizes().astype(np.float64))
        return self._cache["scores"]

    def image_overlap(self) -> np.ndarray:
        """(N,) share of each window's area that lies on the image rather than on the noise."""
        return image_scores.window_overlap(self.boxes, self.config.pad, self.grid_shape)

    def top_concepts(self, k: int = 20, collapse_chains: bool = False) -> list:
        """The k concepts the image shows most, best first.

        Returns:
            (synset name, score) pairs; with `collapse_chains`, (synset, score, context) triples
            where single-child ancestor chains are shown once, as their most specific concept,
            and context holds the folded ancestors nearest first (see `convis.concepts.chains`).
        """
        scores = self.concept_scores()
        if collapse_chains:
            return collapse_chains_of(self.hierarchy, scores, k)
        top = np.argsort(-scores, kind="stable")[:k]
        return [(self.hierarchy.ids[i], float(scores[i])) for i in top]
