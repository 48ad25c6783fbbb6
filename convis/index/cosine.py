"""Window-to-text cosines from the index's kept window embeddings: phrases and the raw ablation.

Pure functions: tensors in, arrays out, no model. The index keeps each window's unit embedding
(N, D) in half precision, so a new text needs only its own embedding, never a new image pass.

* A phrase p outside T gets, per window, the rank it would have among T plus p: how many
  concepts of T the window prefers to it (0 = the window likes p best). It is then accumulated
  like a leaf concept's rank.
* The raw ablation drops the rank: a window's score for a concept is its best cosine to the
  glosses of the concept's subtree, and for a phrase its cosine to the phrase.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

_CHUNK = 1024  # windows per block: bounds the (n, T) float32 temporary (1024 x 7156 x 4 = 29 MB)


def similarities(embeddings: torch.Tensor, texts: torch.Tensor) -> torch.Tensor:
    """(N, K) float32 cosines of unit window rows (N, D) to unit text rows (K, D), on `texts`' device."""
    return embeddings.to(texts.device, torch.float32) @ texts.float().T


def phrase_ranks(embeddings: torch.Tensor, bank: torch.Tensor, phrases: torch.Tensor) -> np.ndarray:
    """Each phrase's rank among T plus itself, per window.

    Args:
        embeddings: (N, D) unit window embeddings.
        bank: (T, D) unit concept embeddings.
        phrases: (P, D) unit phrase embeddings.

    Returns:
        (P, N) int64: how many concepts of T each window finds strictly more similar than the phrase.
    """
    if phrases.shape[-1] != bank.shape[-1] or embeddings.shape[-1] != bank.shape[-1]:
        raise ValueError(f"embedding sizes differ: windows {embeddings.shape[-1]}, concepts {bank.shape[-1]}, "
                         f"phrases {phrases.shape[-1]}; use the model that built the index")
    out = np.empty((phrases.shape[0], embeddings.shape[0]), dtype=np.int64)
    with torch.inference_mode():
        for start in range(0, embeddings.shape[0], _CHUNK):
            block = embeddings[start : start + _CHUNK]
            to_t = similarities(block, bank)  # (n, T)
            to_p = similarities(block, phrases.to(bank.device))  # (n, P)
            for j in range(phrases.shape[0]):
                out[j, start : start + len(block)] = (to_t > to_p[:, j : j + 1]).sum(dim=1).cpu().numpy()
    return out


def raw_scores(embeddings: torch.Tensor, bank: torch.Tensor, subtrees: Sequence[np.ndarray]) -> np.ndarray:
    """The raw ablation's window scores: best cosine over each concept's subtree.

    Args:
        embeddings: (N, D) unit window embeddings.
        bank: (T, D) unit concept embeddings.
        subtrees: per concept, the bank rows of hypo*(s).

    Returns:
        (C, N) float64 cosines, higher = more similar.
    """
    with torch.inference_mode():
        rows = [similarities(embeddings, bank[torch.as_tensor(np.array(s), device=bank.device)]).amax(dim=1)
                for s in subtrees]
        return torch.stack(rows).double().cpu().numpy()


def text_scores(embeddings: torch.Tensor, texts: torch.Tensor) -> np.ndarray:
    """The raw ablation's window scores for free text: (P, N) float64 cosines of (N, D) unit windows
    to (P, D) unit phrase embeddings, higher = more similar."""
    if texts.shape[-1] != embeddings.shape[-1]:
        raise ValueError(f"embedding sizes differ: windows {embeddings.shape[-1]}, phrases {texts.shape[-1]}; "
                         "use the model that built the index")
    with torch.inference_mode():
        return similarities(embeddings, texts).T.double().cpu().numpy()
