"""Pictures of saliency maps: overlays, the paper's white blend, masks, boxes, colorbar, Figure-1 grid.

Pure: every function takes arrays and returns a new (H, W, 3) uint8 array (or PNG bytes) and never
modifies its inputs. Matplotlib is used through ``Figure`` + ``FigureCanvasAgg`` only, never
pyplot, so nothing leaks into global figure state and it is safe in a web server's threads.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence

import matplotlib
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import Colormap
from matplotlib.figure import Figure
from PIL import Image, ImageDraw, ImageFont

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
    """Bilinear resize of an (h, w) map to ``size = (H, W)``; returns a new float32 map in [0, 1].

    NaN counts as 0 and values are clipped to [0, 1] first.
    """
    s = np.asarray(saliency, dtype=np.float32)
    if s.ndim != 2:
        raise ValueError(f"saliency must be an (h, w) array, got shape {s.shape}")
    s = np.clip(np.nan_to_num(s, nan=0.0), 0.0, 1.0)  # a new array: the input stays untouched
    if s.shape == tuple(size):
        return s
    out = Image.fromarray(s).resize((int(size[1]), int(size[0])), Image.Resampling.BILINEAR)  # mode F
    return np.clip(np.asarray(out, dtype=np.float32), 0.0, 1.0)  # (H, W)


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


def mask(image: np.ndarray, saliency: np.ndarray, *, threshold: float) -> np.ndarray:
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


def colorbar(image: np.ndarray, cmap: str | Colormap = "jet", label: str = "saliency") -> np.ndarray:
    """Append a vertical colour scale (1 at the top, 0 at the bottom) to the right of the image."""
    img = _image(image)
    h = img.shape[0]
    pad, bar_w = max(2, h // 40), max(6, h // 25)
    font = ImageFont.load_default(size=max(8, min(h // 20, 18)))
    tick_w = int(font.getlength("0.5")) + pad
    label_h = int(font.size * 1.3) if label else 0  # the label is written sideways
    strip = Image.new("RGB", (pad + bar_w + pad + tick_w + label_h + pad, h), (255, 255, 255))
    bar_h = max(h - 2 * pad, 1)
    gradient = _lut(cmap)[np.round(np.linspace(255, 0, bar_h)).astype(np.intp)]  # (bar_h, 3), top = 1
    strip.paste(Image.fromarray(np.repeat(gradient[:, None], bar_w, axis=1)), (pad, pad))
    draw = ImageDraw.Draw(strip)
    for value, y in (("1", pad), ("0.5", pad + bar_h // 2), ("0", pad + bar_h - 1)):
        draw.text((2 * pad + bar_w, y), value, fill=(0, 0, 0), font=font, anchor="lm")
    if label:
        text = Image.new("RGB", (max(int(font.getlength(label)) + 2, 1), label_h), (255, 255, 255))
        ImageDraw.Draw(text).text((1, label_h // 2), label, fill=(0, 0, 0), font=font, anchor="lm")
        text = text.rotate(90, expand=True)  # reads bottom to top, as on a matplotlib colorbar
        strip.paste(text, (strip.width - pad - label_h, max((h - text.height) // 2, 0)))
    return np.concatenate([img, np.asarray(strip)], axis=1)


def _shorten(text: str, limit: int) -> str:
    # Cut, not wrap: synset names such as "hunting_dog.n.01" have no spaces to wrap at.
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def _panel(
    img: np.ndarray,
    s: np.ndarray,
    style: str,
    cmap: str | Colormap,
    alpha: float,
    exponent: float,
    threshold: float,
) -> np.ndarray:
    if style == "overlay":
        return overlay(img, s, cmap=cmap, alpha=alpha)
    if style == "white":
        return white_blend(img, s, exponent=exponent)
    if style == "map":
        return overlay(img, s, cmap=cmap, alpha=1.0)
    return mask(img, s, threshold=threshold)


def grid(
    image: np.ndarray,
    maps: Sequence[np.ndarray],
    titles: Sequence[str],
    *,
    style: str = "overlay",
    cmap: str | Colormap = "jet",
    alpha: float = 0.5,
    exponent: float = 10.0,
    threshold: float = 0.5,
    columns: int | None = None,
    panel_inches: float = 2.4,
    dpi: int = 100,
) -> np.ndarray:
    """The paper's Figure 1: the image, then one titled panel per concept map.

    Args:
        image: (H, W, 3) uint8, the region the maps cover (for ConVis maps, the centre crop).
        maps: (h, w) maps in [0, 1], one per concept; resized to the image.
        titles: one title per map, e.g. the synset names.
        style: "overlay" (colormap blend), "white" (the paper's white blend), "map" or "mask".
        cmap, alpha, exponent, threshold: passed to the chosen style.
        columns: panels per row; default min(panels, 4).
        panel_inches, dpi: panel width in inches and resolution.

    Returns:
        (H', W', 3) uint8 rendering of the figure.
    """
    if style not in STYLES:
        raise ValueError(f"unknown style {style!r}; choose one of {', '.join(STYLES)}")
    if len(maps) != len(titles):
        raise ValueError(f"need one title per map, got {len(maps)} maps and {len(titles)} titles")
    img = _image(image)
    n = 1 + len(maps)
    cols = max(1, min(columns or 4, n))
    rows = math.ceil(n / cols)
    pw = panel_inches
    ph = pw * img.shape[0] / img.shape[1]
    # Render at display resolution: imshow of full-size photos is what makes grids slow.
    px = max(1, round(pw * dpi))
    if img.shape[1] > px:
        small = Image.fromarray(img).resize((px, max(1, round(px * ph / pw))), Image.Resampling.LANCZOS)
        img = np.asarray(small)
    pictures = [img] + [_panel(img, s, style, cmap, alpha, exponent, threshold) for s in maps]
    labels = ["image", *titles]
    gap, title_h = 0.08, 0.32  # inches
    fig_w, fig_h = cols * pw + (cols + 1) * gap, rows * (ph + title_h) + gap
    fig = Figure(figsize=(fig_w, fig_h), dpi=dpi, facecolor="white")
    canvas = FigureCanvasAgg(fig)
    for i, (pic, title) in enumerate(zip(pictures, labels)):
        r, c = divmod(i, cols)
        left = gap + c * (pw + gap)
        bottom = fig_h - (r + 1) * (ph + title_h)
        ax = fig.add_axes((left / fig_w, bottom / fig_h, pw / fig_w, ph / fig_h))
        ax.imshow(pic, interpolation="nearest")
        ax.set_title(_shorten(str(title), int(pw * 12)), fontsize=9, pad=3)
        ax.set_axis_off()
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()  # (H', W', 3), detached from the canvas


def to_png_bytes(array: np.ndarray) -> bytes:
    """Encode an (H, W, 3) uint8 array (or (H, W) greyscale) as PNG."""
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(array)).save(buf, format="PNG")
    return buf.getvalue()
