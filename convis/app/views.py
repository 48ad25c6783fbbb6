"""Pictures and files the app shows or offers: the current view, the compare grid, the exports.

Everything here reads an `Entry` (an index plus its display region) and never touches the model;
maps that need more than the index (a phrase's, a stochastic one) come in ready-made. Maps and
pictures are (H, W): square for the paper's centre square, the photo's aspect for the whole picture.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np

import convis
from convis import figure, render
from convis.app.entry import Entry
from convis.app.maps import region_name
from convis.app.session import View
from convis.boxes import map_to_box


def render_view(entry: Entry, synset: str, view: View,
                saliency: np.ndarray | None = None) -> tuple[np.ndarray, tuple[int, int, int, int] | None]:
    """The current view of a concept at display size, and its box (display pixels) when asked for.

    `saliency`: a ready (h, w) map to draw instead of the concept's grid map from the index.
    """
    shape = entry.display.shape[:2]
    if saliency is None:
        saliency = entry.index.saliency(synset, size=shape)  # (H, W): no CLIP forward, a few ms
    else:
        saliency = render.resize_map(saliency, shape)
    out = render.panel(entry.display, saliency, view.style, **view.look())
    box = map_to_box(saliency, view.threshold) if view.box else None
    if box is not None:
        out = render.draw_box(out, box, width=max(2, min(shape) // 170))
    return out, box


def render_compare(entry: Entry, synsets: list[str], view: View,
                   maps: list[np.ndarray] | None = None) -> np.ndarray:
    """The paper's Figure 1: the image, then one panel per concept or phrase (up to 6).

    `maps`: ready maps, one per item (phrases need the engine); default: the index's grid maps.
    """
    if maps is None:
        maps = list(entry.index.saliency_many(synsets, size=0))  # (C, h, w); the grid resizes them
    return figure.grid(entry.display, list(maps), synsets, style=view.style, **view.look(),
                       columns=min(len(synsets) + 1, 4), panel_inches=2.2)


def settings(entry: Entry, synset: str, view: View, box: tuple[int, int, int, int] | None) -> dict[str, Any]:
    """Everything needed to reproduce a view: model, vocabulary, grid config, crop, view, box."""
    index = entry.index
    image_hash, model, vocabulary, seed, _ = entry.key
    return {
        "convis_version": convis.__version__,
        "synset": synset,
        "gloss": index.hierarchy.gloss(synset) if synset in index.hierarchy else "free-text phrase",
        "model": index.model_id or model,
        "precision": index.precision or None,  # int8 and fp32 share a model_id, not their maps
        "vocabulary": vocabulary,
        "wordnet_version": index.hierarchy.wordnet_version,
        "image": {"name": entry.name, "pixels_sha256": image_hash},
        "region": region_name(entry),
        "crop_in_image": {"x0": index.crop.x0, "y0": index.crop.y0, "height": index.crop.shape[0],
                          "width": index.crop.shape[1]},
        "grid_config": dataclasses.asdict(index.config),
        "view": view.as_dict(),
        "display_shape": list(map(int, entry.display.shape[:2])),
        "box_in_display": list(map(int, box)) if box else None,
        "map_npy": "float32 (height, width) in [0, 1] over crop_in_image, at its size in the image",
        "seed": seed,
    }


def export(entry: Entry, synset: str, view: View, folder: Path, saliency: np.ndarray | None = None,
           method: str = "grid") -> list[str]:
    """Write PNG (the current view), NPY (the map) and JSON (the settings) into `folder` (the
    session's, see `Session.export_folder`); return their paths.

    `synset` may be a quoted phrase, with its ready `saliency`; `method` names the map kind.
    """
    safe = "".join(ch if ch.isalnum() or ch in "._-" else "_" for ch in synset)[:60]
    stem = f"convis_{Path(entry.name).stem}_{safe}"
    picture, box = render_view(entry, synset, view, saliency)
    png, npy, meta = folder / f"{stem}.png", folder / f"{stem}.npy", folder / f"{stem}.json"
    png.write_bytes(render.to_png_bytes(picture))
    full = entry.index.crop.shape
    raw = entry.index.saliency(synset) if saliency is None else render.resize_map(saliency, full)
    np.save(npy, raw.astype(np.float32))
    meta.write_text(json.dumps({**settings(entry, synset, view, box), "method": method}, indent=2))
    return [str(png), str(npy), str(meta)]
