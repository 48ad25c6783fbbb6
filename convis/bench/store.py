"""`convis bench store`: the dataset store's figures. Prints them, asserts nothing.

* throughput: the local engine's images/s x windows per image against the encoder's own
  windows/s, measured interleaved in one run (the rest is decode, scores and writes);
* search at scale: a fabricated store of N images (random unit embeddings; the top hits hold
  730 windows each, the rest one, so the disk stays small) timed for the ranked list and the
  maps of the top 20; the size of a real image's entry; `--rescore` images/s.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from convis.config import GridConfig
from convis.dataset.local import index_dataset, rescore
from convis.dataset.manifest import Item
from convis.dataset.worker import IndexWorker
from convis.store import Store, StoreSpec
from convis.store import scores as sc
from convis.store import search as ss
from convis.store.shards import Row
from convis.windows import crop_windows, grid_boxes, pad_with_noise

SCORE = "top1"


def encoder_windows_per_second(engine, batch_size: int, windows: int = 730) -> float:
    """The encoder alone on `windows` crops of one padded image, `batch_size` per forward."""
    clip, cfg = engine.clip, GridConfig()
    padded = pad_with_noise(np.zeros((224, 224, 3), np.uint8), cfg.pad, 0).to(engine.bank.embeddings.device)
    boxes = grid_boxes(cfg)[:windows]
    t0 = time.perf_counter()
    for a in range(0, len(boxes), batch_size):
        clip.encode_image(crop_windows(padded, boxes[a : a + batch_size], clip.image_size, clip.mean, clip.std))
    return len(boxes) / (time.perf_counter() - t0)


def throughput(engine, images: int, batch_size: int, folder: Path) -> dict:
    from convis.eval.search import write_scenes
    from convis.eval.shapes import benchmark_scenes

    manifest = write_scenes(benchmark_scenes(images, seed=0), folder / "scenes")
    items = [Item(str(manifest.parent / f"scene-{i:04d}.png")) for i in range(images)]
    spec = StoreSpec.make(engine.clip.model_id, engine.clip.precision, GridConfig(), engine.bank.embeddings.shape[1])
    store = Store.create(folder / "store", spec)
    before = encoder_windows_per_second(engine, batch_size)
    with store.writer():
        summary = index_dataset(items, store, IndexWorker(engine, GridConfig(), batch_size, SCORE), SCORE, 4)
    after = encoder_windows_per_second(engine, batch_size)
    t0 = time.perf_counter()
    engine.index(benchmark_scenes(1, seed=1)[0].pil(), GridConfig(), batch_size)
    single = 730 / (time.perf_counter() - t0)
    encoder = (before + after) / 2
    per_image = summary.windows / summary.indexed
    rate = summary.indexed / summary.seconds
    size = sum(p.stat().st_size for p in (folder / "store").rglob("*") if p.is_file())
    return {"encoder_windows_per_s": round(encoder, 1), "index_images_per_s": round(rate, 3),
            "index_fraction_of_encoder": round(rate * per_image / encoder, 3),
            "single_image_fraction_of_encoder": round(single / encoder, 3),
            "store_bytes_per_image": size // summary.indexed, "images_indexed": summary.indexed}


def fabricate(root: Path, engine, total: int, real: int, concept: str, per_shard: int = 8) -> Store:
    """A store of `total` images, of which `real` hold 730 random windows and score best for `concept`."""
    from convis.dataset.local import concept_set

    gen = torch.Generator().manual_seed(0)
    d, t = engine.bank.embeddings.shape[1], len(engine.hierarchy)
    cfg = GridConfig()
    spec = StoreSpec.make(engine.clip.model_id, engine.clip.precision, cfg, d)
    store = Store.create(root, spec)
    cs = concept_set(engine.hierarchy, SCORE)
    col = engine.hierarchy.index(concept)
    rng = np.random.default_rng(0)
    with store.writer():
        done = 0
        while done < total:
            n = min(per_shard if done < real else 2000, total - done)
            windows = 730 if done < real else 1
            rows = [Row(f"{done + i:064x}", f"fake/{done + i}.jpg", 100_000, (0, 0, 224, 224), (224, 224), windows)
                    for i in range(n)]
            emb = torch.nn.functional.normalize(torch.randn(n * windows, d, generator=gen), dim=-1)
            scores = rng.random((n, t)).astype(np.float32) * 0.5
            if done < real:
                scores[:, col] += 0.5  # the real ones are the best hits
            store.add(rows, emb, emb[::windows][:n], cs, scores)
            done += n
        sc.compact(store.scores_dir(cs))
    return Store.open(root)


def search_figures(engine, total: int, real: int, folder: Path, concept: str) -> dict:
    t0 = time.perf_counter()
    fabricate(folder / "big", engine, total, real, concept)
    built = time.perf_counter() - t0
    t0 = time.perf_counter()
    store = Store.open(folder / "big")
    opened = time.perf_counter() - t0
    times = []
    for _ in range(3):  # the first search reads the hash list; later ones find it cached
        t0 = time.perf_counter()
        hits = ss.search_concept(store, engine.hierarchy, concept, 20)
        times.append(time.perf_counter() - t0)
    t0 = time.perf_counter()
    for h in hits:
        ss.concept_maps(store, h.sha256, engine.bank.embeddings, engine.hierarchy, [concept])
    maps = time.perf_counter() - t0
    scores_bytes = sum(p.stat().st_size for p in (folder / "big" / "scores").rglob("*.safetensors"))
    return {"images": total, "concepts": len(engine.hierarchy), "fabricate_seconds": round(built, 1),
            "open_seconds": round(opened, 3), "ranked_list_ms_first": round(times[0] * 1e3, 1),
            "ranked_list_ms": round(min(times[1:]) * 1e3, 1), "maps_top20_seconds": round(maps, 3),
            "score_bytes_per_image_per_concept_set": scores_bytes // total}


def rescore_figures(engine, folder: Path, images: int) -> dict:
    store = fabricate(folder / "re", engine, images, images, engine.hierarchy.ids[0])
    shutil.rmtree(folder / "re" / "scores")
    t0 = time.perf_counter()
    with store.writer():
        n = rescore(store, IndexWorker(engine, GridConfig(), 64, SCORE), SCORE)
    return {"rescore_images": n, "rescore_images_per_s": round(n / (time.perf_counter() - t0), 2)}


def run_store_bench(engine, args: argparse.Namespace) -> dict:
    with tempfile.TemporaryDirectory(dir=args.scratch) as tmp:
        out = {"model": engine.clip.model_id, "vocabulary": engine.hierarchy.vocabulary,
               "threads": torch.get_num_threads()}
        out |= throughput(engine, args.images, args.batch_size, Path(tmp))
        out |= rescore_figures(engine, Path(tmp), args.rescore_images)
        out |= search_figures(engine, args.fabricate, 20, Path(tmp), args.concept or engine.hierarchy.ids[-1])
    return out
