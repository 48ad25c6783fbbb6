"""`convis eval search`: does a store find the scenes that show a concept? (synthetic world)

Seeded scenes are written as files, indexed into a store by the real `convis index` path, then
every figure kind and hypernym is searched. Each image-level signal ranks all scenes; a scene is
relevant when it holds a figure in the query's subtree. Signals, side by side:

* convis-<pool>: pooled window ranks (`convis.index.image_scores`: surprise, top<k> share);
* raw-window: the best window's cosine to the subtree's glosses (rank-free ablation);
* whole-image: the whole image's cosine to them (what one-embedding-per-image tools do);
* random: the expected precision and AP of a random order.
"""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

from convis.concepts.hierarchy import Hierarchy
from convis.index import image_scores
from convis.store.store import Store
from convis.windows import grid_boxes

POOLS = ("surprise", "top1", "top3", "top5", "top10")


def average_precision(relevant: np.ndarray) -> float:
    """AP of a ranked list given as (N,) booleans, best first: mean precision at each relevant hit."""
    hits = np.flatnonzero(relevant)
    return float(np.mean((np.arange(len(hits)) + 1) / (hits + 1))) if len(hits) else 0.0


def signals(store: Store, bank: torch.Tensor, hierarchy: Hierarchy) -> tuple[list[str], dict[str, np.ndarray]]:
    """(sha256 per image, signal name -> (N images, T) scores) from the store's embeddings alone."""
    ctx = image_scores.ScoreContext.of(hierarchy)
    order, kids = ctx.order, ctx.children
    config = store.spec.grid_config()
    rows = store.rows()
    out: dict[str, list[np.ndarray]] = {f"convis-{p}": [] for p in POOLS} | {"raw-window": [], "whole-image": []}
    from convis.store.shards import read_image_emb

    image_emb = {}
    for name, shard_rows in store.shards().items():
        for r, e in zip(shard_rows, read_image_emb(store.root / "shards" / name)):
            image_emb.setdefault(r.sha256, e)
    with torch.inference_mode():
        for r in rows:
            sims = store.windows(r.sha256).float() @ bank.float().T  # (N, T)
            weights = image_scores.window_weights(grid_boxes(config, r.grid), config.pad, r.grid)
            for p in POOLS:
                out[f"convis-{p}"].append(image_scores.image_score(p)(sims, weights, ctx))
            out["raw-window"].append(image_scores.subtree_max(sims, order, kids).amax(dim=0).numpy())
            whole = image_emb[r.sha256].float()[None] @ bank.float().T  # (1, T)
            out["whole-image"].append(image_scores.subtree_max(whole, order, kids)[0].numpy())
    return [r.sha256 for r in rows], {k: np.stack(v) for k, v in out.items()}


def evaluate(labels: Sequence[set[str]], scores: dict[str, np.ndarray], hierarchy: Hierarchy,
             queries: Sequence[str], top: int = 10, random_draws: int = 200, seed: int = 0) -> dict:
    """Precision@top and AP per query and signal.

    Args:
        labels: per image, the synsets of the figures it holds.
        scores: signal -> (N, T) image-level scores (higher = shows it more).

    Returns:
        {"queries": {query: {signal: {"p@k", "ap"}}}, "mean": {signal: {"p@k", "ap"}}}.
    """
    rng = np.random.default_rng(seed)
    per: dict[str, dict[str, dict[str, float]]] = {}
    for q in queries:
        inside = {hierarchy.ids[i] for i in hierarchy.subtree(q)}
        rel = np.array([bool(inside & s) for s in labels])
        col = hierarchy.index(q)
        res = {}
        for name, s in scores.items():
            ranked = rel[np.argsort(-s[:, col], kind="stable")]
            res[name] = {"p@k": float(ranked[:top].mean()), "ap": average_precision(ranked)}
        draws = [rel[rng.permutation(len(rel))] for _ in range(random_draws)]
        res["random"] = {"p@k": float(np.mean([d[:top].mean() for d in draws])),
                         "ap": float(np.mean([average_precision(d) for d in draws]))}
        per[q] = res
    names = list(next(iter(per.values()))) if per else []
    mean = {n: {m: float(np.mean([per[q][n][m] for q in per])) for m in ("p@k", "ap")} for n in names}
    return {"queries": per, "mean": mean, "top": top, "images": len(labels)}


