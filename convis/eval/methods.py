"""ConVis and the baselines, registered by name with `convis.eval.registry.register_method`.

* ``convis``: the paper's grid map (Algorithm 1), through the engine's index.
* ``stochastic``: the reference's adaptive sampler (`convis.index.image_index.stochastic_saliency`).
* ``raw``: ablation, each window's cosine similarity to the concept's gloss (max over its subtree),
  accumulated over the same windows as ConVis: ConVis without the rank over T.
* ``dense``: patch tokens of a single forward of the whole crop, projected into the joint space,
  cosine to the concept (max over its subtree), upsampled. Fast; open_clip ViTs only.
* ``centre``: a Gaussian centre prior (sigma = a quarter of the side) that ignores the image.

Every map covers the centre crop (`convis.windows.prepare_image`), high = concept present,
min-max normalised to [0, 1].
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from convis import saliency as sal
from convis.eval.registry import Job, register_method
from convis.concepts.hierarchy import Hierarchy
from convis.windows import crop_windows, prepare_image


def _rows(hierarchy: Hierarchy, concept: str) -> torch.Tensor:
    """hypo*(concept) as an index tensor (the hierarchy's arrays are read-only)."""
    return torch.from_numpy(np.array(hierarchy.subtree(concept)))


def centre_prior(size: int, sigma: float = 0.25) -> np.ndarray:
    """(size, size) float32 isotropic Gaussian centred on the map, sigma in units of the side."""
    c = np.arange(size, dtype=np.float64) + 0.5 - size / 2
    g = np.exp(-0.5 * (c / (sigma * size)) ** 2)
    m = np.outer(g, g)
    return ((m - m.min()) / (m.max() - m.min())).astype(np.float32)


def patch_embeddings(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Final patch tokens of an open_clip VisionTransformer in the joint space.

    The tokens go through the same final LayerNorm and projection as the pooled class token.

    Args:
        model: an open_clip CLIP (`model.visual` a VisionTransformer).
        x: (N, 3, S, S) normalised images.

    Returns:
        (N, h, w, D) unit vectors, h = w = S / patch size.
    """
    visual = model.visual
    if getattr(visual, "proj", None) is None or not hasattr(visual, "forward_intermediates") \
            or not hasattr(visual, "patch_size"):
        raise ValueError("the dense baseline needs an open_clip VisionTransformer with a projection")
    out = visual.forward_intermediates(x, indices=1, normalize_intermediates=True, intermediates_only=True,
                                       output_fmt="NLC")
    tokens = out["image_intermediates"][-1] @ visual.proj  # (N, h * w, D)
    side = int(round(tokens.shape[1] ** 0.5))
    return F.normalize(tokens.float(), dim=-1).reshape(x.shape[0], side, side, -1)


@register_method("grid", windowed=True)
def convis_maps(job: Job) -> np.ndarray:
    """The paper's grid map, from the index."""
    return job.index.saliency_many(job.concepts, job.side)


@register_method("stochastic", windowed=True)
def stochastic_maps(job: Job) -> np.ndarray:
    """The reference's sampler on the index's padded pixels (its forwards are its own)."""
    maps = np.stack([job.engine.stochastic(job.index, c, job.stochastic) for c in job.concepts])
    return sal.resize_maps(maps, job.side)


@register_method("raw", windowed=True)
def raw_maps(job: Job) -> np.ndarray:
    """Each window's cosine to the concept (max over its subtree), accumulated like ConVis."""
    return job.index.raw_saliency_many(job.concepts, job.engine.bank.embeddings, job.side)


@register_method("dense")
def dense_maps(job: Job) -> np.ndarray:
    """(C, side, side) dense patch-token maps of the centre crop."""
    clip, hier = job.engine.clip, job.engine.hierarchy
    pixels, _ = prepare_image(job.image, job.config.image_size)
    whole = torch.from_numpy(pixels).permute(2, 0, 1).float().div(255.0).to(clip.device)  # (3, S0, S0)
    s0 = pixels.shape[0]
    x = crop_windows(whole, np.array([[0, 0, s0, s0]]), clip.image_size, clip.mean, clip.std)
    with torch.inference_mode():
        tokens = patch_embeddings(clip.model, x.to(clip.dtype))[0]  # (h, w, D)
        bank = job.engine.bank.embeddings.float()
        grids = torch.stack([(tokens @ bank[_rows(hier, c)].T).amax(dim=-1) for c in job.concepts])  # (C,h,w)
        up = F.interpolate(grids[:, None], size=(job.side, job.side), mode="bilinear", align_corners=False)[:, 0]
    return sal.normalise(up.cpu().numpy().astype(np.float64), invert=False)


@register_method("centre")
def centre_maps(job: Job) -> np.ndarray:
    """The Gaussian centre prior, the same for every concept."""
    return np.repeat(centre_prior(job.side)[None], len(job.concepts), axis=0)

