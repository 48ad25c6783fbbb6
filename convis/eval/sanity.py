"""Sanity checks of the maps (Adebayo et al. 2018): do they depend on the model and on the concepts?

* Model-parameter randomisation: the image tower's blocks are re-drawn from their init
  (`convis.eval.randomise`), cascading from the output down or one block at a time; per step,
  the mean Spearman rho and SSIM (`convis.eval.similarity`) of each method's maps against the
  trained model's maps of the same (scene, query). A method that passes drifts towards 0.
* Data randomisation, in ConVis' setting: the concept embeddings are permuted among T, so a
  concept is ranked by another concept's gloss; the maps must stop pointing at the figure.
* The floor: the same measures between trained maps of unrelated (scene, query) pairs, so a
  figure such as SSIM 0.5 can be read (smooth maps share much local structure by chance).

Queries are the leaf queries of `shapes.benchmark_scenes` (the figure kinds each scene holds).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import numpy as np

from convis.boxes import pointing_hit
from convis.engine import Engine
from convis.eval.mapmaker import MapMaker
from convis.eval.multiobject import pointing_chance
from convis.eval.randomise import randomise_encoder
from convis.eval.shapes import Scene
from convis.eval.similarity import spearman, ssim
from convis.eval.synthetic import scene_queries

PERMUTED = "glosses permuted"  # the data-randomisation step's label
FLOOR = "unrelated maps"  # trained maps of scene i against scene i-1's: what "not alike" scores


def randomised_engine(engine: Engine, blocks: Sequence[str], seed: int = 0) -> Engine:
    """The engine with its image tower's `blocks` randomised (`randomise_encoder`); same T and bank.

    The model id names the randomisation, so nothing keyed on it mistakes it for the trained one.
    """
    model = randomise_encoder(engine.clip.model, blocks, seed)
    tag = f"random[{','.join(blocks)}]@{seed}"
    fingerprint = f"{engine.clip.fingerprint}-{tag}" if engine.clip.fingerprint else tag
    return Engine(dataclasses.replace(engine.clip, model=model, fingerprint=fingerprint), engine.hierarchy,
                  engine.bank)


def permuted_engine(engine: Engine, seed: int = 0) -> Engine:
    """The engine with its (T, D) concept embeddings shuffled among T (a seeded permutation):
    concept s is represented by the gloss of another concept."""
    perm = np.random.default_rng(seed).permutation(len(engine.hierarchy))
    emb = engine.bank.embeddings
    bank = dataclasses.replace(engine.bank, embeddings=emb[perm].contiguous(),
                               model_id=f"{engine.bank.model_id}-permuted@{seed}")
    return Engine(engine.clip, engine.hierarchy, bank)


def _maps(maker: MapMaker, scenes: Sequence[Scene], queries: list[list[str]],
          progress: Callable[[int], None] | None) -> list[dict[str, np.ndarray]]:
    out = []
    for scene, qs in zip(scenes, queries):
        out.append(maker(scene.pil(), qs, size=0)[0])
        if progress:
            progress(1)
    return out


def _compare(label: str, ref: list[dict[str, np.ndarray]], new: list[dict[str, np.ndarray]],
             queries: list[list[str]], methods: Sequence[str]) -> list[dict]:
    """One row per (scene, query, method): Spearman and SSIM of map j of `new` against `ref`'s."""
    return [{"step": label, "scene": i, "query": q, "method": m,
             "spearman": spearman(a[m][j], b[m][j]), "ssim": ssim(a[m][j], b[m][j])}
            for i, (a, b) in enumerate(zip(ref, new)) for j, q in enumerate(queries[i]) for m in methods]


def _step(label: str, blocks: Sequence[str], rows: list[dict], methods: Sequence[str]) -> dict:
    """One step's summary: per method the mean and its standard error of each measure."""
    out: dict = {"step": label, "blocks": list(blocks), "methods": {}}
    for m in methods:
        out["methods"][m] = {}
        for k in ("spearman", "ssim"):
            v = np.array([r[k] for r in rows if r["method"] == m])
            sem = float(v.std(ddof=1) / np.sqrt(v.size)) if v.size > 1 else float("nan")
            out["methods"][m].update({k: float(v.mean()) if v.size else float("nan"), f"{k}_sem": sem})
    return out


def run_sanity(scenes: Sequence[Scene], engine: Engine, make: Callable[[Engine], MapMaker],
               steps: Sequence[tuple[str, tuple[str, ...]]], seed: int = 0, tolerance: float = 15,
               progress: Callable[[int], None] | None = None) -> tuple[dict, list[dict]]:
    """Similarity to the trained maps per randomisation step, and pointing with glosses permuted.

    Args:
        scenes: the scenes; every figure kind a scene holds is one query.
        engine: the trained model, T and its bank.
        make: engine -> the `MapMaker` of the methods to check (same settings for every engine).
        steps: (label, blocks randomised) per step, e.g. a cascade.
        seed: seeds the randomised weights and the permutation.
        progress: called with 1 after each scene of each pass.

    Returns:
        (summary, one row per (step, scene, query, method)). Summary: "steps", a list of
        {"step", "blocks", "methods": {m: {"spearman", "ssim", and their "_sem"}}}, then the
        permuted glosses and the floor (`FLOOR`: first queries of consecutive scenes), and
        "permutation": {"chance", "methods": {m: {"trained", "permuted"}}} (pointing rates).
    """
    hier = engine.hierarchy
    scenes = [s for s in scenes if s.synsets]  # a scene whose figures all failed to fit asks nothing
    found = [scene_queries(s, hier, hypernyms=()) for s in scenes]
    queries = [[q for q, *_ in qs] for qs in found]
    gts = [[g for _, _, g, _ in qs] for qs in found]
    maker = make(engine)
    trained = _maps(maker, scenes, queries, progress)
    rows: list[dict] = []
    for label, blocks in steps:
        maps = _maps(make(randomised_engine(engine, blocks, seed)), scenes, queries, progress)
        rows += _compare(label, trained, maps, queries, maker.methods)
    permuted = _maps(make(permuted_engine(engine, seed)), scenes, queries, progress)
    rows += _compare(PERMUTED, trained, permuted, queries, maker.methods)
    # The floor: trained maps of unrelated (scene, query) pairs, first queries of consecutive scenes.
    rows += _compare(FLOOR, trained, trained[-1:] + trained[:-1], [q[:1] for q in queries], maker.methods,
                     ) if len(scenes) > 1 else []
    out_steps = [_step(label, blocks, [r for r in rows if r["step"] == label], maker.methods)
                 for label, blocks in [*steps, (PERMUTED, ()), (FLOOR, ())]]

    def rate(stack: list[dict[str, np.ndarray]], m: str) -> float:
        return float(np.mean([pointing_hit(maps[m][j], g, tolerance)
                              for maps, per_scene in zip(stack, gts) for j, g in enumerate(per_scene)]))

    hits = {m: {"trained": rate(trained, m), "permuted": rate(permuted, m)} for m in maker.methods}
    chance = float(np.mean([pointing_chance(g, trained[0][maker.methods[0]].shape[-1], tolerance)
                            for per_scene in gts for g in per_scene]))
    summary = {"scenes": len(scenes), "queries": sum(map(len, queries)), "steps": out_steps,
               "permutation": {"chance": chance, "methods": hits}}
    return summary, rows
