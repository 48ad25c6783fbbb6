"""`convis bench ray`: what the Ray engine costs over the local one on this machine. Prints, asserts nothing.

The same synthetic scenes are indexed with the local engine, then with the Ray engine, which
starts and stops its own single-node cluster as `convis index --engine ray` does. Ray's per-image
time is its steady rate, between the first and the last shard written (shards of 2 images);
its start-up is the time to the first shard less that shard's images at that rate (the cluster,
the actor's start with its model, the pipeline's first pass).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from convis.config import GridConfig
from convis.dataset.local import index_dataset
from convis.dataset.manifest import read_manifest
from convis.dataset.worker import IndexWorker
from convis.store import Store, StoreSpec

SCORE = "top1"


def _timed_run(engine, items, root: Path, batch_size: int, ray: bool) -> list[tuple[float, float]]:
    """(seconds since the start, images done) at each progress report; the last is the end."""
    from convis.dataset.ray_engine import index_with_ray

    spec = StoreSpec.make(engine.clip.model_id, engine.clip.precision, GridConfig(), engine.bank.embeddings.shape[1])
    store, worker = Store.create(root, spec), IndexWorker(engine, GridConfig(), batch_size, SCORE)
    t0, stamps = time.perf_counter(), []
    with store.writer():
        summary = (index_with_ray if ray else index_dataset)(
            items, store, worker, SCORE, 2, progress=lambda done, total: stamps.append((time.perf_counter() - t0, done)))
    assert summary.indexed == len(items), summary.describe()
    return stamps + [(time.perf_counter() - t0, len(items))]


def run_ray_bench(engine, args: argparse.Namespace) -> dict:
    """Seconds per image local and on Ray, and Ray's start-up, on `args.images` scenes (at least 6)."""
    from convis.dataset.ray_engine import import_ray
    from convis.eval.search import write_scenes
    from convis.eval.shapes import benchmark_scenes

    import_ray()  # say how to install it before any work
    n = max(args.images, 6)
    with tempfile.TemporaryDirectory(dir=args.scratch) as tmp:
        items = read_manifest(write_scenes(benchmark_scenes(n, seed=0), Path(tmp) / "scenes").parent)
        _timed_run(engine, items[:2], Path(tmp) / "warm", args.batch_size, ray=False)  # first-call costs out
        local = _timed_run(engine, items, Path(tmp) / "local", args.batch_size, ray=False)[-1][0]
        stamps = _timed_run(engine, items, Path(tmp) / "ray", args.batch_size, ray=True)
    (t1, d1), (t2, _) = next(s for s in stamps if s[1] > 0), next(s for s in stamps if s[1] >= n)
    per = (t2 - t1) / (n - d1)
    return {"model": engine.clip.model_id, "device": str(engine.clip.device), "images": n,
            "driver_threads": torch.get_num_threads(),
            "local_seconds": round(local, 2), "local_seconds_per_image": round(local / n, 3),
            "ray_seconds": round(stamps[-1][0], 2), "ray_seconds_per_image": round(per, 3),
            "ray_start_up_seconds": round(t1 - d1 * per, 2),
            "ray_per_image_vs_local": round(per / (local / n), 2)}
