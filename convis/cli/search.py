"""`convis search STORE --concept X | --text "..."`: ranked hits, and where in each image."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from convis.cli.flags import load_engine
from convis.errors import UserError

MAX_TOP = 1000


def _engine_for(store, args: argparse.Namespace):
    """The store's model unless --model says otherwise; its only vocabulary unless --vocabulary does."""
    if args.model is None:
        args.model, args.pretrained = store.spec.model or store.spec.model_id, store.spec.pretrained or None
    if args.vocabulary is None:
        sets = store.concept_sets()
        args.vocabulary = sets[0].vocabulary if len(sets) == 1 else "physical"
    return load_engine(args)


def _write_map(out: Path, rank: int, found) -> str:
    """Write the hit's map over its mapped region (or alone when the file is gone) as a PNG."""
    from convis import render
    from convis.image import ImageError, load_image

    x0, y0, w, h = found.row.crop
    heat = found.heat
    try:
        region = np.asarray(load_image(found.hit.path))[y0 : y0 + h, x0 : x0 + w]
    except ImageError:
        region = None
    if region is None or region.shape[:2] != heat.shape:  # gone or changed: the map alone, from the store
        region = np.full((*heat.shape, 3), 255, np.uint8)
    panel = render.panel(region, heat, "overlay")
    if found.box is not None:  # the box is in the image's pixels; the panel is the crop
        bx0, by0, bx1, by1 = found.box
        panel = render.draw_box(panel, (bx0 - x0, by0 - y0, bx1 - x0, by1 - y0))
    path = out / f"{rank:03d}-{found.hit.sha256[:12]}.png"
    path.write_bytes(render.to_png_bytes(panel))
    return str(path)


def cmd_search(args: argparse.Namespace) -> int:
    from convis.store import search as ss
    from convis.store.locate import locate
    from convis.store.store import Store

    if bool(args.concept) == bool(args.text):
        raise UserError('say what to look for: --concept SYNSET or --text "a phrase" (one of them)')
    if not 1 <= args.top <= MAX_TOP:
        raise UserError(f"--top must be between 1 and {MAX_TOP}")
    store = Store.open(args.store)
    engine = _engine_for(store, args)
    bank = engine.bank.embeddings
    config = store.spec.grid_config(score="gamma" if args.method == "gamma" else "rank")
    t0 = time.perf_counter()
    if args.concept:
        from convis.concepts.hints import resolve_concept

        concept = resolve_concept(engine.hierarchy, args.concept)
        hits = ss.search_concept(store, engine.hierarchy, concept, args.top)
    else:
        phrase = engine.encode_text(args.text)
        hits = ss.search_text(store, phrase, bank, args.top)
    ranked = time.perf_counter() - t0
    out = Path(args.maps) if args.maps else None
    if out:
        out.mkdir(parents=True, exist_ok=True)
    results = []
    where = locate(store, hits, bank, engine.hierarchy, concept=concept if args.concept else None,
                   phrase=None if args.concept else phrase, threshold=args.box, config=config)
    for k, found in enumerate(where, 1):
        item = found.as_dict()
        if out:
            item["map"] = _write_map(out, k, found)
        results.append(item)
    seconds = {"ranked": round(ranked, 4), "total": round(time.perf_counter() - t0, 4)}
    if args.json:
        print(json.dumps({"query": args.concept or args.text, "hits": results, "seconds": seconds,
                          "spec": store.spec.to_json()}, indent=2))
    else:
        for k, r in enumerate(results, 1):
            print(f"{k:3d}  {r['score']:.4f}  {r['file']}  box={r['box']}")
        print(f"{len(results)} hits of {len(store)} images in {seconds['total']:.2f} s")
    return 0
