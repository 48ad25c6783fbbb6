"""Image geometry of Algorithm 1: centre crop, noise padding, window boxes, batched crops.

Everything here is pure: arrays or tensors in, new ones out. Tensors stay on the device they
came on, so the caller decides where the work runs.
"""

from __future__ import annotations

import functools
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


@functools.lru_cache(maxsize=16)
def _resize_matrix(src: int, dst: int) -> torch.Tensor:
    """(dst, src) matrix R with R @ x == bicubic-antialiased resize of a length-src signal.

    Built by resizing the identity, so it is exactly the kernel `F.interpolate` uses.
    """
    eye = torch.eye(src, dtype=torch.float64)[:, None, None, :]  # (src, 1, 1, src): one impulse per row
    rows = F.interpolate(eye, size=(1, dst), mode="bicubic", antialias=True)  # (src, 1, 1, dst)
    return rows[:, 0, 0, :].T.contiguous()  # (dst, src)


def crop_windows(
    padded: torch.Tensor,
    boxes: np.ndarray,
    size: int,
    mean: tuple[float, float, float],
    std: tuple[float, float, float],
) -> torch.Tensor:
    """Crop boxes out of a (3, P, P) image, resize each to the model input, normalise.

    The resize is bicubic with antialiasing, the kernel PIL uses, since the reference resizes
    with PIL. It is separable, so crops of equal shape are resized together as two batched
    matrix products (R_y @ crop @ R_x^T): several times faster on a CPU than
    `F.interpolate`, and no PIL per window.

    Returns:
        (N, 3, size, size) float32 tensor on `padded`'s device, in `boxes` order.
    """
    dev = padded.device
    out = torch.empty((len(boxes), 3, size, size), dtype=torch.float32, device=dev)
    shapes = boxes[:, 2:] - boxes[:, :2]  # (N, 2) widths and heights
    for w, h in np.unique(shapes, axis=0):
        rows = np.flatnonzero((shapes == (w, h)).all(axis=1))
        # A strided view of every h x w patch, then one gather: far faster than stacking slices.
        patches = padded.unfold(1, int(h), 1).unfold(2, int(w), 1)  # (3, P-h+1, P-w+1, h, w)
        y0 = torch.from_numpy(boxes[rows, 1]).to(dev)
        x0 = torch.from_numpy(boxes[rows, 0]).to(dev)
        crops = patches[:, y0, x0].transpose(0, 1).float()  # (n, 3, h, w)
        ry = _resize_matrix(int(h), size).to(dev, torch.float32)  # (size, h)
        rx = _resize_matrix(int(w), size).to(dev, torch.float32)  # (size, w)
        resized = ry @ crops @ rx.T  # (n, 3, size, size)
        out[torch.from_numpy(rows).to(dev)] = resized.clamp_(0.0, 1.0)
    m = torch.tensor(mean, device=dev).view(1, 3, 1, 1)
    s = torch.tensor(std, device=dev).view(1, 3, 1, 1)
    return (out - m) / s
