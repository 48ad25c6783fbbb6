"""The Ray engine: the local engine's three steps on Ray Data, across the GPUs of one or more nodes.

    from_items(new files) -> map_batches(prepare_batch)   CPU tasks: hash, decode, pad
                          -> map_batches(EncodeActor)     a pool of actors, one per GPU: encode, score
                          -> the driver                   one shard per actor call, `store.add`

The driver picks the files as the local engine does (`local.triage`: resume and dedup by sha256)
and writes every shard itself, under the store's lock: both engines write the same store, a crash
loses only the shards in flight, and either engine resumes the other's run. Actors rebuild their
worker from a `WorkerRecipe` (the model by name; the bank and hierarchy shipped, not re-encoded).
Ray is an optional extra (`pip install -e .[ray]`), imported in this module only, at call time.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from typing import Any

import numpy as np
import torch

from convis.config import GridConfig, Progress
from convis.dataset.local import Summary, concept_set, rescore, triage
from convis.dataset.manifest import Item
from convis.dataset.prepare import Prepared, decode, hash_item
from convis.dataset.worker import IndexWorker, WorkerRecipe
from convis.errors import UserError
from convis.store.shards import Row
from convis.store.store import Store

INSTALL = "pip install -e .[ray]"
TENSORS = ("window_emb", "image_emb", "scores")  # what an actor call sends back, as raw bytes
START_TIMEOUT_S = 600  # a pool the cluster cannot place fails after this, instead of waiting forever


def import_ray() -> Any:
    """The `ray` module with Ray Data, or a `UserError` saying how to install it."""
    try:
        import ray
        import ray.data  # noqa: F401  (the `data` extra: pyarrow)
    except ImportError as err:
        raise UserError(f"--engine ray needs Ray Data, which cannot be imported here ({err}); install it with "
                        f"`{INSTALL}` (or pip install 'ray[data]>=2.54,<2.64'), or use --engine local") from err
    return ray


def prepare_batch(batch: dict[str, np.ndarray], config: GridConfig) -> dict[str, np.ndarray]:
    """Step 1 on a CPU task: read, decode and pad each file the driver hashed.

    The bytes are hashed again: a file that changed since the driver read it fails (the store's
    key is the sha256 the driver checked) instead of being stored under another file's hash.
    """
    out = []
    for path, label, sha in zip(batch["path"], batch["label"], batch["sha256"]):
        item, sha = Item(str(path), str(label)), str(sha)
        hashed = hash_item(item)
        if isinstance(hashed, str):
            out.append(Prepared(item, sha, error=hashed))
        elif hashed[0] != sha:
            out.append(Prepared(item, sha, error="the file changed while it was being indexed; run the command again"))
        else:
            out.append(decode(item, sha, hashed[1], config))
    ragged = lambda arrays: np.array([*arrays, None], dtype=object)[:-1]  # noqa: E731  (one array per row)
    return {"path": np.array([p.item.path for p in out]), "label": np.array([p.item.label for p in out]),
            "sha256": np.array([p.sha256 for p in out]), "size": np.array([p.size for p in out], np.int64),
            "crop": np.array([p.crop for p in out], np.int64).reshape(-1, 4),
            "grid": np.array([p.grid for p in out], np.int64).reshape(-1, 2),
            "error": np.array([p.error for p in out]),
            "padded": ragged(np.zeros((3, 0, 0), np.float32) if p.error else p.padded for p in out),
            "boxes": ragged(np.zeros((0, 4), np.int64) if p.error else p.boxes for p in out)}


class EncodeActor:
    """Step 2 on a Ray actor: the worker is built once, then each call encodes one shard's images.

    One row out per call: rows and failures as JSON, tensors as raw bytes (an empty shard too).
    """

    def __init__(self, recipe: Callable[[str], IndexWorker], device: str) -> None:
        self.worker = recipe(device)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        prepared = [Prepared(Item(str(path), str(batch["label"][i])), str(batch["sha256"][i]), int(batch["size"][i]),
                             np.array(batch["padded"][i], np.float32), np.array(batch["boxes"][i]),
                             tuple(int(v) for v in batch["crop"][i]), tuple(int(v) for v in batch["grid"][i]),
                             str(batch["error"][i])) for i, path in enumerate(batch["path"])]
        ok = [p for p in prepared if not p.error]
        enc = self.worker(ok) if ok else None
        tensors = dict(zip(TENSORS, (enc.window_emb, enc.image_emb, torch.from_numpy(enc.scores)))) if enc else {}
        meta = {"rows": [asdict(r) for r in enc.rows] if enc else [],
                "failed": [(p.item.path, p.error) for p in prepared if p.error],
                "shapes": {k: [list(t.shape), str(t.dtype)] for k, t in tensors.items()}}
        packed = {k: tensors[k].contiguous().view(torch.uint8).numpy().tobytes() if enc else b"" for k in TENSORS}
        return {"meta": np.array([json.dumps(meta)]), **{k: np.array([b], dtype=object) for k, b in packed.items()}}


def _unpack(row: dict[str, Any]) -> tuple[list[Row], list[tuple[str, str]], dict[str, torch.Tensor]]:
    meta = json.loads(row["meta"])
    tensors = {k: torch.frombuffer(bytearray(row[k]), dtype=getattr(torch, dtype.removeprefix("torch."))).view(shape)
               for k, (shape, dtype) in meta["shapes"].items()}
    return [Row.from_json(r) for r in meta["rows"]], [tuple(f) for f in meta["failed"]], tensors


def _cause(err: BaseException) -> str:
    """The actor's own exception line ("RuntimeError: ...") out of the remote traceback Ray raises."""
    text = str(err).split("The above exception was the direct cause")[0]  # Ray's wrappers come after
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else type(err).__name__


