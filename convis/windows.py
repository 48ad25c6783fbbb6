"""Image geometry of Algorithm 1: centre crop, noise padding, window boxes, batched crops.

Everything here is pure: arrays or tensors in, new ones out. Tensors stay on the device they
came on, so the caller decides where the work runs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from convis.config import GridConfig


@dataclass(frozen=True)
class CropBox:
    """Where the square the maps describe lies in the original image, in its pixels."""

    x0: int
    y0: int
    side: int

    @property
    def box(self) -> tuple[int, int, int, int]:
        """(x0, y0, x1, y1), x1 and y1 exclusive."""
        return (self.x0, self.y0, self.x0 + self.side, self.y0 + self.side)


def centre_crop_box(width: int, height: int) -> CropBox:
    """The centre square: the longer side is trimmed symmetrically (the paper's preprocessing)."""
    side = min(width, height)
    return CropBox((width - side) // 2, (height - side) // 2, side)


def prepare_image(image: Image.Image, size: int = 224) -> tuple[np.ndarray, CropBox]:
    """Centre-crop an RGB image to a square and resize it (bicubic) to size x size.

    Returns:
        The (size, size, 3) uint8 image and the crop's position in the original image.
    """
    crop = centre_crop_box(*image.size)
    square = image.convert("RGB").crop(crop.box).resize((size, size), Image.Resampling.BICUBIC)
    return np.asarray(square, dtype=np.uint8).copy(), crop


def pad_with_noise(image: np.ndarray, pad: int, seed: int) -> torch.Tensor:
    """Surround an (S, S, 3) uint8 image with `pad` pixels of seeded uniform RGB noise.

    Returns:
        (3, S + 2 pad, S + 2 pad) float32 tensor in [0, 1] on the CPU.
    """
    size = image.shape[0]
    side = size + 2 * pad
    gen = torch.Generator().manual_seed(seed)
    # Quantised like a real image, so the noise is the same whatever device encodes it.
    padded = torch.randint(0, 256, (3, side, side), generator=gen, dtype=torch.uint8)
    padded[:, pad : pad + size, pad : pad + size] = torch.from_numpy(image).permute(2, 0, 1)
    return padded.float() / 255.0


def grid_boxes(cfg: GridConfig) -> np.ndarray:
    """Window boxes of Algorithm 1 in padded-image pixels, scale by scale, row-major.

    With `cfg.only_touching` only the windows that overlap the central image are kept (441 + 289
    for the paper's settings); the others cannot change the output. Otherwise all stride-grid
    corners are used (30² per scale) and boxes are clipped at the padded border, as the
    reference's masking does.

    Returns:
        (N, 4) int64 boxes (x0, y0, x1, y1), x1 and y1 exclusive.
    """
    side, lo, hi = cfg.padded_size, cfg.pad, cfg.pad + cfg.image_size
    boxes = []
    for b in cfg.scales:
        starts = np.arange(0, side, cfg.stride)
        if cfg.only_touching:
            starts = starts[(starts + b > lo) & (starts < hi)]
        ys, xs = np.meshgrid(starts, starts, indexing="ij")
        x0, y0 = xs.ravel(), ys.ravel()
        boxes.append(np.stack([x0, y0, np.minimum(x0 + b, side), np.minimum(y0 + b, side)], axis=1))
    return np.concatenate(boxes).astype(np.int64)


def crop_windows(
    padded: torch.Tensor,
    boxes: np.ndarray,
    size: int,
    mean: tuple[float, float, float],
    std: tuple[float, float, float],
) -> torch.Tensor:
    """Crop boxes out of a (3, P, P) image, resize each to the model input, normalise.

    Crops of equal shape are resized together in one call: no PIL per window. The resize is
    bicubic with antialiasing, the kernel PIL uses, since the reference resizes with PIL.

    Returns:
        (N, 3, size, size) float32 tensor on `padded`'s device, in `boxes` order.
    """
    out = torch.empty((len(boxes), 3, size, size), dtype=torch.float32, device=padded.device)
    shapes = boxes[:, 2:] - boxes[:, :2]  # (N, 2) widths and heights
    for shape in np.unique(shapes, axis=0):
        rows = np.flatnonzero((shapes == shape).all(axis=1))
        crops = torch.stack([padded[:, y0:y1, x0:x1] for x0, y0, x1, y1 in boxes[rows]])
        crops = F.interpolate(crops.float(), size=(size, size), mode="bicubic", antialias=True)
        out[torch.from_numpy(rows).to(padded.device)] = crops.clamp_(0.0, 1.0)
    m = torch.tensor(mean, device=padded.device).view(1, 3, 1, 1)
    s = torch.tensor(std, device=padded.device).view(1, 3, 1, 1)
    return (out - m) / s
