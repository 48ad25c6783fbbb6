"""Pictures of one saliency map over an image: overlay, the paper's white blend, threshold mask, box.

Pure: every function takes arrays and returns a new (H, W, 3) uint8 array (or PNG bytes) and never
modifies its inputs. The colour scale and the Figure-1 grid are in `convis.figure`.
"""

from __future__ import annotations

import io

import matplotlib
import numpy as np
from matplotlib.colors import Colormap
from PIL import Image

from convis.saliency import resize_maps

# "white": the paper's white blend; "map": the coloured map alone; "mask": pixels above a threshold.
STYLES = ("overlay", "white", "map", "mask")


def _image(image: np.ndarray) -> np.ndarray:
    a = np.asarray(image)  # also accepts a PIL RGB image
    if a.ndim != 3 or a.shape[2] != 3 or a.dtype != np.uint8:
        raise ValueError(f"image must be an (H, W, 3) uint8 array, got {a.shape} {a.dtype}")
    return a


def _lut(cmap: str | Colormap) -> np.ndarray:
    """(256, 3) uint8 colours of a matplotlib colormap."""
    cm = matplotlib.colormaps[cmap] if isinstance(cmap, str) else cmap
    return np.round(cm(np.linspace(0.0, 1.0, 256))[:, :3] * 255).astype(np.uint8)


def resize_map(saliency: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """An (h, w) map as a new float32 (H, W) map in [0, 1]: NaN counts as 0, values are clipped,
    then `convis.saliency.resize_maps` (the one map resizer) brings it to ``size = (H, W)``."""
    s = np.asarray(saliency, dtype=np.float32)
    if s.ndim != 2:
        raise ValueError(f"saliency must be an (h, w) array, got shape {s.shape}")
    s = np.clip(np.nan_to_num(s, nan=0.0), 0.0, 1.0)  # a new array: the input stays untouched
    return resize_maps(s, size)


def overlay(
    image: np.ndarray, saliency: np.ndarray, *, cmap: str | Colormap = "jet", alpha: float = 0.5
) -> np.ndarray:
    """Colour the map with ``cmap`` and alpha-blend it over the image.

    ``alpha = 0`` returns the image unchanged, ``alpha = 1`` the coloured map alone.
    """
    img = _image(image)
    s = resize_map(saliency, img.shape[:2])
    colour = _lut(cmap)[np.round(s * 255).astype(np.intp)]  # (H, W, 3)
    out = (1.0 - alpha) * img + alpha * colour.astype(np.float64)
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


def white_blend(image: np.ndarray, saliency: np.ndarray, *, exponent: float = 10.0) -> np.ndarray:
    """The paper's style: fade the image to white where saliency is low.

    ``out = image * m + 255 * (1 - m)`` with ``m = saliency ** exponent``; a larger exponent keeps
    only the strongest regions (the paper uses 10; 20 for grid maps, 4 for stochastic ones).
    """
    img = _image(image)
    m = resize_map(saliency, img.shape[:2]).astype(np.float64)[..., None] ** exponent  # (H, W, 1)
    return np.clip(np.round(img * m + 255.0 * (1.0 - m)), 0, 255).astype(np.uint8)


def threshold_mask(image: np.ndarray, saliency: np.ndarray, *, threshold: float) -> np.ndarray:
    """Keep the pixels with ``saliency >= threshold``; show the rest as a light, grey version."""
    img = _image(image)
    keep = resize_map(saliency, img.shape[:2]) >= threshold  # (H, W)
    grey = img.mean(axis=2, keepdims=True) * 0.4 + 0.6 * 220.0  # washed out so the kept part stands out
    return np.where(keep[..., None], img, np.round(grey).astype(np.uint8))


def draw_box(
    image: np.ndarray,
    box: tuple[int, int, int, int] | None,
    color: tuple[int, int, int] = (0, 255, 0),
    width: int = 3,
) -> np.ndarray:
    """Outline ``box = (x0, y0, x1, y1)`` (x1/y1 exclusive) inside its own pixels; None draws nothing."""
    out = _image(image).copy()
    if box is None:
        return out
    h, w = out.shape[:2]
    x0, y0 = max(int(box[0]), 0), max(int(box[1]), 0)
    x1, y1 = min(int(box[2]), w), min(int(box[3]), h)
    if x1 <= x0 or y1 <= y0:
        return out
    c = np.asarray(color, dtype=np.uint8)
    out[y0 : min(y0 + width, y1), x0:x1] = c
    out[max(y1 - width, y0) : y1, x0:x1] = c
    out[y0:y1, x0 : min(x0 + width, x1)] = c
    out[y0:y1, max(x1 - width, x0) : x1] = c
    return out


def panel(image: np.ndarray, saliency: np.ndarray, style: str = "overlay", *, cmap: str | Colormap = "jet",
          alpha: float = 0.5, exponent: float = 10.0, threshold: float = 0.5) -> np.ndarray:
    """One map over an image in one of `STYLES`; the other styles' settings are ignored."""
    if style == "white":
        return white_blend(image, saliency, exponent=exponent)
    if style == "map":
        return overlay(image, saliency, cmap=cmap, alpha=1.0)
    if style == "mask":
        return threshold_mask(image, saliency, threshold=threshold)
    if style == "overlay":
        return overlay(image, saliency, cmap=cmap, alpha=alpha)
    raise ValueError(f"unknown style {style!r}; choose one of {', '.join(STYLES)}")


def to_png_bytes(array: np.ndarray) -> bytes:
    """Encode an (H, W, 3) uint8 array (or (H, W) greyscale) as PNG."""
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(array)).save(buf, format="PNG")
    return buf.getvalue()
