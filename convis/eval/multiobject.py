"""Multi-object pointing: scenes with exactly k figures of k distinct kinds, pointing by k.

The question of the FIxLIP study (NeurIPS 2025), where first-order explainers of CLIP fall to
chance on scenes of up to four objects: does the map of one figure's synset still point at that
figure when others share the picture? Kinds are drawn so that none lies in another's subtree (no
circle beside an ellipse), so every query has exactly one right figure.

Two chance levels go beside each row: "chance" is the hit rate of a point drawn uniformly over
the map (the share of pixels within the tolerance of the query's figure), "1/k" that of a
method which finds the figures but picks one at random.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from convis.boxes import Box, pointing_hit
from convis.concepts.hierarchy import Hierarchy
from convis.eval.figures import SHAPES
from convis.eval.mapmaker import MapMaker
from convis.eval.shapes import SIZE, Scene, render_scene
from convis.eval.synthetic import scene_queries

MAX_TRIES = 200  # redraws of a scene whose k figures did not all fit


def pointing_chance(gts: Sequence[Box], side: int = SIZE, tolerance: float = 15) -> float:
    """Hit rate of a uniformly random pixel of a (side, side) map: the share of pixels within
    `tolerance` of a box, by `pointing_hit`'s distance (to the nearest pixel of the box)."""
    c = np.arange(side, dtype=np.float64)
    near = np.zeros((side, side), dtype=bool)
    for x0, y0, x1, y1 in gts:
        dx = np.maximum(np.maximum(x0 - c, 0), c - (x1 - 1))  # (side,) per column
        dy = np.maximum(np.maximum(y0 - c, 0), c - (y1 - 1))  # (side,) per row
        near |= np.hypot(dy[:, None], dx[None, :]) <= tolerance
    return float(near.mean())


def distinct_kinds(rng: np.random.Generator, k: int, hierarchy: Hierarchy,
                   kinds: Sequence[str] = SHAPES) -> list[str]:
    """k figure kinds drawn without repetition, none inside another's subtree."""
    under = {a: {hierarchy.ids[i] for i in hierarchy.subtree(a)} - {a} for a in kinds}
    for _ in range(MAX_TRIES):
        pick = [kinds[i] for i in rng.choice(len(kinds), size=k, replace=False)]
        if not any(b in under[a] for a in pick for b in pick):
            return pick
    raise ValueError(f"could not draw {k} unnested kinds from {len(kinds)}")


def multiobject_scenes(counts: Sequence[int], n: int, hierarchy: Hierarchy, seed: int = 0,
                       ) -> dict[int, list[Scene]]:
    """`n` scenes per figure count k in `counts`, each with exactly k figures of distinct kinds.

    One generator per k (seeded by (seed, k)), so the 2-figure scenes do not change when 4 is
    added to `counts`. A scene whose figures did not all fit is drawn again.
    """
    out: dict[int, list[Scene]] = {}
    for k in counts:
        if not 1 <= k <= len(SHAPES):
            raise ValueError(f"figure counts must lie in 1..{len(SHAPES)}, not {k}")
        rng = np.random.default_rng([seed, k])
        scenes: list[Scene] = []
        for _ in range(n):
            for _ in range(MAX_TRIES):
                scene = render_scene(rng, distinct_kinds(rng, k, hierarchy))
                if len(scene.synsets) == k:
                    break
            else:
                raise ValueError(f"{k} figures did not fit a {SIZE}-px scene in {MAX_TRIES} draws")
            scenes.append(scene)
        out[k] = scenes
    return out


def run_multiobject(scenes: dict[int, list[Scene]], maker: MapMaker, tolerance: float = 15,
                    progress: Callable[[int], None] | None = None) -> tuple[dict, list[dict]]:
    """Pointing of every method of `maker`, per figure count.

    Returns:
        (summary, one row per (scene, query)). Summary: "counts" maps k to its "scenes",
        "queries", "chance" (uniform point), "one_in_k" and per-method pointing ("methods").
    """
    hier = maker.engine.hierarchy
    rows: list[dict] = []
    for k, group in scenes.items():
        for i, scene in enumerate(group):
            queries = scene_queries(scene, hier, hypernyms=())
            maps, _ = maker(scene.pil(), [q for q, *_ in queries], size=0)
            for j, (q, _, gts, _) in enumerate(queries):
                row = {"figures_count": k, "scene": i, "query": q, "figures": " ".join(scene.synsets),
                       "chance": pointing_chance(gts, maps[maker.methods[0]].shape[-1], tolerance)}
                row.update({f"{m}_hit": bool(pointing_hit(maps[m][j], gts, tolerance)) for m in maker.methods})
                rows.append(row)
            if progress:
                progress(1)
    counts = {}
    for k, group in scenes.items():
        sub = [r for r in rows if r["figures_count"] == k]
        counts[k] = {"scenes": len(group), "queries": len(sub),
                     "chance": float(np.mean([r["chance"] for r in sub])), "one_in_k": 1.0 / k,
                     "methods": {m: float(np.mean([r[f"{m}_hit"] for r in sub])) for m in maker.methods}}
    return {"tolerance": tolerance, "counts": counts}, rows
