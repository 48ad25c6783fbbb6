"""Evaluation methods of the live CPU path (issue 9), hooked into `MapMaker` by name.

* ``grid-progressive``: ConVis from the first coarse-to-fine stage's windows only (what the app
  shows first). Per stage it records the map's Pearson r with the full fp32 ConVis map and the
  pointing hit; the summary lists them under ``stages``. The stage indexes are the full index
  restricted to the windows done: the progressive index encodes the same windows with the same
  ranks (tests/test_progressive.py), so no second pass is needed.
* ``grid-int8``: ConVis from a window pass of the int8 image encoder (the concept bank stays
  fp32), with its map's r against fp32 ConVis and the share of windows whose best concept agrees.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from convis.boxes import pointing_hit
from convis.eval.registry import Job, register_method
from convis.index.build import index_image
from convis.index.progressive import DEFAULT_SCHEDULE, restrict, stage_rows, stage_smoothing

if TYPE_CHECKING:
    from convis.eval.mapmaker import MapMaker


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.ravel().astype(np.float64), b.ravel().astype(np.float64)
    if a.std() == 0 or b.std() == 0:
        return float("nan")  # a flat map correlates with nothing
    return float(np.corrcoef(a, b)[0, 1])


@register_method("grid-progressive", windowed=True, in_all=False)
def progressive_maps(job: Job) -> np.ndarray:
    """(C, side, side) maps of the first stage; every stage's maps go to `job.extra`."""
    index, concepts, side = job.index, job.concepts, job.side
    done: list[np.ndarray] = []
    maps, windows = [], []
    stages = stage_rows(job.config, DEFAULT_SCHEDULE, index.padded.shape[1:])
    for k, rows in enumerate(stages, 1):
        done.append(rows)
        keep = np.sort(np.concatenate(done))
        part = restrict(index, keep, k, len(stages), stage_smoothing(DEFAULT_SCHEDULE, k))
        maps.append(part.saliency_many(concepts, side))
        windows.append(len(keep))
    job.extra["grid-progressive"] = {"reference": index.saliency_many(concepts, side),
                                         "stages": maps, "windows": windows, "total": len(index.boxes)}
    return maps[0]


@register_method("grid-int8", windowed=True, in_all=False)
def int8_maps(job: Job) -> np.ndarray:
    """(C, side, side) ConVis maps from the int8 encoder (CPU only: the model door says so)."""
    from convis.clip.models import load_model

    index, concepts, side = job.index, job.concepts, job.side
    clip, bank = job.engine.clip, job.engine.bank
    q = load_model(clip.name, clip.pretrained or "none", device="cpu", precision="int8")
    qindex = index_image(job.image, q.encode_image, bank.embeddings.cpu(), job.engine.hierarchy,
                         job.engine.spec, job.config, job.batch_size)
    maps = qindex.saliency_many(concepts, side)
    agree = float((qindex.ranks.argmin(axis=1) == index.ranks.argmin(axis=1)).mean())
    job.extra["grid-int8"] = {"reference": index.saliency_many(concepts, side), "stages": [maps],
                                  "windows": [len(qindex.boxes)], "total": len(index.boxes), "top1": agree}
    return maps


def extra_row(maker: MapMaker, method: str, j: int, gts: list, tolerance: float) -> dict:
    """Per-query columns of an extra method: each stage's r with ConVis and its pointing hit."""
    rec = maker.extra.get(method)
    if rec is None:
        return {}
    out = {}
    for k, maps in enumerate(rec["stages"], 1):
        out[f"{method}_s{k}_r"] = _pearson(maps[j], rec["reference"][j])
        out[f"{method}_s{k}_hit"] = bool(pointing_hit(maps[j], gts, tolerance))
    if "top1" in rec:
        out[f"{method}_top1"] = rec["top1"]
    return out


def extra_summary(maker: MapMaker, method: str, rows: list[dict]) -> dict:
    """Summary figures of an extra method: r medians over all queries, pointing over leaf queries."""
    rec = maker.extra.get(method)
    if rec is None or not rows:
        return {}
    leaf = [r for r in rows if r["kind"] == "leaf"]
    stages = []
    for k, windows in enumerate(rec["windows"], 1):
        rs = [r[f"{method}_s{k}_r"] for r in rows if not np.isnan(r[f"{method}_s{k}_r"])]
        stages.append({"stage": k, "windows": windows, "fraction": round(windows / rec["total"], 3),
                       "map_pearson_vs_convis": float(np.median(rs)) if rs else float("nan"),
                       "map_pearson_p10": float(np.percentile(rs, 10)) if rs else float("nan"),
                       "pointing": float(np.mean([r[f"{method}_s{k}_hit"] for r in leaf])) if leaf else float("nan")})
    if method == "grid-progressive":
        return {"stages": stages}
    top1 = [r[f"{method}_top1"] for r in rows if f"{method}_top1" in r]
    return {"map_pearson_vs_convis": stages[0]["map_pearson_vs_convis"],
            "map_pearson_p10": stages[0]["map_pearson_p10"],
            "window_top1_agreement": float(np.mean(top1)) if top1 else float("nan")}
