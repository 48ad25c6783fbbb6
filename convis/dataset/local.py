"""The local engine: index a dataset into a store with one process, resumably.

    for each chunk of new images: write_shard(worker(prepare(chunk)))

Resume and dedup are by content: a file whose sha256 is stored (or met earlier in the run) is not
decoded again. A crash loses at most the shard in flight; images whose shard was written but
whose scores were not get them from their stored embeddings at the end (`rescore`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from convis.concepts.hierarchy import Hierarchy
from convis.config import Progress
from convis.dataset.manifest import Item
from convis.dataset.prepare import Prepared, decode, hash_item
from convis.dataset.worker import IndexWorker
from convis.store import scores as sc
from convis.store.shards import SHARDS
from convis.store.spec import ConceptSet
from convis.store.store import Store
from convis.windows import grid_boxes

Encode = Callable[[Sequence[Prepared], Progress | None], object]  # IndexWorker.__call__


@dataclass
class Summary:
    """What a run did: counts, and each failed file with its reason."""

    indexed: int = 0
    already: int = 0
    duplicates: int = 0
    rescored: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    windows: int = 0
    seconds: float = 0.0

    def describe(self) -> str:
        rate = f", {self.indexed / self.seconds:.2f} images/s" if self.seconds and self.indexed else ""
        lines = [f"indexed {self.indexed}, already in the store {self.already}, duplicates {self.duplicates}, "
                 f"rescored {self.rescored}, failed {len(self.failed)} ({self.seconds:.1f} s{rate})"]
        lines += [f"  failed: {path}: {why}" for path, why in self.failed]
        return "\n".join(lines)


def concept_set(h: Hierarchy, score: str) -> ConceptSet:
    """The scores folder of a concept set under a pooling."""
    return ConceptSet(sc.score_key(h.vocabulary, h.ids, score), h.vocabulary, score, len(h))


def triage(items: Sequence[Item], store: Store, out: Summary) -> Iterator[tuple[int, Item, tuple[str, bytes] | None]]:
    """Hash each item and yield (position from 1, item, (sha256, bytes)), or None for a file to skip.

    A file to skip (unreadable, already stored, or met earlier in this run) is counted in `out`.
    Both engines resume and dedup through this one filter, so they skip the very same files.
    """
    seen: set[str] = set()
    for n, item in enumerate(items, 1):
        hashed = hash_item(item)
        if isinstance(hashed, str):
            out.failed.append((item.path, hashed))
        elif hashed[0] in store:
            out.already += 1
        elif hashed[0] in seen:
            out.duplicates += 1
        else:
            seen.add(hashed[0])
            yield n, item, hashed
            continue
        yield n, item, None


def index_dataset(items: Sequence[Item], store: Store, worker: IndexWorker, score: str,
                  images_per_shard: int = 8, progress: Progress | None = None) -> Summary:
    """Index every new image of `items` into `store` (hold `store.writer()` around the call).

    Args:
        worker: encodes and scores a batch of prepared images.
        images_per_shard: images per shard: what a crash can lose at most, and per encoder batch.
        progress: (images done, images total); done counts skipped and failed files too, and
            moves in fractions of an image while a batch is encoded.
    """
    t0, out, cs = time.perf_counter(), Summary(), concept_set(worker.engine.hierarchy, score)
    pending: list[Prepared] = []

    def flush(done: int) -> None:
        def step(w: int, total: int) -> None:
            if progress is not None:
                progress(done - len(pending) + len(pending) * w / max(total, 1), len(items))

        enc = worker(pending, step)
        store.add(enc.rows, enc.window_emb, enc.image_emb, cs, enc.scores)
        out.indexed += len(pending)
        out.windows += int(enc.window_emb.shape[0])
        pending.clear()

    for n, item, hashed in triage(items, store, out):
        if hashed is not None:
            prepared = decode(item, hashed[0], hashed[1], worker.config)
            if prepared.error:
                out.failed.append((item.path, prepared.error))
            else:
                pending.append(prepared)
        if len(pending) >= images_per_shard:
            flush(n)
        elif progress is not None:
            progress(n - len(pending), len(items))
    if pending:
        flush(len(items))
    out.rescored = rescore(store, worker, score)
    out.seconds = time.perf_counter() - t0
    if progress is not None:
        progress(len(items), len(items))
    return out


def rescore(store: Store, worker: IndexWorker, score: str, progress: Progress | None = None) -> int:
    """Give every stored image without scores in the worker's concept set its scores: no image forward.

    Returns the number of images scored; segments are compacted at the end.
    """
    cs = concept_set(worker.engine.hierarchy, score)
    folder = store.scores_dir(cs)
    have = sc.scored_hashes(folder)
    todo = [(name, [(pos, r) for pos, r in enumerate(rows) if r.sha256 not in have])
            for name, rows in store.shards().items()]
    todo = [(name, rows) for name, rows in todo if rows]
    total, done = sum(len(r) for _, r in todo), 0
    config = store.spec.grid_config()
    for name, rows in todo:
        emb, offsets = _read_shard(store, name)
        scores = []
        for pos, r in rows:
            boxes = grid_boxes(config, r.grid)
            scores.append(worker.score(emb[int(offsets[pos]) : int(offsets[pos + 1])], boxes, r.grid))
            done += 1
            if progress is not None:
                progress(done, total)
        store.add_scores(cs, [r.sha256 for _, r in rows], np.stack(scores))
    sc.compact(folder)
    return total


def _read_shard(store: Store, name: str) -> tuple[torch.Tensor, torch.Tensor]:
    from safetensors import safe_open

    with safe_open(store.root / SHARDS / name, "pt") as f:
        return f.get_tensor("window_emb"), f.get_tensor("offsets")

