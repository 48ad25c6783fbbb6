"""What the app loads once per process and shares between sessions: engines and image indexes.

Engines (model + hierarchy + concept bank) load lazily, a lock per key (one tab's load never
delays another's use of what is loaded), into a small LRU; model and bank leave memory with their
engine. Indexes, and the stochastic maps drawn on them, live in one byte-bounded LRU (the
`--index-mib` budget) keyed by (image hash, model, vocabulary, seed, whole picture or centre
square), shared by the UI and the API; sessions only hold keys and weak references into it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
from PIL import Image

from convis.cache import LRU, nbytes
from convis.app.disk import CacheBudget
from convis.app.entry import Entry, Key, image_hash, model_key
from convis.app.limits import public
from convis.app.loads import KeyedLoads
from convis.app.offers import NotOfferedError, Offers  # noqa: F401 - NotOfferedError: re-exported
from convis.app.warm import WarmUp, start_warm_up
from convis.clip.bank import forget_bank, load_bank
from convis.config import GridConfig, Progress
from convis.engine import Engine
from convis.errors import UserError
from convis.concepts.hierarchy import Hierarchy
from convis.index.image_index import ImageIndex
from convis.index.progressive import DEFAULT_SCHEDULE
from convis.clip.models import forget_model, load_model, parse_model
from convis.concepts.wordnet import load_hierarchy

_log = logging.getLogger(__name__)

Loader = Callable[..., Any]  # load_model(name, pretrained, device=...) -> Clip


def _call(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    return fn(*args, **kwargs)


def _run_index(engine: Engine, image: Image.Image, config: GridConfig, progress: Progress | None,
               staged: bool) -> Iterator[ImageIndex]:
    """The app's window pass (730 CLIP forwards), coarse to fine when `staged`: ZeroGPU wraps it."""
    schedule = DEFAULT_SCHEDULE if staged else ()
    yield from engine.index_progressive(image, config, progress=progress, schedule=schedule)


