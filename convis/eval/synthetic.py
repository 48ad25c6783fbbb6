"""The synthetic benchmark: localisation of plane figures on seeded scenes, no download needed.

Each scene (1 to 3 figures, `shapes.benchmark_scenes`) is queried with the synset of every figure
kind it holds; the ground truth is every figure whose synset lies in the query's subtree (a
query for ellipse.n.01 is also answered by a circle). Scenes that also hold a figure outside a
query's subtree are the "distractor" cases. Hypernym queries (polygon.n.01, ...) are asked
whenever the scene holds both a figure inside and one outside their subtree.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from convis.boxes import THRESHOLDS, box_accuracy, pointing_hit
from convis.eval.mapmaker import MapMaker
from convis.eval.progressive_methods import extra_row, extra_summary
from convis.eval.shapes import Scene
from convis.concepts.hierarchy import Hierarchy

HYPERNYMS = ("polygon.n.01", "quadrilateral.n.01", "parallelogram.n.01", "conic_section.n.01", "curve.n.01")
TOLERANCE = 15  # px, the pointing game's usual radius (scene pixels = map pixels here)


def scene_queries(scene: Scene, hierarchy: Hierarchy, hypernyms: Sequence[str] = HYPERNYMS,
                  ) -> list[tuple[str, str, list[tuple[int, int, int, int]], bool]]:
    """(query, kind "leaf"/"hypernym", ground-truth boxes, has a distractor) for one scene."""
    out = []
    kinds = list(dict.fromkeys(scene.synsets))
    for q, kind in [(k, "leaf") for k in kinds] + [(h, "hypernym") for h in hypernyms]:
        inside = set(hierarchy.ids[i] for i in hierarchy.subtree(q))
        gts = [b for s, b in zip(scene.synsets, scene.boxes) if s in inside]
        distractor = any(s not in inside for s in scene.synsets)
        if gts and (kind == "leaf" or distractor):
            out.append((q, kind, gts, distractor))
    return out


def run_synthetic(scenes: Sequence[Scene], maker: MapMaker, tolerance: float = TOLERANCE,
                  progress: Callable[[int], None] | None = None) -> tuple[dict, list[dict]]:
    """Pointing game and MaxBoxAcc of every method of `maker` on the scenes.

    Returns:
        (summary, one row per (scene, query)). Summary per method: "pointing" (leaf queries),
        "pointing_distractor" (leaf queries on scenes with another kind of figure),
        "pointing_hypernym", "maxboxacc" and "maxboxacc_v2" (leaf queries), "seconds_per_scene".
    """
    hier = maker.engine.hierarchy
    rows: list[dict] = []
    maps_by_method: dict[str, list[np.ndarray]] = {m: [] for m in maker.methods}
    gts_leaf: list[list[tuple[int, int, int, int]]] = []
    for k, scene in enumerate(scenes):
        queries = scene_queries(scene, hier)
        maps, _ = maker(scene.pil(), [q for q, *_ in queries], size=0)
        for j, (q, kind, gts, distractor) in enumerate(queries):
            row = {"scene": k, "query": q, "kind": kind, "figures": " ".join(scene.synsets),
                   "distractor": distractor}
            for m in maker.methods:
                row[f"{m}_hit"] = bool(pointing_hit(maps[m][j], gts, tolerance))
                row.update(extra_row(maker, m, j, gts, tolerance))
                if kind == "leaf":
                    maps_by_method[m].append(maps[m][j])
            if kind == "leaf":
                gts_leaf.append(gts)
            rows.append(row)
        if progress:
            progress(1)
    return summarise(rows, maps_by_method, gts_leaf, maker, len(scenes)), rows


def summarise(rows: list[dict], maps: dict[str, list[np.ndarray]], gts: list, maker: MapMaker,
              n_scenes: int) -> dict:
    """The benchmark's table from per-query rows and the leaf-query maps."""
    leaf = [r for r in rows if r["kind"] == "leaf"]
    hard = [r for r in leaf if r["distractor"]]
    hyper = [r for r in rows if r["kind"] == "hypernym"]

    def rate(subset: list[dict], m: str) -> float:
        return float(np.mean([r[f"{m}_hit"] for r in subset])) if subset else float("nan")

    out: dict = {"scenes": n_scenes, "leaf_queries": len(leaf), "distractor_queries": len(hard),
                 "hypernym_queries": len(hyper), "methods": {}}
    for m in maker.methods:
        acc = box_accuracy(maps[m], gts, THRESHOLDS) if maps[m] else {}
        out["methods"][m] = {
            "pointing": rate(leaf, m), "pointing_distractor": rate(hard, m),
            "pointing_hypernym": rate(hyper, m), "maxboxacc": acc.get("maxboxacc", float("nan")),
            "maxboxacc_v2": acc.get("maxboxacc_v2", float("nan")),
            "seconds_per_scene": maker.seconds[m] / max(n_scenes, 1),
            **extra_summary(maker, m, rows),
        }
    return out
