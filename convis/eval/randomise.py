"""Model-parameter randomisation (Adebayo et al. 2018): a copy of a CLIP model whose image tower
has some blocks re-drawn from the distributions the model was initialised with.

Blocks of an open_clip VisionTransformer, output first (`encoder_blocks`):

* ``head``: the final LayerNorm, the attention pooler if any, and the projection into the
  joint space;
* ``block{L-1}`` ... ``block0``: the transformer's residual blocks;
* ``embed``: the patch convolution, class token, learned position embedding and pre-LayerNorm.

The init is the one the model was built with. open_clip's `VisionTransformer.init_parameters`
is empty ("OpenAI CLIP did not define an init for the VisualTransformer"), so that is torch's
per-module init (Linear and Conv2d: Kaiming-uniform weights and uniform biases;
MultiheadAttention: Xavier-uniform in-projection, zero biases; LayerNorm: ones and zeros) plus
the tower's own N(0, width^-1/2) draws of the class token, learned position embedding and
projection. A fixed sin-cos position embedding is not a weight and stays. The text tower and the
concept bank are never touched: only the image side is randomised.
"""

from __future__ import annotations

import copy
import zlib
from collections.abc import Iterator, Sequence

import numpy as np
import torch
from torch import nn

from convis.errors import UserError


class RandomiseError(UserError, ValueError):
    """The model's image tower has no block layout this module knows."""


def _tower(model: nn.Module) -> nn.Module:
    visual = getattr(model, "visual", None)
    blocks = getattr(getattr(visual, "transformer", None), "resblocks", None)
    if visual is None or blocks is None or not hasattr(visual, "conv1"):
        raise RandomiseError(f"randomisation knows open_clip VisionTransformer image towers, not "
                             f"{type(visual).__name__}; use a ViT model (e.g. --model ViT-B-32)")
    if any(not isinstance(m, nn.Linear) for m in (b.mlp.c_fc for b in blocks)):
        raise RandomiseError("the image tower is quantised (precision int8); load it with --precision fp32")
    return visual


def encoder_blocks(model: nn.Module) -> list[str]:
    """The image tower's block names, output first: ["head", "block{L-1}", ..., "block0", "embed"]."""
    return _names(_tower(model))


def _names(visual: nn.Module) -> list[str]:
    n = len(visual.transformer.resblocks)
    return ["head", *(f"block{i}" for i in reversed(range(n))), "embed"]


def _parts(visual: nn.Module, block: str) -> tuple[list[nn.Module], list[str]]:
    """(modules re-initialised by their own reset, tower-level parameters drawn N(0, width^-1/2))."""
    if block == "head":
        mods = [visual.ln_post, getattr(visual, "attn_pool", None), getattr(visual, "attn_pool_contrastive", None)]
        return [m for m in mods if m is not None], ["proj"]
    if block == "embed":
        return [visual.conv1, visual.ln_pre], ["class_embedding", "positional_embedding"]
    n = len(visual.transformer.resblocks)
    if block.startswith("block") and block[5:].isdigit() and int(block[5:]) < n:
        return [visual.transformer.resblocks[int(block[5:])]], []
    raise RandomiseError(f"no block '{block}' in this image tower; its blocks are "
                         f"{', '.join(_names(visual))}")


def _post_order(module: nn.Module) -> Iterator[nn.Module]:
    """Children before their parent, as at construction: MultiheadAttention zeroes the bias its
    out-projection Linear drew, so the parent's reset must come last."""
    for child in module.children():
        yield from _post_order(child)
    yield module


def block_seed(seed: int, block: str) -> int:
    """The torch seed of one block's draw: a block gets the same weights at a given seed whether
    it is randomised alone or in a cascade."""
    return int(np.random.SeedSequence([seed, zlib.crc32(block.encode())]).generate_state(1)[0])


def randomise_encoder(model: nn.Module, blocks: Sequence[str], seed: int = 0) -> nn.Module:
    """A deep copy of `model` with the image tower's `blocks` re-drawn from their init.

    Pure: `model` is not modified and torch's global random state is restored afterwards; the
    same (model, blocks, seed) gives the same weights (on one device type).

    Raises:
        RandomiseError: the tower is not an open_clip ViT, is quantised, or has no such block.
    """
    new = copy.deepcopy(model)
    visual = _tower(new)
    width = visual.transformer.width
    cuda = sorted({p.device.index or 0 for p in new.parameters() if p.is_cuda})
    with torch.random.fork_rng(devices=cuda), torch.no_grad():
        for block in dict.fromkeys(blocks):
            mods, params = _parts(visual, block)
            torch.manual_seed(block_seed(seed, block))
            for top in mods:
                for m in _post_order(top):
                    reset = getattr(m, "reset_parameters", None) or getattr(m, "_reset_parameters", None)
                    if callable(reset):
                        reset()
            for name in params:
                p = getattr(visual, name, None)
                if isinstance(p, nn.Parameter) and p.requires_grad:  # a fixed sin-cos embedding stays
                    p.normal_(0.0, width ** -0.5)
    return new


def cascade(blocks: Sequence[str]) -> list[tuple[str, ...]]:
    """Cumulative randomisation from the output down: [(b0,), (b0, b1), ..., all blocks]."""
    return [tuple(blocks[: k + 1]) for k in range(len(blocks))]
