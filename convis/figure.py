"""Figures around saliency pictures: a colour scale and the paper's Figure-1 grid.

Pure: every function takes arrays and returns a new (H, W, 3) uint8 array and never modifies its
inputs. Matplotlib is used through ``Figure`` + ``FigureCanvasAgg`` only, never pyplot, so nothing
leaks into global figure state and it is safe in a web server's threads.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import Colormap
from matplotlib.figure import Figure
from PIL import Image, ImageDraw, ImageFont

from convis.render import STYLES, _image, _lut, panel


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
        style: one of `convis.render.STYLES`.
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
    pictures = [img] + [panel(img, s, style, cmap=cmap, alpha=alpha, exponent=exponent, threshold=threshold)
                         for s in maps]
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
