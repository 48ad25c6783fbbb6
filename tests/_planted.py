"""The planted-concept worlds of the tests: no model, so where a map must be hot is known.

The red world (index, progressive tests): a 2-d encoder says how much of a window is red, and
the concepts lie at known angles between "red" and "not red". The red-and-green world (phrase and
whole-picture tests): the encoder sees how much of a window is red or green, and the bank is
made by hand in that 3-d space ([red, green, neither]).
"""

import numpy as np
import torch
from PIL import Image

from convis.concepts.hierarchy import toy_hierarchy
from convis.index.build import InputSpec

SPEC = InputSpec(size=32, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))
RED, GREEN = (230, 20, 20), (20, 200, 20)

HIER = toy_hierarchy({
    "thing.n.01": ["entity.n.01"], "colour_thing.n.01": ["thing.n.01"],
    "red_thing.n.01": ["colour_thing.n.01"], "green_thing.n.01": ["colour_thing.n.01"],
    "plain_thing.n.01": ["thing.n.01"], "grey_thing.n.01": ["plain_thing.n.01"],
    "stone.n.01": ["plain_thing.n.01"],
})
_DIRS = {  # unnormalised directions in [red, green, neither]
    "red_thing.n.01": (1.0, 0.0, 0.3), "green_thing.n.01": (0.0, 1.0, 0.3), "colour_thing.n.01": (0.5, 0.5, 0.6),
    "grey_thing.n.01": (0.0, 0.0, 1.0), "stone.n.01": (0.1, 0.1, 1.0), "plain_thing.n.01": (0.2, 0.2, 1.0),
    "thing.n.01": (0.4, 0.4, 1.0), "entity.n.01": (0.3, 0.3, 1.0),
}
BANK = torch.nn.functional.normalize(torch.tensor([_DIRS[n] for n in HIER.ids]), dim=1)  # (T, 3)


def unit(*v: float) -> torch.Tensor:
    return torch.nn.functional.normalize(torch.tensor(v, dtype=torch.float32), dim=0)


def colour_encoder(x: torch.Tensor) -> torch.Tensor:
    """(N, 3, S, S) in [0, 1] -> (N, 3): [red, green, neither], recognising a colour once it dominates."""
    r, g, b = x[:, 0], x[:, 1], x[:, 2]
    red = ((r > 0.6) & (g < 0.35) & (b < 0.35)).float().mean(dim=(1, 2))
    green = ((g > 0.6) & (r < 0.35) & (b < 0.35)).float().mean(dim=(1, 2))
    red, green = torch.sigmoid(12.0 * (red - 0.5)), torch.sigmoid(12.0 * (green - 0.5))
    return torch.stack([red, green, (1.0 - red - green).clamp(min=0.05)], dim=1)


def planted(size: tuple[int, int], boxes: dict[tuple[int, int, int], tuple[int, int, int, int]]) -> Image.Image:
    """A grey-textured (w, h) image with {colour: (x0, y0, x1, y1)} squares painted on it."""
    w, h = size
    pixels = np.random.default_rng(0).integers(90, 170, (h, w, 1)).repeat(3, axis=2).astype(np.uint8)
    for colour, (x0, y0, x1, y1) in boxes.items():
        pixels[y0:y1, x0:x1] = colour
    return Image.fromarray(pixels)


def mean_in(m: np.ndarray, box: tuple[int, int, int, int]) -> float:
    x0, y0, x1, y1 = box
    return float(m[y0:y1, x0:x1].mean())


def mean_out(m: np.ndarray, box: tuple[int, int, int, int], margin: int = 64) -> float:
    """Mean of the map farther than `margin` pixels from the box."""
    x0, y0, x1, y1 = box
    keep = np.ones(m.shape, bool)
    keep[max(y0 - margin, 0) : y1 + margin, max(x0 - margin, 0) : x1 + margin] = False
    return float(m[keep].mean())


# ---- the red world ---------------------------------------------------------------------------
RED_HIER = toy_hierarchy(
    {
        "thing.n.01": ["entity.n.01"],
        "colour_thing.n.01": ["thing.n.01"],
        "red_thing.n.01": ["colour_thing.n.01"],
        "reddish_thing.n.01": ["colour_thing.n.01"],
        "pinkish_thing.n.01": ["colour_thing.n.01"],
        "plain_thing.n.01": ["thing.n.01"],
        "greyish_thing.n.01": ["plain_thing.n.01"],
        "grey_thing.n.01": ["plain_thing.n.01"],
    }
)
# Angle of each concept between "red" (0) and "not red" (pi / 2).
ANGLES = {
    "red_thing.n.01": 0.0, "reddish_thing.n.01": 0.35, "pinkish_thing.n.01": 0.7,
    "colour_thing.n.01": 0.9, "greyish_thing.n.01": 1.2, "grey_thing.n.01": np.pi / 2,
    "plain_thing.n.01": 1.4, "thing.n.01": 1.0, "entity.n.01": 1.1,
}
RED_BANK = torch.tensor([[np.cos(ANGLES[n]), np.sin(ANGLES[n])] for n in RED_HIER.ids], dtype=torch.float32)


def red_fraction_encoder(x: torch.Tensor) -> torch.Tensor:
    """(N, 3, S, S) in [0, 1] -> (N, 2): [red, not red], "recognising" red once it dominates."""
    share = ((x[:, 0] > 0.6) & (x[:, 1] < 0.35) & (x[:, 2] < 0.35)).float().mean(dim=(1, 2))
    red = torch.sigmoid(12.0 * (share - 0.5))
    return torch.stack([red, 1.0 - red], dim=1)


def planted_square(size: tuple[int, int], box: tuple[int, int, int, int]) -> Image.Image:
    """A grey-textured (w, h) image with one red square."""
    rng = np.random.default_rng(0)
    w, h = size
    pixels = rng.integers(90, 170, (h, w, 1)).repeat(3, axis=2).astype(np.uint8)  # grey texture
    x0, y0, x1, y1 = box
    pixels[y0:y1, x0:x1] = RED
    return Image.fromarray(pixels)
