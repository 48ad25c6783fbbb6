"""Pictures and files the app shows or offers: the current view, the compare grid, the exports.

Everything here reads an `Entry` (an index plus its display crop) and never touches the model.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np

import convis
from convis import figure, render
from convis.app.backend import Entry
from convis.app.session import View
from convis.boxes import map_to_box

EXPORT_TTL_S = 3600  # export folders older than this are deleted at the next export


def render_view(entry: Entry, synset: str, view: View) -> tuple[np.ndarray, tuple[int, int, int, int] | None]:
    """The current view of a concept at display size, and its box (display pixels) when asked for."""
    side = entry.display.shape[0]
    saliency = entry.index.saliency(synset, size=side)  # (d, d): no CLIP forward, a few ms
    out = render.panel(entry.display, saliency, view.style, **view.look())
    box = map_to_box(saliency, view.threshold) if view.box else None
    if box is not None:
        out = render.draw_box(out, box, width=max(2, side // 170))
    return out, box


def render_compare(entry: Entry, synsets: list[str], view: View) -> np.ndarray:
    """The paper's Figure 1: the image, then one panel per concept (up to 6)."""
    maps = entry.index.saliency_many(synsets, size=0)  # (C, S, S); the grid resizes to its panels
    return figure.grid(entry.display, list(maps), synsets, style=view.style, **view.look(),
                       columns=min(len(synsets) + 1, 4), panel_inches=2.2)


def settings(entry: Entry, synset: str, view: View, box: tuple[int, int, int, int] | None) -> dict[str, Any]:
    """Everything needed to reproduce a view: model, vocabulary, grid config, crop, view, box."""
    index = entry.index
    image_hash, model, vocabulary, seed = entry.key
    return {
        "convis_version": convis.__version__,
        "synset": synset,
        "gloss": index.hierarchy.gloss(synset),
        "model": index.model_id or model,
        "vocabulary": vocabulary,
        "wordnet_version": index.hierarchy.wordnet_version,
        "image": {"name": entry.name, "pixels_sha1_20": image_hash},
        "crop_in_image": {"x0": index.crop.x0, "y0": index.crop.y0, "side": index.crop.side},
        "grid_config": dataclasses.asdict(index.config),
        "view": view.as_dict(),
        "display_side": int(entry.display.shape[0]),
        "box_in_display": list(map(int, box)) if box else None,
        "map_npy": "float32 (side, side) in [0, 1] over the crop, side = crop side in the image",
        "seed": seed,
    }


def _export_root() -> Path:
    root = Path(tempfile.gettempdir()) / "convis-exports"
    root.mkdir(parents=True, exist_ok=True)
    for old in root.iterdir():  # exports are copied into Gradio's cache; ours only need to live briefly
        if old.is_dir() and time.time() - old.stat().st_mtime > EXPORT_TTL_S:
            shutil.rmtree(old, ignore_errors=True)
    return root


def export(entry: Entry, synset: str, view: View) -> list[str]:
    """Write PNG (the current view), NPY (the raw map) and JSON (the settings); return their paths."""
    folder = _export_root() / uuid.uuid4().hex[:12]
    folder.mkdir()
    stem = f"convis_{Path(entry.name).stem}_{synset}".replace("/", "_")
    picture, box = render_view(entry, synset, view)
    png, npy, meta = folder / f"{stem}.png", folder / f"{stem}.npy", folder / f"{stem}.json"
    png.write_bytes(render.to_png_bytes(picture))
    np.save(npy, entry.index.saliency(synset).astype(np.float32))
    meta.write_text(json.dumps(settings(entry, synset, view, box), indent=2))
    return [str(png), str(npy), str(meta)]
