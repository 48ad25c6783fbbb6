"""`MapMaker`: runs several registered methods on an image, encoding its windows once for all
that need them.

The methods are named in `convis.eval.registry` and registered by `convis.eval.methods`; a new
method or ablation is one `@register_method` there (or in any module imported before use).
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np
from PIL import Image

from convis.config import GridConfig, StochasticConfig
from convis.engine import Engine
from convis.eval.registry import METHODS, Job, parse_methods
from convis.index.image_index import ImageIndex
from convis.windows import CropBox, centre_crop_box


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
