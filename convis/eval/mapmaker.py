"""The map-maker framework of the harness: a name -> method registry and `MapMaker`, which runs
several methods on an image and encodes its windows once for all that need them.

The methods themselves (ConVis and the baselines) are registered in `convis.eval.methods`; a new
method or ablation is one `@register_method` there (or in any module imported before use).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from convis.config import GridConfig, StochasticConfig
from convis.engine import Engine
from convis.eval.datasets import DataError
from convis.index import ImageIndex
from convis.windows import CropBox, centre_crop_box

METHODS: dict[str, Method] = {}  # name -> method, in registration order ("all" runs them in this order)


@dataclass
class Job:
    """One image's request to every method: what they read, and the shared window pass."""

    engine: Engine
    config: GridConfig
    stochastic: StochasticConfig
    image: Image.Image
    concepts: list[str]
    side: int  # map side
    index: ImageIndex | None = None  # the window pass (ranks and embeddings), for windowed methods
    batch_size: int = 64  # windows per forward, for methods that run a window pass of their own
    extra: dict[str, dict] = field(default_factory=dict)  # side results a method reports (per-stage maps)


@dataclass(frozen=True)
class Method:
    """A map maker: `run(job)` -> (C, side, side) float32 in [0, 1]."""

    run: Callable[[Job], np.ndarray]
    windowed: bool  # needs the window pass (730 forwards), which the maker runs once per image
    in_all: bool = True  # run by "--methods all"


def register_method(name: str, windowed: bool = False, in_all: bool = True,
                    ) -> Callable[[Callable[[Job], np.ndarray]], Callable]:
    """Decorator: add a method under `name` (new baselines and ablations are one registration).

    `in_all=False` keeps it out of "--methods all" (diagnostics such as the progressive stages)."""
    def add(run: Callable[[Job], np.ndarray]) -> Callable[[Job], np.ndarray]:
        METHODS[name] = Method(run, windowed, in_all)
        return run
    return add


def parse_methods(text: str | Sequence[str]) -> list[str]:
    """"convis,raw" or ["convis", "raw"] or "all" -> checked method names, in the given order."""
    import convis.eval.methods  # noqa: F401 - registers the built-in methods

    names = [n.strip() for n in (text.split(",") if isinstance(text, str) else text) if n.strip()]
    if names == ["all"]:
        return [n for n, m in METHODS.items() if m.in_all]
    bad = [n for n in names if n not in METHODS]
    if bad or not names:
        raise DataError(f"unknown method(s) {bad or names}; choose from {', '.join(METHODS)} or 'all'")
    return list(dict.fromkeys(names))


class MapMaker:
    """The maps of several methods for one image at a time, encoding the windows once.

    `seconds[m]` sums, over images, what method m costs on its own: its own work plus, for a
    windowed method, the window pass it needs (shared here, but each would pay it alone).

    Args:
        engine: model, concept set T and its embeddings.
        methods: names from `METHODS`.
        config: grid settings (noise seed included) for the windowed methods.
        stochastic: sampler settings for "stochastic".
        batch_size: windows per forward.
    """

    def __init__(self, engine: Engine, methods: Sequence[str], config: GridConfig = GridConfig(),
                 stochastic: StochasticConfig = StochasticConfig(), batch_size: int = 64) -> None:
        self.engine, self.methods = engine, parse_methods(methods)
        self.config, self.stochastic, self.batch_size = config, stochastic, batch_size
        self.seconds: dict[str, float] = dict.fromkeys(self.methods, 0.0)  # summed over images
        self.extra: dict[str, dict] = {}  # the last image's side results, by method (`Job.extra`)

    def window_pass(self, image: Image.Image) -> ImageIndex:
        """The engine's index of the image (window ranks and embeddings)."""
        return self.engine.index(image, self.config, self.batch_size)

    def __call__(self, image: Image.Image, concepts: Sequence[str], size: int | None = 0,
                 ) -> tuple[dict[str, np.ndarray], CropBox]:
        """Maps of `concepts` by every method.

        Args:
            image: RGB image; the centre square is mapped.
            concepts: synset names of the engine's hierarchy.
            size: map side; 0 = the grid's image size (224), None = the crop's side in the image.

        Returns:
            ({method: (C, side, side) float32 in [0, 1]}, the crop in the original image).
        """
        crop = centre_crop_box(*image.size)
        side = self.config.image_size if size == 0 else (crop.side if size is None else size)
        job = Job(self.engine, self.config, self.stochastic, image, list(concepts), side,
                  batch_size=self.batch_size)
        shared = 0.0
        if any(METHODS[m].windowed for m in self.methods):
            t0 = time.perf_counter()
            job.index = self.window_pass(image)
            shared = time.perf_counter() - t0
        out: dict[str, np.ndarray] = {}
        for name in self.methods:
            method = METHODS[name]
            t0 = time.perf_counter()
            out[name] = method.run(job)
            self.seconds[name] += time.perf_counter() - t0 + (shared if method.windowed else 0.0)
        self.extra = job.extra
        return out, crop
