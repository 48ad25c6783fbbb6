"""Frozen settings of the ConVis map variants (defaults follow the paper, Algorithm 1), the cache root
and the one reader of yes/no environment variables."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from convis.errors import UserError

Progress = Callable[[int, int], None]  # (done, total) callback of long work: windows, texts, images
_YES, _NO = ("1", "true", "yes", "on"), ("", "0", "false", "no", "off")  # huggingface_hub's yes, and no


def env_flag(name: str, default: bool = False) -> bool:
    """The one reader of yes/no environment variables (CONVIS_ALLOW_LARGE, GRADIO_SHARE, ...).

    1/true/yes/on and 0/false/no/off in any case; unset gives `default`, empty gives False.

    Raises:
        UserError: any other value (a typo must not silently mean "no").
    """
    value = os.environ.get(name)
    if value is None:
        return default
    if value.strip().lower() in _YES:
        return True
    if value.strip().lower() in _NO:
        return False
    raise UserError(f"{name}={value[:40]!r} is not a yes/no value; use 1, true, yes or on (or 0, false, no, off)")


def offline() -> bool:
    """The one definition of "do not use the network": CONVIS_OFFLINE or HF_HUB_OFFLINE is set."""
    return env_flag("CONVIS_OFFLINE") or env_flag("HF_HUB_OFFLINE")


def cache_root() -> Path:
    """The one root of convis' disk caches (banks/, hierarchy/, nltk_data/): $CONVIS_CACHE or ~/.cache/convis."""
    return Path(os.environ.get("CONVIS_CACHE") or "~/.cache/convis").expanduser()


@dataclass(frozen=True)
class GridConfig:
    """Algorithm 1 ("grid"): square windows on a stride grid over the noise-padded image."""

    image_size: int = 224  # side of the centre crop after resizing, before padding
    pad: int = 128  # uniform-noise border on every side -> padded side 480
    scales: tuple[int, ...] = (128, 64)  # window sides B, in padded-image pixels
    stride: int = 16  # top-left corners on this grid
    seed: int = 0  # noise seed: same seed, same map
    score: str = "rank"  # "rank" (the paper's grid) or "gamma" (the reference's option)
    gamma: float = 5.0  # gamma score: 2 * exp(-gamma * r / n) - 1 for r < n, else -1
    gamma_n: int | None = 91  # the reference's n (the bird subtree of its T); None: n = |hypo*(s)|
    only_touching: bool = True  # skip windows that cannot touch the image: same map, 730 not 1,800
    # Whole picture (not the paper's): the short side is resized to image_size and the windows
    # cover the whole rectangle, so maps have the photo's aspect ratio. A square is the paper's map.
    whole: bool = False
    max_aspect: float = 4.0  # whole picture: beyond this long/short ratio, its centre strip of it is mapped

    @property
    def padded_size(self) -> int:
        return self.image_size + 2 * self.pad


@dataclass(frozen=True)
class StochasticConfig:
    """The reference's adaptive sampler (used for its localisation experiment). Sequential."""

    iterations: int = 600
    reset_every: int = 100  # add the accumulator into the global map and reset it this often
    epsilon: float = 0.002  # multiplicative step: A[box] *= 1 + epsilon * score
    # scales[0] until the first reset at an iteration j >= iterations / 2 - 1 (0-based), then
    # scales[1]: the reference's switch (600 iterations: 300 + 300; 500: 300 + 200).
    scales: tuple[int, ...] = (128, 64)
    gamma: float = 5.0
    gamma_n: int | None = 91  # the reference's n; None: n = |hypo*(s)|
    seed: int = 0
