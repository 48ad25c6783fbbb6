"""`MapMaker`: runs several registered methods on an image, encoding its windows once for all
that need them.

The methods are named in `convis.eval.registry` and registered by `convis.eval.methods`; a new
method or ablation is one `@register_method` there (or in any module imported before use).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from convis.config import GridConfig, StochasticConfig
from convis.engine import Engine
from convis.eval.registry import METHODS, Job, parse_methods
from convis.index.image_index import ImageIndex
from convis.windows import CropBox, centre_crop_box

if TYPE_CHECKING:
    from convis.store.store import Store


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
        store: a dataset store (`convis index`) whose window embeddings replace the window pass
            for the images it holds (matched by the file's sha256); refused when its model,
            precision or grid differ from these.
    """

    def __init__(self, engine: Engine, methods: Sequence[str], config: GridConfig = GridConfig(),
                 stochastic: StochasticConfig = StochasticConfig(), batch_size: int = 64,
                 store: Store | None = None) -> None:
        self.engine, self.methods = engine, parse_methods(methods)
        self.config, self.stochastic, self.batch_size = config, stochastic, batch_size
        self.seconds: dict[str, float] = dict.fromkeys(self.methods, 0.0)  # summed over images
        self.extra: dict[str, dict] = {}  # the last image's side results, by method (`Job.extra`)
        self.store, self.from_store, self.encoded = store, 0, 0
        if store is not None:
            _check_store(store, engine, config)

    def window_pass(self, image: Image.Image, source: str | Path | None = None) -> ImageIndex:
        """The image's index: from the store when it holds the file `source`, else the engine's."""
        if self.store is not None and source is not None:
            from convis.dataset.prepare import file_digest
            from convis.store.search import stored_index

            sha = file_digest(source)[0]
            if sha in self.store:
                self.from_store += 1
                return stored_index(self.store, sha, self.engine, image)  # `image` is that file
        self.encoded += 1
        return self.engine.index(image, self.config, self.batch_size)

    def __call__(self, image: Image.Image, concepts: Sequence[str], size: int | None = 0,
                 source: str | Path | None = None) -> tuple[dict[str, np.ndarray], CropBox]:
        """Maps of `concepts` by every method.

        Args:
            image: RGB image; the centre square is mapped.
            concepts: synset names of the engine's hierarchy.
            size: map side; 0 = the grid's image size (224), None = the crop's side in the image.
            source: the image's file, to find its stored index (`store`).

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
            job.index = self.window_pass(image, source)
            shared = time.perf_counter() - t0
        out: dict[str, np.ndarray] = {}
        for name in self.methods:
            method = METHODS[name]
            t0 = time.perf_counter()
            out[name] = method.run(job)
            self.seconds[name] += time.perf_counter() - t0 + (shared if method.windowed else 0.0)
        self.extra = job.extra
        return out, crop


def _check_store(store: Store, engine: Engine, config: GridConfig) -> None:
    """Refuse a store whose embeddings another model, precision or grid made, naming the fields."""
    from convis.store.spec import StoreError, StoreSpec

    asked = StoreSpec.make(engine.clip.model_id, engine.clip.precision, config,
                           int(engine.bank.embeddings.shape[1]), store.spec.dtype)
    if diff := store.spec.differences(asked):
        raise StoreError(f"the store '{store.root}' was made with other settings (store vs asked): "
                         + "; ".join(diff) + ". Pass the store's --model/--pretrained/--precision/--seed, or drop --store")