def table(result: dict) -> str:
    """Mean precision@k and mAP per signal, best mAP first."""
    k = result["top"]
    lines = [f"{'signal':16s} {'P@' + str(k):>7s} {'mAP':>7s}   ({len(result['queries'])} queries, "
             f"{result['images']} scenes)"]
    for name, m in sorted(result["mean"].items(), key=lambda t: -t[1]["ap"]):
        lines.append(f"{name:16s} {m['p@k']:7.3f} {m['ap']:7.3f}")
    return "\n".join(lines)



def write_scenes(scenes: Sequence, folder: Path) -> Path:
    """Save scenes as PNG files with a CSV list (label = the figures' synsets); returns the list."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = ["path,label"]
    for i, scene in enumerate(scenes):
        scene.pil().save(folder / f"scene-{i:04d}.png")
        lines.append(f"scene-{i:04d}.png,{' '.join(scene.synsets)}")
    (folder / "scenes.csv").write_text("\n".join(lines) + "\n")
    return folder / "scenes.csv"


def cmd_search(args: argparse.Namespace) -> int:
    """`convis eval search`: precision@k and mAP of store search on seeded synthetic scenes."""
    from convis.cli.flags import Bar
    from convis.config import GridConfig
    from convis.dataset.local import index_dataset
    from convis.dataset.manifest import read_manifest
    from convis.dataset.worker import IndexWorker
    from convis.eval.commands import _engine, _finish
    from convis.eval.figures import SHAPES
    from convis.eval.shapes import benchmark_scenes
    from convis.eval.synthetic import HYPERNYMS
    from convis.store.spec import StoreSpec

    engine = _engine(args)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(args.store or Path(tmp) / "store")
        manifest = write_scenes(benchmark_scenes(args.num_scenes, args.seed), Path(tmp) / "scenes")
        config = GridConfig(seed=args.seed)
        worker = IndexWorker(engine, config, args.batch_size, "top1")
        spec = StoreSpec.make(engine.clip.model_id, engine.clip.precision, config, engine.bank.embeddings.shape[1])
        store = Store.create(root, spec)
        items = read_manifest(manifest)
        with store.writer():
            index_dataset(items, store, worker, "top1", progress=Bar("indexing scenes", len(items), unit="img"))
        label_of = {r.sha256: set(r.label.split()) for r in store.rows()}
        hashes, scores = signals(store, engine.bank.embeddings, engine.hierarchy)
    queries = [q for q in (*SHAPES, *HYPERNYMS) if q in engine.hierarchy]
    result = evaluate([label_of[h] for h in hashes], scores, engine.hierarchy, queries, args.top, seed=args.seed)
    rows = [{"query": q, "signal": n, **m} for q, per in result["queries"].items() for n, m in per.items()]
    summary = {"scenes": args.num_scenes, "top": args.top, "mean": result["mean"]}
    return _finish(args, engine, "search", summary, rows, table(result))


def add_search_parser(sub: argparse._SubParsersAction, common: Callable) -> None:
    s = sub.add_parser("search", help="store search on synthetic scenes: P@k and mAP per signal (no download)")
    s.add_argument("-n", "--num-scenes", type=int, default=60)
    s.add_argument("--top", type=int, default=10, help="k of precision@k")
    s.add_argument("--store", help="keep the scenes' store here (reused by a rerun); default: a temporary one")
    common(s, "synthetic-shapes", "synthetic-shapes", None)
    s.set_defaults(func=cmd_search)
