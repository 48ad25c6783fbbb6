"""Concept bank: CLIP text embeddings of the concepts T, `(T, D)` unit rows, cached on disk.

The texts are encoded by `convis.clip.text` (length-bucketed, checked against the padded forward).
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import Tensor

from convis.cache import LRU, read_cached, write_cached
from convis.config import Progress, cache_root
from convis.clip.models import Clip
from convis.clip.text import encode_texts_bucketed

_log = logging.getLogger(__name__)

SEEKS = ("definitions", "lemmas")
_BANKS: LRU[tuple[str, str], Bank] = LRU(max_items=4)  # in-process cache: (disk key, device) -> Bank


def forget_bank(bank: Bank) -> None:
    """Drop a bank from the in-process cache (the app does so when it evicts the bank's engine)."""
    for key in list(_BANKS):
        if _BANKS.get(key) is bank:
            _BANKS.evict(key)


@dataclass(frozen=True)
class Bank:
    """Embeddings of every concept of a hierarchy; row i is `hierarchy.ids[i]`."""

    embeddings: Tensor  # (T, D) float32 unit rows on clip.device
    model_id: str
    vocabulary: str
    seek: str  # "definitions" or "lemmas"
    wordnet_version: str


def bank_texts(hierarchy: Any, seek: str = "definitions") -> list[str]:
    """The text embedded for each concept, in hierarchy order.

    "definitions" is the paper's default: the WordNet gloss, raw, without a prompt template.
    "lemmas" ("seek type = lemmas") joins the lemma names with ", ", underscores as spaces
    ("hot_dog", "frank" -> "hot dog, frank"), so every synonym is in one prompt.
    """
    if seek == "definitions":
        glosses = getattr(hierarchy, "glosses", None)
        return list(glosses) if glosses is not None else [hierarchy.gloss(i) for i in range(len(hierarchy))]
    if seek == "lemmas":
        return [", ".join(x.replace("_", " ") for x in hierarchy.lemmas(i)) for i in range(len(hierarchy))]
    raise ValueError(f"unknown seek '{seek}'; use one of {', '.join(SEEKS)}")


def bank_key(model_id: str, vocabulary: str, wordnet_version: str, seek: str,
             texts: list[str], precision: str = "float32") -> tuple[str, dict[str, str]]:
    """Disk-cache key (sha1 hex) and the metadata it hashes.

    The precision is part of it: an fp16 bank differs from an fp32 one by ~1e-3, enough to
    swap near-tied ranks.
    """
    meta = {"model_id": model_id, "vocabulary": vocabulary, "wordnet_version": wordnet_version, "seek": seek,
            "texts_sha1": hashlib.sha1("\n".join(texts).encode()).hexdigest(), "count": str(len(texts)),
            "precision": precision}
    return hashlib.sha1(json.dumps(meta, sort_keys=True).encode()).hexdigest(), meta


def load_bank(clip: Clip, hierarchy: Any, seek: str = "definitions", cache_dir: Path | None = None,
              progress: Progress | None = None, batch_size: int = 256) -> Bank:
    """Concept bank of `hierarchy` for `clip`, from memory, disk, or computed (then saved).

    Args:
        clip: the model.
        hierarchy: the concepts T (`len`, `ids`, `gloss(i)`, `lemmas(i)`, `vocabulary`, `wordnet_version`).
        seek: "definitions" (glosses, the paper's default) or "lemmas".
        cache_dir: cache root; default $CONVIS_CACHE or ~/.cache/convis. Files go to `<root>/banks/`.
        progress: called with (done, total) while encoding.
        batch_size: texts per forward.
    """
    from safetensors.torch import load_file, save_file

    texts = bank_texts(hierarchy, seek)
    vocab, version = str(hierarchy.vocabulary), str(hierarchy.wordnet_version)
    precision = str(clip.dtype).replace("torch.", "")
    key, meta = bank_key(clip.model_id, vocab, version, seek, texts, precision)
    if (key, str(clip.device)) in _BANKS:  # memory first, whatever cache_dir says
        return _BANKS[(key, str(clip.device))]
    path = (cache_dir or cache_root()) / "banks" / f"{key}.safetensors"
    emb = read_cached(path, lambda p: load_file(p, device=str(clip.device))["embeddings"], "bank")
    if emb is not None and emb.shape[0] != len(texts):
        emb = None
    if emb is None:
        _log.info("encoding %d %s for %s", len(texts), seek, clip.model_id)
        emb = encode_texts_bucketed(texts, clip, batch_size, progress)
        cpu = emb.contiguous().cpu()
        write_cached(path, lambda tmp: save_file({"embeddings": cpu}, tmp, metadata=meta), "bank")
    elif progress:
        progress(len(texts), len(texts))
    bank = Bank(emb, clip.model_id, vocab, seek, version)
    _BANKS[(key, str(clip.device))] = bank
    return bank
