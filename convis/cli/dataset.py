"""`convis index` and `convis store`: put a dataset into a store, resumably, and look after it."""

from __future__ import annotations

import argparse
import json

from convis.cli.flags import Bar, add_engine_args, add_run_args, load_engine, model_and_weights
from convis.config import GridConfig
from convis.errors import UserError

SCORE = "top1"  # convis.store.search.DEFAULT_SCORE, repeated here so --help costs no import


def _worker(args: argparse.Namespace, config: GridConfig):
    from convis.dataset.worker import IndexWorker

    return IndexWorker(load_engine(args), config, args.batch_size, args.score, args.dtype, args.images_per_forward)


def _spec(worker, args: argparse.Namespace, config: GridConfig):
    from convis.store.spec import StoreSpec

    clip = worker.engine.clip
    model, pretrained = model_and_weights(args)
    return StoreSpec.make(clip.model_id, clip.precision, config, int(worker.engine.bank.embeddings.shape[1]),
                          args.dtype, model, pretrained or "")


def cmd_index(args: argparse.Namespace) -> int:
    from convis.dataset.local import Summary, index_dataset, rescore
    from convis.dataset.manifest import read_manifest
    from convis.store.store import Store

    if args.rescore:
        store = Store.open(args.rescore)
        worker = _worker(args, store.spec.grid_config())
        with store.writer():
            n = rescore(store, worker, args.score, Bar("rescoring", len(store), unit="img"))
        print(Summary(rescored=n).describe() if not args.json else json.dumps({"rescored": n}))
        return 0
    if not args.data or not args.out:
        raise UserError("say what to index and where: convis index DATA --out STORE (or --rescore STORE)")
    items = read_manifest(args.data)  # fail fast on a bad path, before loading a model
    if args.engine == "ray":  # and on a missing Ray, with the fix
        from convis.dataset.ray_engine import import_ray

        import_ray()
    config = GridConfig(seed=args.seed, whole=args.whole)
    worker = _worker(args, config)
    store = Store.create(args.out, _spec(worker, args, config))
    bar = Bar("indexing", len(items), unit="img")
    with store.writer():
        if args.engine == "ray":
            from convis.dataset.ray_engine import index_with_ray

            summary = index_with_ray(items, store, worker, args.score, args.images_per_shard, args.address,
                                     args.num_gpus, args.gpus_per_worker, progress=bar)
        else:
            summary = index_dataset(items, store, worker, args.score, args.images_per_shard, bar)
    if args.json:
        print(json.dumps({**vars(summary), "store": str(store.root), "images": len(store)}, indent=2))
    else:
        print(summary.describe())
        print(f"store '{store.root}': {len(store)} images")
    return 0


def cmd_store(args: argparse.Namespace) -> int:
    from convis.store import scores as sc
    from convis.store.store import Store

    store = Store.open(args.store)
    if args.action == "compact":
        with store.writer():
            for cs in store.concept_sets():
                sc.compact(store.scores_dir(cs))
    size = sum(p.stat().st_size for p in store.root.rglob("*") if p.is_file())
    info = {"store": str(store.root), "images": len(store), "shards": len(store.shards()), "bytes": size,
            "bytes_per_image": size // max(len(store), 1), "spec": store.spec.to_json(),
            "concept_sets": [vars(c) for c in store.concept_sets()]}
    print(json.dumps(info, indent=2))
    return 0


def add_dataset_parsers(sub: argparse._SubParsersAction) -> None:
    """Register `index`, `search` and `store` on the `convis` command line."""
    from convis.cli.search import cmd_search

    p = sub.add_parser("index", help="index a dataset (folder or list of paths) into a store, resumably")
    p.add_argument("data", nargs="?", help="a folder of images (recursive) or a .txt/.csv list of paths")
    p.add_argument("--out", help="the store folder (made if absent; a rerun adds only what is missing)")
    p.add_argument("--rescore", metavar="STORE", help="add --vocabulary's scores to a store, no image forward")
    p.add_argument("--whole", action="store_true", help="map the whole picture instead of the centre square")
    p.add_argument("--dtype", choices=("float16", "float32"), default="float16",
                   help="window embeddings kept as float16 (0.73 MB/image, ViT-B/32) or float32")
    p.add_argument("--score", default=SCORE, help="image-level pooling: top1 (default: the share of windows whose best description is in the subtree), top<k>, surprise")
    p.add_argument("--images-per-shard", type=int, default=8, help="images per shard (a crash loses at most one)")
    p.add_argument("--images-per-forward", type=int, default=0, metavar="K",
                   help="K > 0: the windows of K whole images per forward (K x 730; 4 fill a GPU) instead of "
                        "--batch-size windows")
    p.add_argument("--engine", choices=("local", "ray"), default="local",
                   help="local (default, one process) or ray (Ray Data across GPUs: pip install -e .[ray])")
    p.add_argument("--address", default=None, help="ray: join this cluster ('auto'); default: start a local one")
    p.add_argument("--num-gpus", type=float, default=None,
                   help="ray: GPUs to use (default: every GPU of the cluster; 0, or none there: one CPU actor)")
    p.add_argument("--gpus-per-worker", type=float, default=1.0,
                   help="ray: GPUs per actor (0.5: two actors share a GPU, with no memory isolation)")
    add_engine_args(p)
    add_run_args(p, batch_size=256)
    p.set_defaults(func=cmd_index)

    p = sub.add_parser("search", help="which stored images show a concept or phrase most, and where")
    p.add_argument("store")
    p.add_argument("--concept", help="synset, e.g. dog.n.01")
    p.add_argument("--text", help='a phrase, e.g. "a red car"')
    p.add_argument("--top", type=int, default=20, help="hits to return (at most 1000)")
    p.add_argument("--maps", metavar="DIR", help="write each hit's map over its image to DIR")
    p.add_argument("--box", type=float, default=0.5, metavar="TAU", help="each hit's box at threshold TAU")
    p.add_argument("--method", choices=("grid", "gamma"), default="grid")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    add_engine_args(p, model=None, vocabulary=None)
    p.set_defaults(func=cmd_search)

    p = sub.add_parser("store", help="a store's contents (info) or merge its score segments (compact)")
    p.add_argument("action", choices=("info", "compact"))
    p.add_argument("store")
    p.set_defaults(func=cmd_store)
