"""Asking a store: which images show a concept (or a phrase) most, and where in each.

The ranked list reads one contiguous row of scores per segment (milliseconds at 100k images);
"where" rebuilds each hit's map from its stored window embeddings (`convis.store.where`), with no
image forward. A phrase has no stored score: its candidates are the images whose whole-image
embedding is closest, re-ranked by window evidence (the share of windows where the phrase is
among the `k` best descriptions of T plus itself).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch

from convis.concepts.hierarchy import Hierarchy
from convis.config import GridConfig
from convis.index import cosine, image_scores
from convis.store import scores as sc
from convis.store.shards import read_image_emb
from convis.store.spec import ConceptSet, Hit, StoreError
from convis.store.where import stored_maps, subtree_ranks, window_values

if TYPE_CHECKING:
    from PIL import Image

    from convis.index.image_index import ImageIndex
    from convis.store.store import Store

DEFAULT_SCORE = "top1"  # the pooling `convis index` stores: it won on the synthetic world (README, "Datasets")
SHORTLIST = 500  # phrase search: whole-image candidates re-ranked by their windows


def concept_set_for(store: Store, hierarchy: Hierarchy, score: str | None = None) -> ConceptSet:
    """The stored scores of this exact concept set; a StoreError naming the fix when there are none."""
    for name in ([score] if score else [DEFAULT_SCORE, "surprise"]):
        cs = ConceptSet(sc.score_key(hierarchy.vocabulary, hierarchy.ids, name), hierarchy.vocabulary, name,
                        len(hierarchy))
        if (store.root / sc.SCORES / cs.key / "concepts.json").is_file():
            return cs
    have = ", ".join(f"{c.vocabulary} ({c.score})" for c in store.concept_sets()) or "none"
    raise StoreError(f"the store has no scores for the vocabulary {hierarchy.vocabulary!r} (it has: {have}); "
                     f"add them with: convis index --rescore {store.root} --vocabulary {hierarchy.vocabulary}")


def search_concept(store: Store, hierarchy: Hierarchy, concept: str, k: int = 20, score: str | None = None) -> list[Hit]:
    """The k stored images that show `concept` most, best first."""
    cs = concept_set_for(store, hierarchy, score)
    hashes, values = sc.concept_row(store.root / sc.SCORES / cs.key, hierarchy.index(hierarchy.resolve(concept)))
    hits: list[Hit] = []
    for i in np.argsort(-values, kind="stable"):  # best first; scores of images no longer stored are skipped
        if hashes[i] in store:
            row = store.row(hashes[i])
            hits.append(Hit(row.sha256, row.path, float(values[i]), row.label))
            if len(hits) == k:
                break
    return hits


def search_text(store: Store, phrase: torch.Tensor, bank: torch.Tensor, k: int = 20, topk: int = 1,
                shortlist: int = SHORTLIST) -> list[Hit]:
    """The k stored images that show a phrase (D,) unit embedding most, best first."""
    hashes, embs = [], []
    for name, rows in store.shards().items():
        hashes += [r.sha256 for r in rows]
        embs.append(read_image_emb(store.root / "shards" / name))
    if not hashes:
        return []
    cos = (torch.cat(embs).float() @ phrase.float().cpu()).numpy()  # (N,)
    first = {h: i for i, h in reversed(list(enumerate(hashes)))}
    order = [i for i in np.argsort(-cos, kind="stable") if first[hashes[i]] == i][:max(shortlist, k)]
    hits = []
    for i in order:
        row = store.row(hashes[i])
        ranks = cosine.phrase_ranks(store.windows(row.sha256), bank, phrase[None])[0]  # (N,)
        weights = image_scores.window_weights(_boxes(store, row), store.spec.grid_config().pad, row.grid)
        hits.append(Hit(row.sha256, row.path, float(weights @ (ranks < topk)), row.label))
    return sorted(hits, key=lambda h: -h.score)[:k]


def _boxes(store: Store, row) -> np.ndarray:
    from convis.windows import grid_boxes

    return grid_boxes(store.spec.grid_config(), row.grid)


def concept_maps(store: Store, sha256: str, bank: torch.Tensor, hierarchy: Hierarchy, concepts: Sequence[str],
                 config: GridConfig | None = None, size: int | tuple[int, int] | None = None) -> np.ndarray:
    """(C, H, W) ConVis maps of concepts on a stored image, from its window embeddings alone."""
    config = config or store.spec.grid_config()
    _check(store, config, bank, hierarchy)
    row = store.row(sha256)
    subtrees = [hierarchy.subtree(hierarchy.resolve(c)) for c in concepts]
    ranks = subtree_ranks(store.windows(sha256), bank, subtrees)
    values = window_values(ranks, config, [len(s) for s in subtrees])
    return stored_maps(values, config, row.grid, (row.crop[3], row.crop[2]), config.score == "gamma", size)


def phrase_maps(store: Store, sha256: str, bank: torch.Tensor, phrases: torch.Tensor,
                config: GridConfig | None = None, size: int | tuple[int, int] | None = None) -> np.ndarray:
    """(P, H, W) ConVis maps of (P, D) phrase embeddings on a stored image (rank among T plus the phrase)."""
    config = config or store.spec.grid_config()
    row = store.row(sha256)
    ranks = cosine.phrase_ranks(store.windows(sha256), bank, torch.atleast_2d(phrases))
    values = window_values(ranks, config, [1] * len(ranks))
    return stored_maps(values, config, row.grid, (row.crop[3], row.crop[2]), config.score == "gamma", size)


def _check(store: Store, config: GridConfig, bank: torch.Tensor, hierarchy: Hierarchy) -> None:
    if bank.shape[0] != len(hierarchy):
        raise ValueError(f"the bank has {bank.shape[0]} rows but the hierarchy {len(hierarchy)} concepts")
    if bank.shape[1] != store.spec.dim:
        raise StoreError(f"the store holds {store.spec.dim}-d embeddings ({store.spec.model_id}); "
                         f"this model's are {bank.shape[1]}-d: load {store.spec.model_id}")
    diff = store.spec.differences(type(store.spec).make(store.spec.model_id, store.spec.precision, config,
                                                         store.spec.dim, store.spec.dtype))
    if diff:
        raise StoreError("these grid settings differ from the store's: " + "; ".join(diff))


def stored_image(store: Store, sha256: str) -> Image.Image:
    """The stored image's original file, decoded; a file that moved or changed since it was indexed
    is refused (StoreError): its windows would not be its pixels."""
    from convis.dataset.prepare import file_digest
    from convis.image import load_image

    row = store.row(sha256)
    try:
        digest, data = file_digest(row.path)
    except OSError:
        digest, data = "", b""
    if digest != sha256:
        raise StoreError(f"'{row.path}' is gone or changed since it was indexed; its maps are still in the store "
                         "(convis search --maps), but an index needs the original file")
    return load_image(data)


def stored_index(store: Store, sha256: str, engine, image: Image.Image | None = None) -> ImageIndex:
    """The stored image as an `ImageIndex` equal to `Engine.index`'s (ranks rebuilt, no forward).

    The pixels (`ImageIndex.image`, the stochastic map) come from `image`, the file already read by
    the caller and checked against `sha256`, else from `stored_image`. Ranks are exact with a
    float32 store and within float16 rounding otherwise.
    """
    from convis.index.build import prepare_grid
    from convis.index.image_index import ImageIndex
    from convis.saliency import rank_dtype, rank_matrix

    if engine.clip.model_id != store.spec.model_id:
        raise StoreError(f"the store was made with {store.spec.model_id}, not {engine.clip.model_id}; load that model")
    image = stored_image(store, sha256) if image is None else image
    config = store.spec.grid_config()
    padded, crop, boxes = prepare_grid(image, config)
    emb = store.windows(sha256)
    bank = engine.bank.embeddings
    ranks = np.empty((len(boxes), bank.shape[0]), dtype=rank_dtype(bank.shape[0]))
    with torch.inference_mode():
        for a in range(0, len(boxes), 64):  # the direct path's blocks: the same products, the same ranks
            ranks[a : a + 64] = rank_matrix(emb[a : a + 64].to(bank.device, torch.float32) @ bank.float().T).cpu().numpy()
    return ImageIndex(ranks, boxes, engine.hierarchy, crop, config, padded, engine.clip.model_id,
                      embeddings=emb.to(torch.float16), precision=store.spec.precision)
