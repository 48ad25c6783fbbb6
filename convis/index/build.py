"""Building an image index: CLIP over the windows, once, coarse to fine.

`iter_index` encodes the windows stage by stage (`convis.index.progressive`) and yields a valid index
after each stage; `index_image` is its last snapshot with a single stage (every window in
`grid_boxes` order), the paper's Algorithm 1 done once for every concept. The encoder comes in as
a callable, so tests plug in fake ones; `build_index` plugs in a loaded CLIP.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from convis import saliency as sal
from convis.config import GridConfig, Progress
from convis.concepts.hierarchy import Hierarchy
from convis.index.image_index import ImageIndex
from convis.index.progressive import DEFAULT_SCHEDULE, PartialIndex, Stage, stage_rows, stage_smoothing
from convis.windows import CropBox, crop_windows, grid_boxes, pad_with_noise, prepare_image, prepare_whole

if TYPE_CHECKING:
    from convis.clip.bank import Bank
    from convis.clip.models import Clip

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


def prepare_grid(image: Image.Image, config: GridConfig) -> tuple[torch.Tensor, CropBox, np.ndarray]:
    """The pixels the windows see and the windows: (3, h + 2 pad, w + 2 pad) noise-padded image in
    [0, 1] on the CPU, where the mapped region lies in `image`, and the (N, 4) window boxes."""
    if config.whole:
        pixels, crop = prepare_whole(image, config.image_size, config.max_aspect)
    else:
        pixels, crop = prepare_image(image, config.image_size)
    return pad_with_noise(pixels, config.pad, config.seed), crop, grid_boxes(config, pixels.shape[:2])


def iter_index(
    image: Image.Image,
    encode: Encoder,
    concepts: torch.Tensor,
    hierarchy: Hierarchy,
    spec: InputSpec,
    config: GridConfig = GridConfig(),
    schedule: Sequence[Stage] = DEFAULT_SCHEDULE,
    batch_size: int = 64,
    progress: Progress | None = None,
) -> Iterator[ImageIndex]:
    """Index an image stage by stage, coarse to fine; yield a valid index after each stage.

    Args:
        image: RGB image of any size; the centre square is used, or the whole picture with
            `config.whole` (short side resized to `config.image_size`).
        encode: (n, 3, S, S) -> (n, D) image encoder.
        concepts: (T, D) unit rows in `hierarchy` order, on the encoder's device.
        schedule: the coarse stages (`convis.index.progressive`); the rest of the windows follow.
        progress: (windows done, windows total) over all stages.

    Yields:
        `PartialIndex` snapshots over the windows done so far, then the complete `ImageIndex`:
        every window in `grid_boxes` order, the same ranks whatever the schedule.
    """
    if concepts.shape[0] != len(hierarchy):
        raise ValueError(
            f"the concept bank has {concepts.shape[0]} rows but the hierarchy has {len(hierarchy)} "
            "concepts; build the bank from the same vocabulary"
        )
    padded, crop, boxes = prepare_grid(image, config)
    on_device = padded.to(concepts.device)
    stages = stage_rows(config, schedule, padded.shape[1:])
    ranks = np.empty((len(boxes), concepts.shape[0]), dtype=sal.rank_dtype(concepts.shape[0]))
    emb = torch.empty((len(boxes), concepts.shape[1]), dtype=torch.float16)
    done = np.zeros(len(boxes), dtype=bool)
    for number, rows in enumerate(stages, 1):
        before = int(done.sum())

        def step(n: int, _total: int, before: int = before) -> None:
            if progress is not None:
                progress(before + n, len(boxes))

        ranks[rows], emb[rows] = encode_windows(on_device, boxes[rows], encode, concepts, spec, batch_size, step)
        done[rows] = True
        if done.all():
            yield ImageIndex(ranks, boxes, hierarchy, crop, config, padded, embeddings=emb)
        else:
            keep = np.flatnonzero(done)  # grid_boxes order
            yield PartialIndex(ranks[keep], boxes[keep], hierarchy, crop, config, padded,
                               embeddings=emb[torch.from_numpy(keep)], stage=number, stages=len(stages),
                               total=len(boxes), smooth=stage_smoothing(schedule, number))


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
    """Index an image with any encoder in one go: `iter_index` with no coarse stage (its args)."""
    *_, index = iter_index(image, encode, concepts, hierarchy, spec, config, (), batch_size, progress)
    return index


def iter_clip_index(
    image: Image.Image,
    clip: Clip,
    bank: Bank,
    hierarchy: Hierarchy,
    config: GridConfig = GridConfig(),
    schedule: Sequence[Stage] = DEFAULT_SCHEDULE,
    batch_size: int = 64,
    progress: Progress | None = None,
) -> Iterator[ImageIndex]:
    """`iter_index` with a loaded CLIP and its concept bank: the one door both the one-shot and the
    progressive index go through (the bank is checked against the hierarchy, each snapshot is
    stamped with the model that made it)."""
    if bank.vocabulary != hierarchy.vocabulary:
        raise ValueError(
            f"bank is for vocabulary {bank.vocabulary!r} but the hierarchy is {hierarchy.vocabulary!r}"
        )
    spec = InputSpec(clip.image_size, clip.mean, clip.std)
    for part in iter_index(image, clip.encode_image, bank.embeddings, hierarchy, spec, config, schedule,
                           batch_size, progress):
        yield dataclasses.replace(part, model_id=clip.model_id, precision=clip.precision)


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
    *_, index = iter_clip_index(image, clip, bank, hierarchy, config, (), batch_size, progress)
    return index
