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
    """Where the region the maps describe lies in the original image, in its pixels.

    The paper's centre square has `height` None (= `side`). A whole-picture index covers the
    whole image: `side` is then its width and `height` its height; beyond the aspect bound only
    its centre strip (`trimmed`).
    """

    x0: int
    y0: int
    side: int  # width (= height for a square)
    height: int | None = None
    trimmed: bool = False  # whole picture longer than its aspect bound: the centre strip of it

    @property
    def width(self) -> int:
        return self.side

    @property
    def shape(self) -> tuple[int, int]:
        """(height, width) of the region."""
        return (self.side if self.height is None else self.height, self.side)

    @property
    def box(self) -> tuple[int, int, int, int]:
        """(x0, y0, x1, y1), x1 and y1 exclusive."""
        h, w = self.shape
        return (self.x0, self.y0, self.x0 + w, self.y0 + h)


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


def whole_size(width: int, height: int, short: int = 224) -> tuple[int, int]:
    """(width, height) of the whole picture resized so its short side is `short`."""
    scale = short / min(width, height)
    return (short, short) if width == height else (max(1, round(width * scale)), max(1, round(height * scale)))


def whole_box(width: int, height: int, max_aspect: float = 4.0) -> CropBox:
    """The region a whole-picture map covers: all of the image, or, when its long side is more than
    `max_aspect` times the short one (the window count grows with the ratio), the centre strip of
    that ratio (`trimmed`), the long side trimmed symmetrically like the paper's centre square."""
    if max(width, height) <= max_aspect * min(width, height):
        return CropBox(0, 0, width, None if width == height else height)
    if width > height:
        side = int(max_aspect * height)
        return CropBox((width - side) // 2, 0, side, height, trimmed=True)
    tall = int(max_aspect * width)
    return CropBox(0, (height - tall) // 2, width, tall, trimmed=True)


def prepare_whole(image: Image.Image, short: int = 224, max_aspect: float = 4.0) -> tuple[np.ndarray, CropBox]:
    """Resize the whole RGB image (bicubic) so its short side is `short` (see `whole_box` for a
    picture beyond `max_aspect`: its centre strip). A square image gives `prepare_image`'s pixels.

    Returns:
        The (h, w, 3) uint8 image and the region it covers in the original.
    """
    crop = whole_box(*image.size, max_aspect)
    h, w = crop.shape
    region = image.convert("RGB")
    if crop.trimmed:
        region = region.crop(crop.box)
    pixels = region.resize(whole_size(w, h, short), Image.Resampling.BICUBIC)
    return np.asarray(pixels, dtype=np.uint8).copy(), crop


def map_shape(region: tuple[int, int], grid: tuple[int, int], size: int | tuple[int, int] | None) -> tuple[int, int]:
    """(H, W) of maps of an index.

    Args:
        region: (H, W) the mapped region in the original image (`CropBox.shape`).
        grid: (h, w) the region at grid scale (224 x 224, or the whole picture's short side 224).
        size: None = `region`; 0 = `grid` (native); an int = that short side, the long side keeping
            the grid's aspect (a square gives (size, size)); (H, W) as it is.
    """
    if size is None:
        return tuple(region)
    if not isinstance(size, (int, np.integer)):
        return (int(size[0]), int(size[1]))
    h, w = grid
    if size == 0:
        return (h, w)
    return (int(size), int(size)) if h == w else (round(size * h / min(h, w)), round(size * w / min(h, w)))


def pad_with_noise(image: np.ndarray, pad: int, seed: int) -> torch.Tensor:
    """Surround an (h, w, 3) uint8 image with `pad` pixels of seeded uniform RGB noise.

    Returns:
        (3, h + 2 pad, w + 2 pad) float32 tensor in [0, 1] on the CPU.
    """
    h, w = image.shape[:2]
    gen = torch.Generator().manual_seed(seed)
    # Quantised like a real image, so the noise is the same whatever device encodes it.
    padded = torch.randint(0, 256, (3, h + 2 * pad, w + 2 * pad), generator=gen, dtype=torch.uint8)
    padded[:, pad : pad + h, pad : pad + w] = torch.from_numpy(image).permute(2, 0, 1)
    return padded.float() / 255.0


def grid_boxes(cfg: GridConfig, shape: tuple[int, int] | None = None) -> np.ndarray:
    """Window boxes of Algorithm 1 in padded-image pixels, scale by scale, row-major.

    With `cfg.only_touching` only the windows that overlap the central image are kept (441 + 289
    for the paper's settings); the others cannot change the output. Otherwise all stride-grid
    corners are used (30² per scale) and boxes are clipped at the padded border, as the
    reference's masking does.

    Args:
        cfg: grid settings.
        shape: (h, w) of the image inside the border; None = the square (S, S). A whole-picture
            rectangle gets the same window sizes and stride over its whole padded extent.

    Returns:
        (N, 4) int64 boxes (x0, y0, x1, y1), x1 and y1 exclusive.
    """
    h, w = shape or (cfg.image_size, cfg.image_size)
    p = cfg.pad
    boxes = []
    for b in cfg.scales:
        axes = []
        for n in (h, w):
            starts = np.arange(0, n + 2 * p, cfg.stride)
            axes.append(starts[(starts + b > p) & (starts < p + n)] if cfg.only_touching else starts)
        ys, xs = np.meshgrid(*axes, indexing="ij")
        x0, y0 = xs.ravel(), ys.ravel()
        x1, y1 = np.minimum(x0 + b, w + 2 * p), np.minimum(y0 + b, h + 2 * p)
        boxes.append(np.stack([x0, y0, x1, y1], axis=1))
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