class Backend(Offers):
    """Process-level loader and caches. Thread-safe; never copied into sessions.

    Args:
        model: default model key or spec ("ViT-B-32/openai", "test-tiny").
        vocabulary: default concept set (any of `convis.concepts.wordnet.vocabularies()`).
        device: torch device or "auto".  seek: bank texts, "definitions" (the paper) or "lemmas".
        precision: "auto", "fp32", "fp16", "bf16" or "int8" (see `convis.clip.models.load_model`).
        max_engines: engines kept loaded at once (their models and banks go with them).
        max_indexes, max_index_bytes: bounds of the shared LRU of indexes and stochastic maps
            (items, bytes); the bytes bind first on a real model.
        max_cache_bytes: what Gradio's cache folder may hold on disk (`convis.app.disk`).
        gpu: optional decorator (``spaces.GPU(duration=...)``) applied to the indexing call.
        display_size: side of the rendered views, in pixels.
        hierarchies: ready-made concept sets by name (e.g. a toy one in tests), offered too.
        allow_large: also offer `nouns` and ViT-L (and larger) models (the defaults always are).
        loader: how a model is loaded (`convis.clip.models.load_model`); tests inject a slow one.
    """

    def __init__(self, model: str = "ViT-B-32/openai", vocabulary: str = "physical", *, device: str = "auto",
                 seek: str = "definitions", precision: str = "auto", max_engines: int = 2, max_indexes: int = 256,
                 max_index_bytes: int = 1 << 30, gpu: Callable[[Callable], Callable] | None = None,
                 display_size: int = 512, hierarchies: dict[str, Hierarchy] | None = None,
                 allow_large: bool = False, loader: Loader = load_model, max_cache_bytes: int = 2 << 30) -> None:
        self.default_model = model_key(model)
        self.default_vocabulary = vocabulary
        self.device, self.seek, self.precision, self.display_size = device, seek, precision, display_size
        self.max_engines, self.max_indexes, self.max_index_bytes = max_engines, max_indexes, max_index_bytes
        self.allow_large, self._loader = allow_large, loader
        self.startup_error: str | None = None
        self._given = dict(hierarchies or {})
        self._hierarchies: dict[str, Hierarchy] = dict(self._given)  # bounded by the offered vocabularies
        self._engines: LRU[tuple[str, str], Engine] = LRU(max_engines, on_evict=self._release)
        # Entries by `Key`, stochastic maps by ("stochastic", Key, synset): one byte budget for both.
        self._memory: LRU[tuple, Any] = LRU(max_indexes, max_weight=max_index_bytes, weight=nbytes)
        self._loads = KeyedLoads()  # a lock per thing being loaded, failures remembered
        self._index_fn = gpu(_run_index) if gpu else _run_index
        self._device_fn = gpu(_call) if gpu else _call
        self.warming: WarmUp | None = None  # set by `warm_up`
        self.disk = CacheBudget(max_cache_bytes)  # uploads, the API's pictures, exports: oldest go first

    def on_device(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run another model call (a phrase's text forward, a stochastic map) under the GPU decorator."""
        return self._device_fn(fn, *args, **kwargs)

    # ---- loading ------------------------------------------------------------------------------
    def preload(self, progress: Progress | None = None) -> bool:
        """Load the default engine at startup; on failure keep serving and remember why."""
        try:
            self.engine(None, None, progress)
        except Exception as exc:  # noqa: BLE001 - any failure must leave the app up, with the message shown
            self.startup_error = public(f"{type(exc).__name__}: {exc}")
            # A user error says its fix; anything else is a bug and the log keeps its traceback.
            _log.error("could not load %s over %s: %s", self.default_model, self.default_vocabulary, exc,
                       exc_info=not isinstance(exc, UserError))
            return False
        self.startup_error = None
        return True

    def loaded_hierarchy(self, vocabulary: str | None = None) -> Hierarchy | None:
        """The concept set if it is already in memory, else None. Never loads: for calls outside the queue."""
        vocabulary = vocabulary or self.default_vocabulary
        return self._hierarchies.get(vocabulary)
    def warm_up(self) -> WarmUp:
        """Start loading the default engine in the background (see `convis.app.warm`)."""
        self.warming = start_warm_up(self.preload, f"`{self.default_model}` over *{self.default_vocabulary}*")
        return self.warming

    def hierarchy(self, vocabulary: str | None = None) -> Hierarchy:
        """The concept set of an offered vocabulary (disk-cached; WordNetUnavailableError if missing)."""
        _, vocabulary = self._check(None, vocabulary)
        if (h := self.loaded_hierarchy(vocabulary)) is not None:
            return h  # no lock: another vocabulary's load does not delay this one
        with self._loads.loading(("hierarchy", vocabulary)):
            if vocabulary not in self._hierarchies:
                self._hierarchies[vocabulary] = load_hierarchy(vocabulary)
            return self._hierarchies[vocabulary]

    def engine(self, model: str | None, vocabulary: str | None, progress: Progress | None = None) -> Engine:
        """The engine of (model, vocabulary), loaded once (ModelLoadError etc. propagate)."""
        key = self._check(model, vocabulary)
        if (engine := self._engines.get(key)) is not None:
            return engine
        with self._loads.loading(("engine", *key)):
            if (engine := self._engines.get(key)) is not None:
                return engine  # loaded by another session while this one waited for the lock
            model, vocabulary = key
            t0 = time.perf_counter()
            with self._loads.loading(("model", model)):
                name, tag = parse_model(model)
                clip = self._loader(name, tag, device=self.device, precision=self.precision)
            hierarchy = self.hierarchy(vocabulary)
            engine = Engine(clip, hierarchy, load_bank(clip, hierarchy, self.seek, progress=progress))
            _log.info("loaded %s over %s in %.1f s", model, vocabulary, time.perf_counter() - t0)
            self._engines[key] = engine  # may evict the least recently used engine (`_release`)
            return engine

    def _release(self, key: tuple[str, str], engine: Engine) -> None:
        """An engine left the LRU: drop its bank, and its model unless another engine uses it."""
        forget_bank(engine.bank)
        if all(e.clip is not engine.clip for e in self._engines.values()):
            forget_model(engine.clip)
        _log.info("unloaded %s over %s", *key)

    # ---- indexes ------------------------------------------------------------------------------
    def cached(self, key: Key) -> Entry | None:
        """The cached entry of a key, refreshed in the LRU, or None."""
        return self._memory.get(key)

    def keep_map(self, key: Key, synset: str, saliency: np.ndarray) -> None:
        """Keep a stochastic map of a concept on an indexed image, within the byte budget; the
        index it is drawn on counts as used too (maps must not push out the index they need)."""
        self._memory.get(key)
        self._memory[("stochastic", key, synset)] = saliency

    def kept_map(self, key: Key, synset: str) -> np.ndarray | None:
        """A stochastic map kept by `keep_map` (by any session: the sampler is seeded), or None."""
        found = self._memory.get(("stochastic", key, synset))
        if found is not None:
            self._memory.get(key)  # its index is in use
        return found

    @property
    def held_bytes(self) -> int:
        """Bytes of the indexes and maps held now (at most `max_index_bytes`, plus the newest item)."""
        return self._memory.weight

    def key(self, image: Image.Image, model: str | None = None, vocabulary: str | None = None,
            seed: int = 0, whole: bool = False) -> Key:
        """Cache key of an image under a model and vocabulary (defaults filled in)."""
        model, vocabulary = self._check(model, vocabulary)
        return image_hash(image), model, vocabulary, int(seed), bool(whole)

    def index(self, image: Image.Image, name: str = "image", model: str | None = None,
              vocabulary: str | None = None, seed: int = 0, progress: Progress | None = None,
              whole: bool = False) -> Entry:
        """Index an image once per (pixels, model, vocabulary, seed, region); later calls hit the cache.

        `whole`: map the whole picture (maps keep its aspect ratio), not the paper's centre square.
        """
        *_, entry = self.index_stages(image, name, model, vocabulary, seed, progress, whole, staged=False)
        return entry

    def index_stages(self, image: Image.Image, name: str = "image", model: str | None = None,
                     vocabulary: str | None = None, seed: int = 0, progress: Progress | None = None,
                     whole: bool = False, staged: bool = True) -> Iterator[Entry]:
        """As `index`, coarse to fine: an entry per stage (`staged`); only the complete one is cached."""
        key = self.key(image, model, vocabulary, seed, whole)
        if (hit := self.cached(key)) is not None:
            yield Entry(key, hit.index, hit.display, name, 0.0)
            return
        engine = self.engine(key[1], key[2])
        t0 = time.perf_counter()
        config = GridConfig(seed=seed, whole=whole)
        display = None
        for index in self._index_fn(engine, image, config, progress, staged):
            display = self._display(image, index) if display is None else display
            entry = Entry(key, index, display, name, time.perf_counter() - t0)
            if entry.complete:
                self._store(entry)
            yield entry

    def adopt(self, key: Key, image: Image.Image, index: ImageIndex, name: str, origin: str) -> Entry:
        """Cache an index made elsewhere (`origin`: "the dataset store") under `key`, as if indexed here."""
        entry = Entry(key, index, self._display(image, index), name, 0.0, origin)
        self._store(entry)
        return entry

    def _display(self, image: Image.Image, index: ImageIndex) -> np.ndarray:
        """(h, w, 3) uint8: the mapped region, short side at display size, long side at most 1.5 times it."""
        h, w = index.crop.shape
        scale = min(self.display_size / min(h, w), 1.5 * self.display_size / max(h, w))
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        return np.asarray(image.crop(index.crop.box).resize(size, Image.Resampling.LANCZOS).convert("RGB"))

    def _store(self, entry: Entry) -> None:
        self._memory[entry.key] = entry  # the least recently used indexes and maps make room
