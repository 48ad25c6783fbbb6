"""ConVis and the baselines, as named map makers that share work on each image.

* ``convis``: the paper's grid map (Algorithm 1), through the engine's index.
* ``stochastic``: the reference's adaptive sampler (`convis.index.stochastic_saliency`).
* ``raw``: ablation, each window's cosine similarity to the concept's gloss (max over its subtree),
  accumulated over the same windows as ConVis: ConVis without the rank over T.
* ``dense``: patch tokens of a single forward of the whole crop, projected into the joint space,
  cosine to the concept (max over its subtree), upsampled. Fast; open_clip ViTs only.
* ``centre``: a Gaussian centre prior (sigma = a quarter of the side) that ignores the image.

Every map covers the centre crop (`convis.windows.prepare_image`), high = concept present,
min-max normalised to [0, 1].
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from convis import saliency as sal
from convis.config import GridConfig, StochasticConfig
from convis.engine import Engine
from convis.eval.progressive_methods import EXTRA_METHODS
from convis.hierarchy import Hierarchy
from convis.index import ImageIndex, index_image, resize_maps
from convis.windows import CropBox, centre_crop_box, crop_windows, prepare_image

_BASE = ("convis", "stochastic", "raw", "dense", "centre")  # what "all" means
METHODS = (*_BASE, *EXTRA_METHODS)
_WINDOWED = ("convis", "stochastic", "raw", *EXTRA_METHODS)  # methods that need the window pass


def parse_methods(text: str | Sequence[str]) -> list[str]:
    """"convis,raw" or ["convis", "raw"] or "all" -> checked method names, in the given order."""
    names = [n.strip() for n in (text.split(",") if isinstance(text, str) else text) if n.strip()]
    if names == ["all"]:
        return list(_BASE)
    bad = [n for n in names if n not in METHODS]
    if bad or not names:
        raise ValueError(f"unknown method(s) {bad or names}; choose from {', '.join(METHODS)} or 'all'")
    return list(dict.fromkeys(names))


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


class MapMaker:
    """The maps of several methods for one image at a time, encoding the windows once.

    Args:
        engine: model, concept set T and its embeddings.
        methods: names from `METHODS`.
        config: grid settings (noise seed included) for the windowed methods.
        stochastic: sampler settings for "stochastic".
        batch_size: windows per forward.
    """

    def __init__(self, engine: Engine, methods: Sequence[str], config: GridConfig = GridConfig(),
                 stochastic: StochasticConfig = StochasticConfig(), batch_size: int = 64) -> None:
        self.engine, self.methods = engine, parse_methods(methods)
        self.config, self.stochastic, self.batch_size = config, stochastic, batch_size
        self.seconds: dict[str, float] = dict.fromkeys(self.methods, 0.0)  # summed over images
        self.extra: dict[str, dict] = {}  # the last image's side results of EXTRA_METHODS

    def window_pass(self, image: Image.Image) -> tuple[ImageIndex, torch.Tensor]:
        """The engine's index of the image and the (N, T) window-to-concept cosines behind it."""
        clip, bank = self.engine.clip, self.engine.bank
        kept: list[torch.Tensor] = []

        def encode(x: torch.Tensor) -> torch.Tensor:  # records what the index ranks
            emb = clip.encode_image(x)
            kept.append(emb)
            return emb

        index = index_image(image, encode, bank.embeddings, self.engine.hierarchy, self.engine.spec,
                            self.config, self.batch_size)
        emb = F.normalize(torch.cat(kept).float(), dim=-1)  # (N, D)
        return dataclasses.replace(index, model_id=clip.model_id), emb @ bank.embeddings.float().T

    def __call__(self, image: Image.Image, concepts: Sequence[str], size: int | None = 0,
                 ) -> tuple[dict[str, np.ndarray], CropBox]:
        """Maps of `concepts` by every method.

        Args:
            image: RGB image; the centre square is mapped.
            concepts: synset names of the engine's hierarchy.
            size: map side; 0 = the grid's image size (224), None = the crop's side in the image.

        Returns:
            ({method: (C, side, side) float32 in [0, 1]}, the crop in the original image).
        """
        hier, cfg = self.engine.hierarchy, self.config
        crop = centre_crop_box(*image.size)
        side = cfg.image_size if size == 0 else (crop.side if size is None else size)
        out: dict[str, np.ndarray] = {}
        index = sims = None
        if any(m in _WINDOWED for m in self.methods):
            t0 = time.perf_counter()
            index, sims = self.window_pass(image)
            self.seconds[next(m for m in self.methods if m in _WINDOWED)] += time.perf_counter() - t0
        for method in self.methods:
            t0 = time.perf_counter()
            if method == "convis":
                out[method] = index.saliency_many(concepts, side)
            elif method == "stochastic":
                maps = np.stack([self.engine.stochastic(index, c, self.stochastic) for c in concepts])
                out[method] = resize_maps(maps, side)
            elif method == "raw":
                values = torch.stack([sims[:, _rows(hier, c)].amax(dim=1) for c in concepts])  # (C, N)
                maps = sal.grid_maps(values.cpu().numpy(), index.boxes, cfg.padded_size, cfg.pad,
                                     cfg.image_size, higher_is_better=True)
                out[method] = resize_maps(maps, side)
            elif method in EXTRA_METHODS:
                out[method] = EXTRA_METHODS[method](self, image, index, concepts, side)
            elif method == "dense":
                out[method] = self.dense(image, concepts, side)
            else:
                out[method] = np.repeat(centre_prior(side)[None], len(concepts), axis=0)
            self.seconds[method] += time.perf_counter() - t0
        return out, crop

    def dense(self, image: Image.Image, concepts: Sequence[str], side: int) -> np.ndarray:
        """(C, side, side) dense patch-token maps of the centre crop."""
        clip, hier = self.engine.clip, self.engine.hierarchy
        pixels, _ = prepare_image(image, self.config.image_size)
        whole = torch.from_numpy(pixels).permute(2, 0, 1).float().div(255.0).to(clip.device)  # (3, S0, S0)
        s0 = pixels.shape[0]
        x = crop_windows(whole, np.array([[0, 0, s0, s0]]), clip.image_size, clip.mean, clip.std)
        with torch.inference_mode():
            tokens = patch_embeddings(clip.model, x.to(clip.dtype))[0]  # (h, w, D)
            bank = self.engine.bank.embeddings.float()
            grids = torch.stack([(tokens @ bank[_rows(hier, c)].T).amax(dim=-1) for c in concepts])  # (C,h,w)
            up = F.interpolate(grids[:, None], size=(side, side), mode="bilinear", align_corners=False)[:, 0]
        return sal.normalise(up.cpu().numpy().astype(np.float64), invert=False)
