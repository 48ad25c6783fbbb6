"""CLIP text encoding of many short texts (the concept bank's glosses), fast and checked.

Glosses are short and the built-in CLIP text tower is causal with end-of-text pooling, so the
pooled token never sees the padding after it: batches of length-sorted texts cut to their own
longest sequence give the padded result for a fraction of the 77-token cost. That shortcut
mirrors open_clip internals, so it is checked against the model's own `encode_text` once per
model, and the plain padded path is used where they differ.
"""

from __future__ import annotations

import logging
import weakref

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from convis.config import Progress
from convis.clip.models import Clip

_log = logging.getLogger(__name__)

_PROBES = ("dog", "a small open container usually used for drinking; usually has a handle",
           "a member of the genus Canis (probably descended from the common wolf) that has been "
           "domesticated by man since prehistoric times; occurs in many breeds")
_AGREES: weakref.WeakKeyDictionary[nn.Module, bool] = weakref.WeakKeyDictionary()  # model -> verdict


def _truncation_agrees(clip: Clip) -> bool:
    """Does `encode_text_truncated` give this model's own `encode_text` results? Checked once per
    model on a few glosses of different lengths, each cut to its own length. It mirrors open_clip
    3.3 internals, so a tower it cannot drive (not causal, pooled elsewhere, a newer open_clip)
    fails here and takes the padded path."""
    if clip.model in _AGREES:
        return _AGREES[clip.model]
    tokens = _tokenize(list(_PROBES), clip)
    lengths = tokens.shape[1] - (tokens != 0).flip(1).int().argmax(1)  # last non-pad position + 1
    tol = 1e-4 if clip.dtype == torch.float32 else 2e-2  # half precision rounds differently per length
    try:
        with torch.inference_mode():
            cut = torch.cat([encode_text_truncated(clip.model, t[None, :int(n)].to(clip.device))
                             for t, n in zip(tokens, lengths)])
        ok = bool((F.normalize(cut.float(), dim=-1) - clip.encode_text(tokens)).abs().max() <= tol)
    except (AttributeError, TypeError, RuntimeError, IndexError) as e:  # a tower it cannot drive
        _log.info("cut-padding text encoding does not apply to %s: %s", clip.model_id, e)
        ok = False
    if not ok:
        _log.info("text tower of %s differs from the cut-padding path; using padded batches", clip.model_id)
    _AGREES[clip.model] = ok
    return ok


def encode_text_truncated(model: nn.Module, text: Tensor) -> Tensor:
    """open_clip 3.3.0 `CLIP.encode_text` for (N, L) tokens with L < context length; unnormalised.

    Public because the synthetic model's training script encodes its texts the same way.
    Only used where `_truncation_agrees` found it equal to the model's own `encode_text`.
    """
    from open_clip.transformer import text_global_pool

    n_ctx = text.shape[1]
    cast_dtype = model.transformer.get_cast_dtype()
    x = model.token_embedding(text).to(cast_dtype)  # (N, L, W)
    x = x + model.positional_embedding[:n_ctx].to(cast_dtype)
    x = model.transformer(x, attn_mask=model.attn_mask[:n_ctx, :n_ctx])  # handles batch_first itself
    x = model.ln_final(x)
    x = text_global_pool(x, text, model.text_pool_type, eos_token_id=getattr(model, "text_eos_id", None))
    proj = model.text_projection
    if proj is not None:
        x = proj(x) if isinstance(proj, nn.Linear) else x @ proj
    return x  # (N, D)


def _tokenize(texts: list[str], clip: Clip) -> Tensor:
    # open_clip's tokenizers truncate to the context length and put the end token back last.
    return clip.tokenizer(texts, context_length=clip.context_length)  # (T, context_length)


def _buckets(order: Tensor, lengths: Tensor, batch_size: int, token_budget: int) -> list[Tensor]:
    """Split length-sorted (longest first) indices into batches of at most `batch_size` texts and
    `token_budget` padded tokens: long texts go in small batches, short ones in large ones, so
    little compute is spent on padding."""
    out, start = [], 0
    while start < len(order):
        longest = int(lengths[order[start]])
        size = max(1, min(batch_size, token_budget // max(longest, 1)))
        out.append(order[start:start + size])
        start += size
    return out


def encode_texts_bucketed(texts: list[str], clip: Clip, batch_size: int = 256,
                          progress: Progress | None = None, token_budget: int = 2048) -> Tensor:
    """Encode texts in length-sorted batches cut to each batch's longest sequence.

    Args:
        texts: raw strings, truncated to the model's context length.
        clip: the model.
        batch_size: most texts per forward.
        token_budget: most padded tokens per forward (batch size x its longest text).
        progress: called with (done, total) after each batch.

    Returns:
        (T, D) float32 unit rows in the order of `texts`, on clip.device.
    """
    if not texts:
        raise ValueError("no texts to encode")
    if not _truncation_agrees(clip):
        return encode_texts_padded(texts, clip, batch_size, progress)
    tokens = _tokenize(texts, clip)
    # Last non-zero position + 1: pad id is 0, the end token is non-zero and comes last.
    lengths = tokens.shape[1] - (tokens != 0).flip(1).int().argmax(1)  # (T,)
    order = torch.argsort(lengths, descending=True, stable=True)  # longest first: peak memory early
    out: Tensor | None = None
    done = 0
    with torch.inference_mode():
        for idx in _buckets(order, lengths, batch_size, token_budget):
            batch = tokens[idx, :int(lengths[idx].max())].to(clip.device)  # (B, L)
            emb = F.normalize(encode_text_truncated(clip.model, batch).float(), dim=-1)  # (B, D)
            if out is None:
                out = torch.empty(len(texts), emb.shape[1], device=clip.device)
            out[idx.to(clip.device)] = emb
            done += len(idx)
            if progress:
                progress(done, len(texts))
    assert out is not None
    return out


def encode_texts_padded(texts: list[str], clip: Clip, batch_size: int = 256,
                        progress: Progress | None = None) -> Tensor:
    """Reference encoder: plain `encode_text` on full context-length batches. (T, D) float32 unit rows."""
    if not texts:
        raise ValueError("no texts to encode")
    tokens = _tokenize(texts, clip)
    parts = []
    for start in range(0, len(texts), batch_size):
        parts.append(clip.encode_text(tokens[start:start + batch_size]))
        if progress:
            progress(min(start + batch_size, len(texts)), len(texts))
    return torch.cat(parts)
