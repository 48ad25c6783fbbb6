"""A dataset index on disk: `Store.open(path)`, then `.search(...)`, `.maps(...)`, `.index(...)`.

Layout (see README, "Datasets"):

    STORE/store.json                         the spec (`convis.store.spec`)
    STORE/shards/part-*.safetensors          window_emb (W, D), image_emb (n, D), offsets; rows in the header
    STORE/scores/<key>/concepts.json         the concept set (vocabulary, score, T, digest)
    STORE/scores/<key>/seg-*.safetensors     scores (T, n) float16, one concept per contiguous row
    STORE/catalog.json                       every shard's rows, rewritten after a run (a cache of the headers)

One writer at a time (`writer()` holds an exclusive lock on STORE/.lock); readers never block.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from dataclasses import asdict
from typing import TYPE_CHECKING
from pathlib import Path

import numpy as np
import torch

from convis.store import scores as sc
from convis.store.shards import Row, read_rows, read_windows, shard_files, write_shard
from convis.store import search as ss
from convis.store.spec import SPEC_FILE, ConceptSet, Hit, StoreError, StoreSpec, check_spec, read_spec

if TYPE_CHECKING:
    from PIL import Image

    from convis.engine import Engine
    from convis.index.image_index import ImageIndex

CATALOG = "catalog.json"


class Store:
    """An open store. Cheap to open: reads the spec and the catalog, no tensor."""

    def __init__(self, root: Path, spec: StoreSpec) -> None:
        self.root, self.spec = root, spec
        self._where: dict[str, tuple[str, int]] = {}  # sha256 -> (shard file name, position)
        self._rows: dict[str, Row] = {}
        self._shards: dict[str, list[Row]] = {}  # shard file name -> its rows, as in its header
        self._load_catalog()

    # ---- opening and writing -------------------------------------------------------------
    @classmethod
    def open(cls, root: str | Path) -> Store:
        root = Path(root)
        return cls(root, read_spec(root))

    @classmethod
    def create(cls, root: str | Path, spec: StoreSpec) -> Store:
        """Open the store at `root`, making it if absent; refuse one made with other settings."""
        root = Path(root)
        if root.exists() and not root.is_dir():
            raise StoreError(f"'{root}' is a file; --out must be a folder (new or a store)")
        if (root / SPEC_FILE).is_file():
            check_spec(root, spec)
        elif root.is_dir() and any(root.iterdir()):
            raise StoreError(f"'{root}' is a folder with other files in it; pick a new or empty --out folder")
        else:
            root.mkdir(parents=True, exist_ok=True)
            (root / SPEC_FILE).write_text(json.dumps(spec.to_json(), indent=2) + "\n")
        return cls.open(root)

    @contextlib.contextmanager
    def writer(self) -> Iterator[Store]:
        """Hold the store's write lock; a second writer is refused, not interleaved."""
        import fcntl

        fd = os.open(self.root / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                other = os.pread(fd, 64, 0).decode(errors="replace").strip() or "?"
                raise StoreError(f"another process (pid {other}) is writing to the store '{self.root}'; "
                                 "wait for it to finish, or write to another --out folder") from None
            os.ftruncate(fd, 0)
            os.pwrite(fd, str(os.getpid()).encode(), 0)
            yield self
            self.save_catalog()
        finally:
            os.close(fd)  # closing releases the lock, also when the process dies

    def add(self, rows: list[Row], window_emb: torch.Tensor, image_emb: torch.Tensor,
            concept_set: ConceptSet | None = None, scores: np.ndarray | None = None) -> None:
        """Write one shard (and its scores segment), then record it."""
        path = write_shard(self.root, rows, window_emb.to(_dtype(self.spec)), image_emb.to(_dtype(self.spec)))
        if concept_set is not None and scores is not None:
            sc.write_segment(self.scores_dir(concept_set), [r.sha256 for r in rows], scores)
        self._record(path.name, rows)

    def add_scores(self, concept_set: ConceptSet, sha256s: list[str], scores: np.ndarray) -> None:
        sc.write_segment(self.scores_dir(concept_set), sha256s, scores)

    # ---- what is stored ---------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._rows)

    def __contains__(self, sha256: str) -> bool:
        return sha256 in self._rows

    def rows(self) -> list[Row]:
        return list(self._rows.values())

    def row(self, sha256: str) -> Row:
        if sha256 not in self._rows:
            raise StoreError(f"no image with sha256 {sha256[:12]}... in the store '{self.root}'")
        return self._rows[sha256]

    def windows(self, sha256: str) -> torch.Tensor:
        """(N, D) the image's stored unit window embeddings, in the store's dtype."""
        self.row(sha256)
        name, position = self._where[sha256]
        return read_windows(self.root / "shards" / name, position)

    def shards(self) -> dict[str, list[Row]]:
        """Shard file name -> its rows in order (a row repeated by a retried write included)."""
        return dict(self._shards)

    def scores_dir(self, concept_set: ConceptSet) -> Path:
        folder = self.root / sc.SCORES / concept_set.key
        if not (folder / "concepts.json").is_file():
            folder.mkdir(parents=True, exist_ok=True)
            (folder / "concepts.json").write_text(json.dumps(asdict(concept_set)) + "\n")
        return folder

    def concept_sets(self) -> list[ConceptSet]:
        return [ConceptSet(**json.loads(p.read_text())) for p in sorted((self.root / sc.SCORES).glob("*/concepts.json"))]

    # ---- asking it ---------------------------------------------------------------------------
    def search(self, engine: Engine, concept: str | None = None, text: str | None = None, k: int = 20) -> list[Hit]:
        """The k images that show a concept (a synset of `engine`'s T) or a phrase most, best first."""
        if (concept is None) == (text is None):
            raise StoreError("search for a concept or a phrase (one of them)")
        if concept is not None:
            return ss.search_concept(self, engine.hierarchy, concept, k)
        return ss.search_text(self, engine.encode_text(text), engine.bank.embeddings, k)

    def maps(self, engine: Engine, sha256: str, concepts: list[str], size: int | tuple[int, int] | None = None) -> np.ndarray:
        """(C, H, W) ConVis maps of concepts on a stored image, from its stored windows (no forward)."""
        return ss.concept_maps(self, sha256, engine.bank.embeddings, engine.hierarchy, concepts, size=size)

    def image(self, sha256: str) -> Image.Image:
        """The stored image's original file, decoded (StoreError if it moved or changed since indexing)."""
        return ss.stored_image(self, sha256)

    def index(self, sha256: str, engine: Engine, image: Image.Image | None = None) -> ImageIndex:
        """The stored image as an `ImageIndex` equal to `engine.index`'s; `image` is its file already
        read (by `image`), else the original file is read."""
        return ss.stored_index(self, sha256, engine, image)

    # ---- the catalog: a cache of the shards' headers --------------------------------------
    def _record(self, name: str, rows: list[Row]) -> None:
        self._shards[name] = rows
        for pos, r in enumerate(rows):
            if r.sha256 not in self._rows:  # a retried shard may repeat rows: the first one wins
                self._rows[r.sha256], self._where[r.sha256] = r, (name, pos)

    def _load_catalog(self) -> None:
        cat = self.root / CATALOG
        known: dict[str, list] = json.loads(cat.read_text()).get("shards", {}) if cat.is_file() else {}
        present = {p.name: p for p in shard_files(self.root)}
        for name in sorted(present):
            rows = [Row.from_json(d) for d in known[name]] if name in known else read_rows(present[name])
            self._record(name, rows)

    def save_catalog(self) -> None:
        shards = {name: [asdict(r) for r in rows] for name, rows in self._shards.items()}
        tmp = self.root / f".{CATALOG}.tmp"
        tmp.write_text(json.dumps({"shards": shards}))
        os.replace(tmp, self.root / CATALOG)


def _dtype(spec: StoreSpec) -> torch.dtype:
    return {"float16": torch.float16, "float32": torch.float32}[spec.dtype]
