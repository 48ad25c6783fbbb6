"""What the app loads once per process and shares between sessions: engines and image indexes.

An engine (model + hierarchy + concept bank) is loaded lazily once per (model, vocabulary) and kept
in a small LRU; indexes live in a byte-bounded LRU keyed by (image hash, model, vocabulary, seed),
so the UI and the stateless API endpoints reuse each other's work.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from convis.app.warm import WarmUp, start_warm_up
from convis.bank import load_bank
from convis.config import GridConfig
from convis.engine import Engine
from convis.hierarchy import Hierarchy
from convis.index import ImageIndex
from convis.models import DEFAULT_PRETRAINED, MODELS, list_models, load_model, parse_model
from convis.wordnet import load_hierarchy

_log = logging.getLogger(__name__)

Progress = Callable[[int, int], None]  # (done, total)
Key = tuple[str, str, str, int]  # (image hash, model key, vocabulary, seed)
VOCABULARIES = ("physical", "nouns")
OFFLINE_MODEL = "test-tiny/none"  # offered when the default model cannot load: the UI stays explorable


def model_key(model: str, pretrained: str | None = None) -> str:
    """Canonical "arch/tag" key of a model spec ("ViT-B-32" -> "ViT-B-32/openai")."""
    if pretrained:
        return f"{model}/{pretrained}"
    name, tag = parse_model(model)
    if tag and tag == DEFAULT_PRETRAINED.get(name) and Path(tag).is_absolute():
        return name  # a checkpoint shipped in the repository: its server path stays out of the UI
    return f"{name}/{tag}" if tag else name


def image_hash(image: Image.Image) -> str:
    """Hash of the decoded pixels: the same picture re-saved or re-uploaded keys the same index."""
    digest = hashlib.sha1(f"{image.size}{image.mode}".encode())
    digest.update(image.tobytes())
    return digest.hexdigest()[:20]


@dataclass(frozen=True, eq=False)
class Entry:
    """One indexed image: the engine's index and the mapped square of the original at display size."""

    key: Key
    index: ImageIndex
    display: np.ndarray  # (d, d, 3) uint8: the crop of the original image the map covers
    name: str  # file name shown to the user
    seconds: float  # indexing time (0 for a cache hit)

    @property
    def complete(self) -> bool:
        """False for a progressive snapshot (some windows not indexed yet)."""
        return getattr(self.index, "complete", True)

    @property
    def nbytes(self) -> int:
        padded = self.index.padded
        return int(self.index.ranks.nbytes + padded.element_size() * padded.nelement() + self.display.nbytes)


def _run_index(engine: Engine, image: Image.Image, config: GridConfig,
               progress: Progress | None) -> ImageIndex:
    """The only model-heavy call of the app (730 CLIP forwards): the ZeroGPU decorator wraps it."""
    return engine.index(image, config, progress=progress)


def _run_progressive(engine: Engine, image: Image.Image, config: GridConfig,
                     progress: Progress | None) -> Iterator[ImageIndex]:
    yield from engine.index_progressive(image, config, progress=progress)