def pool_size(resources: dict[str, float], num_gpus: float | None, gpus_per_worker: float,
              workers: int | None) -> tuple[int, float, float]:
    """(actors, GPUs per actor, CPUs per actor) for a cluster's resources.

    GPU actors take one CPU each. Without GPUs, one CPU actor (or `workers`) shares every CPU but
    one: actors holding every CPU starve the decode tasks and the dataset hangs (ray#44687).
    """
    have_gpus, cpus = resources.get("GPU", 0.0), resources.get("CPU", 1.0)
    gpus = have_gpus if num_gpus is None else num_gpus
    if gpus > have_gpus:
        raise UserError(f"--num-gpus {gpus:g}: the cluster has {have_gpus:g} GPUs; ask for at most that, "
                        "or 0 for CPU actors")
    if gpus > 0:
        if not 0 < gpus_per_worker <= gpus:
            raise UserError(f"--gpus-per-worker {gpus_per_worker:g} must be above 0 and at most --num-gpus {gpus:g}")
        return workers or max(1, int(gpus / gpus_per_worker)), gpus_per_worker, 1.0
    n = workers or 1
    if n > cpus - 1 and cpus >= 2:
        raise UserError(f"{n} CPU actors need {n + 1} CPUs (one is left for decoding); the cluster has {cpus:g}: "
                        "ask for fewer workers")
    return n, 0.0, max(1.0, (cpus - 1) // n) if cpus >= 2 else 0.5


def index_with_ray(items: Sequence[Item], store: Store, worker: IndexWorker, score: str,
                   images_per_shard: int = 8, address: str | None = None, num_gpus: float | None = None,
                   gpus_per_worker: float = 1.0, workers: int | None = None, progress: Progress | None = None,
                   recipe: Callable[[str], IndexWorker] | None = None) -> Summary:
    """Index every new image of `items` into `store` on Ray Data (hold `store.writer()` around the call).

    Args:
        worker: the driver's worker: its recipe builds the actors' workers; it rescores at the end.
        images_per_shard: images per actor call and per shard (a crash loses up to 2 per actor).
        address: a cluster to join ("auto": this node's); None starts a local one, stopped at the
            end. A Ray already initialised in this process is used as it is.
        num_gpus: GPUs to use (default: every GPU of the cluster; 0 or none: CPU actors).
        gpus_per_worker: GPUs per actor (fractions share a GPU, with no memory isolation).
        workers: actors in the pool (default: num_gpus / gpus_per_worker, or one CPU actor).
        progress: (images done, images total) on the driver, after each shard written.
        recipe: what each actor builds its worker from (default: `WorkerRecipe.of(worker)`).

    Raises:
        UserError: no Ray, too few GPUs, or the run stopped (what was written is kept: rerun).
    """
    ray = import_ray()
    t0, out, cs = time.perf_counter(), Summary(), concept_set(worker.engine.hierarchy, score)
    report = progress or (lambda done, total: None)
    todo = [{"path": it.path, "label": it.label, "sha256": h[0]} for _, it, h in triage(items, store, out) if h]
    done = len(items) - len(todo)
    report(done, len(items))
    started = bool(todo) and not ray.is_initialized()
    if started:  # join `address`, or start a local cluster (no dashboard: nothing here reads it)
        ray.init(address=address) if address else ray.init(include_dashboard=False)
    ctx = ray.data.DataContext.get_current()
    saved = ctx.max_errored_blocks, ctx.wait_for_min_actors_s
    try:
        if todo:
            # fail fast: a dead actor with errored blocks allowed hangs (ray#62746); a rerun resumes
            ctx.max_errored_blocks, ctx.wait_for_min_actors_s = 0, START_TIMEOUT_S
            n, gpus, cpus = pool_size(ray.cluster_resources(), num_gpus, gpus_per_worker, workers)
            # one block per shard: a fused prepare+encode stage (CPU actors) batches within a block
            ds = (ray.data.from_items(todo, override_num_blocks=-(-len(todo) // images_per_shard))
                  .map_batches(prepare_batch, fn_kwargs={"config": worker.config}, batch_size=images_per_shard,
                               num_cpus=1)
                  .map_batches(EncodeActor, compute=ray.data.ActorPoolStrategy(size=n), batch_size=images_per_shard,
                               num_gpus=gpus, num_cpus=cpus, fn_constructor_kwargs={
                                   "recipe": recipe or WorkerRecipe.of(worker), "device": "cuda" if gpus else "cpu"}))
            try:
                for row in ds.iter_rows():
                    rows, failed, t = _unpack(row)
                    if rows:
                        store.add(rows, t["window_emb"], t["image_emb"], cs, t["scores"].numpy())
                    out.indexed, out.windows = out.indexed + len(rows), out.windows + sum(r.windows for r in rows)
                    out.failed += failed
                    done += len(rows) + len(failed)
                    report(done, len(items))
            except Exception as err:  # noqa: BLE001  (Ray wraps the actor's exception in its own)
                raise UserError(f"the Ray run stopped after {out.indexed} new images were stored: {_cause(err)}. "
                                "Those are kept; run the same command again to index the rest.") from err
    finally:
        ctx.max_errored_blocks, ctx.wait_for_min_actors_s = saved
        if started:
            ray.shutdown()
    out.rescored = rescore(store, worker, score)
    out.seconds = time.perf_counter() - t0
    report(len(items), len(items))
    return out
