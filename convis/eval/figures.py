"""The drawable plane figures of the synthetic world, each named by a WordNet synset.

A figure is an outline in a unit frame (radius ~1), turned a little, scaled and placed, then
drawn at 2x and box-filtered into an anti-aliased coverage map.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw

# Pentagons and hexagons were dropped: at the ~20 px a figure spans in a 64 px model input, a
# model trainable in minutes on a CPU could not tell them from circles (0-8 % held-out accuracy).
SHAPES = ("circle.n.01", "ellipse.n.01", "square.n.01", "rectangle.n.01", "rhombus.n.01", "triangle.n.01",
          "star.n.05", "heart.n.07", "crescent.n.01", "ring.n.02", "spiral.n.01")
_SS = 2  # supersampling factor: figures are drawn at 2x and box-filtered, for anti-aliased edges


def _ngon(n: int, phase: float, rx: float = 1.0, ry: float = 1.0) -> np.ndarray:
    t = phase + 2 * math.pi * np.arange(n) / n
    return np.stack([rx * np.cos(t), ry * np.sin(t)], axis=1)  # (n, 2)


def _outline(name: str, rng: np.random.Generator) -> tuple[list[np.ndarray], str]:
    """Polygons of a figure in a unit frame and how to draw them ("fill", "hole" or "line")."""
    if name == "circle.n.01":
        return [_ngon(96, 0.0)], "fill"
    if name == "ellipse.n.01":
        return [_ngon(96, 0.0, 1.0, rng.uniform(0.42, 0.68))], "fill"
    if name == "square.n.01":
        return [_ngon(4, math.pi / 4)], "fill"
    if name == "rectangle.n.01":
        return [_ngon(4, math.pi / 4, 1.0, rng.uniform(0.35, 0.62))], "fill"
    if name == "rhombus.n.01":  # unequal diagonals, so it is never a turned square
        return [_ngon(4, 0.0, 1.0, rng.uniform(0.42, 0.68))], "fill"
    if name == "triangle.n.01":
        return [_ngon(3, -math.pi / 2 + rng.uniform(-0.25, 0.25))], "fill"
    if name == "star.n.05":
        pts = _ngon(10, -math.pi / 2)
        pts[1::2] *= rng.uniform(0.38, 0.5)  # inner corners
        return [pts], "fill"
    if name == "heart.n.07":
        t = np.linspace(0, 2 * math.pi, 120, endpoint=False)
        x, y = 16 * np.sin(t) ** 3, 13 * np.cos(t) - 5 * np.cos(2 * t) - 2 * np.cos(3 * t) - np.cos(4 * t)
        return [np.stack([x, -y - 2.5], axis=1) / 16.5], "fill"  # y down: the point at the bottom
    if name == "ring.n.02":
        inner = rng.uniform(0.45, 0.68)
        return [_ngon(96, 0.0), _ngon(96, 0.0, inner, inner)], "hole"
    if name == "crescent.n.01":
        shift = rng.uniform(0.35, 0.6)
        return [_ngon(96, 0.0), _ngon(96, 0.0) * 0.92 + [shift, 0.0]], "hole"
    if name == "spiral.n.01":
        t = np.linspace(0.0, 2 * math.pi * rng.uniform(2.3, 3.2), 160)
        r = 0.12 + 0.88 * t / t[-1]
        return [np.stack([r * np.cos(t), r * np.sin(t)], axis=1)], "line"
    raise ValueError(f"no drawing for {name!r}; drawable synsets: {', '.join(SHAPES)}")


def _rotation(name: str, rng: np.random.Generator) -> float:
    """Figures stand roughly upright (+-20 degrees; elongated ones lie or stand, crescents open
    either way): a model trainable in minutes learns upright shapes far faster than every turn,
    and a square turned 45 degrees would read as a diamond."""
    a = rng.uniform(-0.35, 0.35)
    if name in ("ellipse.n.01", "rectangle.n.01", "rhombus.n.01") and rng.random() < 0.5:
        a += math.pi / 2
    if name == "crescent.n.01" and rng.random() < 0.5:
        a += math.pi
    return a


def figure_alpha(name: str, centre: tuple[float, float], radius: float, rng: np.random.Generator,
                 size: int = 224) -> np.ndarray:
    """(size, size) float32 coverage in [0, 1] of one figure drawn at `centre` with `radius`."""
    polys, mode = _outline(name, rng)
    a = _rotation(name, rng)
    rot = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    canvas = Image.new("L", (size * _SS, size * _SS), 0)
    draw = ImageDraw.Draw(canvas)
    for k, poly in enumerate(polys):
        pts = (poly @ rot.T * radius + centre) * _SS
        xy = [tuple(p) for p in pts.tolist()]
        if mode == "line":
            draw.line(xy, fill=255, width=max(2, int(radius * _SS * rng.uniform(0.1, 0.15))), joint="curve")
        else:
            draw.polygon(xy, fill=255 if k == 0 else 0)
    return np.asarray(canvas.reduce(_SS), dtype=np.float32) / 255.0