class Backend:
    """Process-level loader and caches. Thread-safe; never copied into sessions.

    Args:
        model: default model key or spec ("ViT-B-32/openai", "test-tiny").
        vocabulary: default concept set (any of `convis.wordnet.VOCABULARIES`).
        device: torch device or "auto".
        seek: bank texts, "definitions" (the paper) or "lemmas".
        max_engines: engines kept loaded at once.
        max_indexes, max_index_bytes: bounds of the shared index LRU.
        gpu: optional decorator (``spaces.GPU(duration=...)``) applied to the indexing call.
        display_size: side of the rendered views, in pixels.
        hierarchies: ready-made concept sets by vocabulary name (e.g. a toy one in tests); they
            are offered in addition to the WordNet vocabularies.
    """

    def __init__(self, model: str = "ViT-B-32/openai", vocabulary: str = "physical", *, device: str = "auto",
                 seek: str = "definitions", max_engines: int = 2, max_indexes: int = 8,
                 max_index_bytes: int = 1 << 30, gpu: Callable[[Callable], Callable] | None = None,
                 display_size: int = 512, hierarchies: dict[str, Hierarchy] | None = None,
                 precision: str = "auto") -> None:
        self.default_model = model_key(model)
        self.default_vocabulary = vocabulary
        self.device, self.seek, self.display_size = device, seek, display_size
        self.max_engines, self.max_indexes, self.max_index_bytes = max_engines, max_indexes, max_index_bytes
        self.startup_error: str | None = None
        self._given = dict(hierarchies or {})
        self._engines: OrderedDict[tuple[str, str], Engine] = OrderedDict()
        self._indexes: OrderedDict[Key, Entry] = OrderedDict()
        self._lock = threading.RLock()
        self._index_fn = gpu(_run_index) if gpu else _run_index
        self._progressive_fn = gpu(_run_progressive) if gpu else _run_progressive
        self.precision = precision  # "auto", "fp32", ..., "int8" (CPU): validated by the model door
        self.warming: WarmUp | None = None  # set by `warm_up`

    # ---- choices ------------------------------------------------------------------------------
    def model_choices(self) -> list[tuple[str, str]]:
        """(label, key) pairs for the model selector: the curated list, the default, test-tiny if useful."""
        keys = [k for k in list_models() if k != OFFLINE_MODEL]
        if self.default_model not in keys:
            keys.insert(0, self.default_model)
        if self.startup_error or self.default_model == OFFLINE_MODEL:
            keys.append(OFFLINE_MODEL)
        return [(f"{k} · {MODELS[k].description}" if k in MODELS else k, k) for k in dict.fromkeys(keys)]

    def vocabulary_choices(self) -> list[str]:
        """Vocabularies the user may switch to (only these: a client must not name arbitrary files)."""
        return list(dict.fromkeys([self.default_vocabulary, *self._given, *VOCABULARIES]))

    def _check(self, model: str | None, vocabulary: str | None) -> tuple[str, str]:
        model, vocabulary = model or self.default_model, vocabulary or self.default_vocabulary
        if model not in {k for _, k in self.model_choices()}:
            raise ValueError(f"model {model!r} is not offered by this app; choose one of "
                             + ", ".join(k for _, k in self.model_choices()))
        if vocabulary not in self.vocabulary_choices():
            raise ValueError(f"vocabulary {vocabulary!r} is not offered; choose one of "
                             + ", ".join(self.vocabulary_choices()))
        return model, vocabulary

    # ---- loading ------------------------------------------------------------------------------
    def preload(self, progress: Progress | None = None) -> bool:
        """Load the default engine at startup; on failure keep serving and remember why."""
        try:
            self.engine(None, None, progress)
        except Exception as exc:  # noqa: BLE001 - any failure must leave the app up, with the message shown
            self.startup_error = f"{type(exc).__name__}: {exc}"
            _log.error("could not load %s over %s: %s", self.default_model, self.default_vocabulary, exc)
            return False
        self.startup_error = None
        return True

    def warm_up(self) -> WarmUp:
        """Start loading the default engine in the background (see `convis.app.warm`)."""
        self.warming = start_warm_up(self)
        return self.warming

    def hierarchy(self, vocabulary: str | None = None) -> Hierarchy:
        """The concept set of an offered vocabulary (disk-cached; WordNetUnavailableError if missing)."""
        _, vocabulary = self._check(None, vocabulary)
        if vocabulary in self._given:
            return self._given[vocabulary]
        with self._lock:
            return load_hierarchy(vocabulary)

    def engine(self, model: str | None, vocabulary: str | None, progress: Progress | None = None) -> Engine:
        """The engine of (model, vocabulary), loaded once (ModelLoadError etc. propagate)."""
        model, vocabulary = self._check(model, vocabulary)
        with self._lock:
            key = (model, vocabulary)
            if key in self._engines:
                self._engines.move_to_end(key)
                return self._engines[key]
            name, tag = parse_model(model)
            t0 = time.perf_counter()
            clip = load_model(name, tag, device=self.device, precision=self.precision)
            hierarchy = self.hierarchy(vocabulary)
            engine = Engine(clip, hierarchy, load_bank(clip, hierarchy, self.seek, progress=progress))
            _log.info("loaded %s over %s in %.1f s", model, vocabulary, time.perf_counter() - t0)
            self._engines[key] = engine
            while len(self._engines) > self.max_engines:
                self._engines.popitem(last=False)  # sessions holding its indexes keep working
            return engine

    # ---- indexes ------------------------------------------------------------------------------
    def cached(self, key: Key) -> Entry | None:
        """The cached entry of a key, refreshed in the LRU, or None."""
        with self._lock:
            entry = self._indexes.get(key)
            if entry is not None:
                self._indexes.move_to_end(key)
            return entry

    def key(self, image: Image.Image, model: str | None = None, vocabulary: str | None = None,
            seed: int = 0) -> Key:
        """Cache key of an image under a model and vocabulary (defaults filled in)."""
        model, vocabulary = self._check(model, vocabulary)
        return image_hash(image), model, vocabulary, int(seed)

    def index(self, image: Image.Image, name: str = "image", model: str | None = None,
              vocabulary: str | None = None, seed: int = 0, progress: Progress | None = None) -> Entry:
        """Index an image once per (pixels, model, vocabulary, seed); later calls hit the cache."""
        key = self.key(image, model, vocabulary, seed)
        _, model, vocabulary, _ = key
        if (hit := self.cached(key)) is not None:
            return Entry(key, hit.index, hit.display, name, 0.0)
        engine = self.engine(model, vocabulary)
        t0 = time.perf_counter()
        index = self._index_fn(engine, image, GridConfig(seed=seed), progress)
        entry = Entry(key, index, self._display(image, index), name, time.perf_counter() - t0)
        self._store(entry)
        return entry

    def index_stages(self, image: Image.Image, name: str = "image", model: str | None = None,
                     vocabulary: str | None = None, seed: int = 0,
                     progress: Progress | None = None) -> Iterator[Entry]:
        """As `index`, coarse to fine: an entry per stage; only the last (complete) one is cached."""
        key = self.key(image, model, vocabulary, seed)
        _, model, vocabulary, _ = key
        if (hit := self.cached(key)) is not None:
            yield Entry(key, hit.index, hit.display, name, 0.0)
            return
        engine = self.engine(model, vocabulary)
        t0 = time.perf_counter()
        display = None
        for index in self._progressive_fn(engine, image, GridConfig(seed=seed), progress):
            display = self._display(image, index) if display is None else display
            entry = Entry(key, index, display, name, time.perf_counter() - t0)
            if entry.complete:
                self._store(entry)
            yield entry

    def _display(self, image: Image.Image, index: ImageIndex) -> np.ndarray:
        crop = image.crop(index.crop.box).resize((self.display_size,) * 2, Image.Resampling.LANCZOS)
        return np.asarray(crop.convert("RGB"))

    def _store(self, entry: Entry) -> None:
        with self._lock:
            self._indexes[entry.key] = entry
            total = sum(e.nbytes for e in self._indexes.values())
            while len(self._indexes) > 1 and (len(self._indexes) > self.max_indexes
                                              or total > self.max_index_bytes):
                _, old = self._indexes.popitem(last=False)
                total -= old.nbytes

    def describe(self) -> dict[str, Any]:
        """Small status dict (for logs and the status line)."""
        with self._lock:
            return {"engines": [f"{m} over {v}" for m, v in self._engines],
                    "indexes": len(self._indexes),
                    "index_mib": round(sum(e.nbytes for e in self._indexes.values()) / 2**20, 1)}
