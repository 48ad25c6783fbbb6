"""`convis` command line: explain, top, concepts, bench (and eval when installed)."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path

import numpy as np

from convis.config import GridConfig, StochasticConfig
from convis.errors import UserError
from convis.render import STYLES
from convis.cli.flags import Bar, add_engine_args, add_run_args, load_engine


def _add_engine_args(p: argparse.ArgumentParser) -> None:
    add_engine_args(p)
    add_run_args(p)
    p.add_argument("--progressive", action="store_true", help="index coarse to fine, the bar names each stage")


def _index(engine, path: str, args: argparse.Namespace, config: GridConfig | None = None):
    from convis.image import load_image

    image = load_image(path)
    config = config or GridConfig(seed=args.seed)
    if not getattr(args, "progressive", False):
        return image, engine.index(image, config, args.batch_size, Bar("indexing windows"))
    bar = Bar("indexing, stage 1 (coarse grid)")
    for part in engine.index_progressive(image, config, args.batch_size, bar):
        if not part.complete:  # the bar's label says which grid is being filled in
            bar.describe(f"indexing, stage {part.stage + 1} of {part.stages}")
    return image, part


def _explain_maps(engine, index, names: list[str], phrases, args: argparse.Namespace) -> np.ndarray:
    """(C, h, w) native maps of the concepts, then of the (P, D) phrase embeddings, by `args.method`."""
    parts = []
    if names and args.method == "stochastic":
        cfg = StochasticConfig(seed=args.seed)
        parts += [engine.stochastic(index, n, cfg, Bar(f"stochastic {n}"))[None] for n in names]
    elif names and args.method == "raw":
        parts.append(index.raw_saliency_many(names, engine.bank.embeddings, size=0))
    elif names:
        parts.append(index.saliency_many(names, size=0))
    if phrases is not None and args.method == "raw":  # the phrase's cosine per window, no rank
        parts.append(index.raw_text_saliency_many(phrases, size=0))
    elif phrases is not None:  # grid or gamma: the phrase's rank among T plus the phrase, no image pass
        parts.append(index.text_saliency_many(phrases, engine.bank.embeddings, size=0))
    return np.concatenate(parts)


def cmd_explain(args: argparse.Namespace) -> int:
    from convis import figure, render
    from convis.boxes import map_to_box
    from convis.concepts.hints import resolve_concept

    concepts, texts = args.concept or [], args.text or []
    if not concepts and not texts:
        raise UserError("say what to map: --concept SYNSET and/or --text \"a phrase\"")
    if texts and args.method == "stochastic":
        raise UserError("--text maps use the grid, gamma or raw method, not stochastic (its sampler scores "
                        "concepts of T); drop --method or pick one of those")
    engine = load_engine(args)
    # Fail fast, before the window pass; a WordNet noun outside T gets its nearest hypernym in T.
    names = [resolve_concept(engine.hierarchy, c) for c in concepts]
    phrases = None
    if texts:
        import torch

        phrases = torch.stack([engine.encode_text(t) for t in texts])  # (P, D)
    score = "gamma" if args.method == "gamma" else "rank"
    image, index = _index(engine, args.image, args, GridConfig(seed=args.seed, score=score, whole=args.whole))
    if index.crop.trimmed:
        print(f"convis: note: {image.width} x {image.height} is longer than {index.config.max_aspect:g}:1; the "
              f"whole-picture map covers its centre strip {index.crop.box} (crop the picture to map another "
              "part)", file=sys.stderr)
    t0 = time.perf_counter()
    maps = _explain_maps(engine, index, names, phrases, args)
    map_seconds = time.perf_counter() - t0
    labels = names + [f'"{t}"' for t in texts]
    crop = np.asarray(image.crop(index.crop.box))
    boxes = [map_to_box(m, args.box) if args.box is not None else None for m in maps]
    look = {"cmap": args.cmap, "alpha": args.alpha, "exponent": args.exponent, "threshold": args.threshold}
    if args.grid or len(labels) > 1:
        out = figure.grid(crop, list(maps), labels, style=args.style, **look)
    else:
        out = render.panel(crop, maps[0], args.style, **look)
        if boxes[0] is not None:
            sy, sx = crop.shape[0] / maps.shape[-2], crop.shape[1] / maps.shape[-1]
            x0, y0, x1, y1 = boxes[0]
            out = render.draw_box(out, tuple(int(round(v)) for v in (x0 * sx, y0 * sy, x1 * sx, y1 * sy)))
        if args.colorbar:
            out = figure.colorbar(out, args.cmap)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_bytes(render.to_png_bytes(out))
    if args.npy:
        np.save(args.npy, maps if len(labels) > 1 else maps[0])
    summary = {"image": args.image, "concepts": names, "texts": texts, "out": args.out, "npy": args.npy,
               "model": index.model_id, "precision": engine.clip.precision,  # int8 and fp32 share a model_id
               "vocabulary": engine.hierarchy.vocabulary, "method": args.method,
               "seed": args.seed, "whole": args.whole, "crop": index.crop.box, "trimmed": index.crop.trimmed,
               "map_size": maps.shape[-1],
               "map_shape": list(maps.shape[-2:]), "windows": len(index.boxes),
               "boxes_224": [list(map(int, b)) if b else None for b in boxes], "map_seconds": map_seconds}
    print(json.dumps(summary, indent=2) if args.json else f"wrote {args.out}")
    return 0


def cmd_top(args: argparse.Namespace) -> int:
    engine = load_engine(args)
    _, index = _index(engine, args.image, args)
    top = index.top_concepts(args.k)
    h = engine.hierarchy
    if args.json:
        print(json.dumps([{"synset": n, "score": round(s, 4), "gloss": h.gloss(n)} for n, s in top], indent=2))
    else:
        for n, s in top:
            print(f"{s:6.3f}  {n:28s} {h.gloss(n)}")
    return 0


def cmd_concepts(args: argparse.Namespace) -> int:
    from convis.concepts.wordnet import load_hierarchy

    h = load_hierarchy(args.vocabulary)
    if args.action == "search":
        hits = h.search(" ".join(args.text), limit=args.limit)
        print(json.dumps([{"synset": n, "gloss": h.gloss(n)} for n in hits], indent=2))
    elif args.action == "show":
        n = h.resolve(args.synset)
        print(json.dumps({"synset": n, "gloss": h.gloss(n), "lemmas": list(h.lemmas(n)),
                          "parents": h.parents(n), "children": h.children(n), "depth": h.depth(n),
                          "path": h.path_to_root(n), "subtree": len(h.subtree(n))}, indent=2))
    else:
        stats = {"vocabulary": h.vocabulary, "wordnet_version": h.wordnet_version, "concepts": len(h),
                 "leaves": len(h.leaves), "roots": h.roots}
        if args.concept:
            stats.update(concept=h.resolve(args.concept), subtree=len(h.subtree(args.concept)))
        print(json.dumps(stats, indent=2))
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of `convis` (exposed for tests and docs)."""
    parser = argparse.ArgumentParser(prog="convis", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("explain", help="saliency maps of concepts on an image")
    p.add_argument("image")
    p.add_argument("--concept", action="append", help="synset (repeat for several)")
    p.add_argument("--text", action="append", help='free-text phrase, e.g. "a red sports car" (repeatable)')
    p.add_argument("--whole", action="store_true",
                   help="map the whole picture (short side 224, the photo's aspect) instead of the centre square")
    p.add_argument("--style", choices=STYLES, default="overlay",
                   help="white = the paper's white blend; mask = only the pixels above --threshold")
    p.add_argument("--grid", action="store_true", help="the Figure-1 grid even for one concept")
    p.add_argument("--threshold", type=float, default=0.5, help="threshold of the mask style")
    p.add_argument("--method", choices=("grid", "gamma", "stochastic", "raw"), default="grid",
                   help="raw = window-to-gloss cosine (with --text: window-to-phrase) without the rank")
    p.add_argument("--cmap", default="jet")
    p.add_argument("--alpha", type=float, default=0.5)
    p.add_argument("--exponent", type=float, default=10.0, help="white-blend exponent (paper: 10)")
    p.add_argument("--box", type=float, default=None, metavar="TAU", help="draw the box at threshold TAU")
    p.add_argument("--colorbar", action="store_true")
    p.add_argument("--out", required=True)
    p.add_argument("--npy", help="also save the native map(s): 224x224, or the whole picture's grid size")
    _add_engine_args(p)
    p.set_defaults(func=cmd_explain)

    p = sub.add_parser("top", help="what does CLIP see here: top concepts of an image")
    p.add_argument("image")
    p.add_argument("-k", type=int, default=20)
    _add_engine_args(p)
    p.set_defaults(func=cmd_top)

    p = sub.add_parser("concepts", help="browse the concept set T")
    csub = p.add_subparsers(dest="action", required=True)
    c = csub.add_parser("search")
    c.add_argument("text", nargs="+")
    c.add_argument("--limit", type=int, default=20)
    c = csub.add_parser("show")
    c.add_argument("synset")
    c = csub.add_parser("stats")
    c.add_argument("--concept")
    for c in csub.choices.values():
        c.add_argument("--vocabulary", default="physical")
    p.set_defaults(func=cmd_concepts)

    from convis.bench.image import add_bench_parser
    from convis.cli.dataset import add_dataset_parsers
    from convis.eval.cli import add_eval_parser

    add_dataset_parsers(sub)
    add_bench_parser(sub)
    add_eval_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `convis` console script; returns the exit status."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(message)s")
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except UserError as e:
        # A user error carries the fix in its message; a traceback would bury it (-v shows it).
        # Anything else is a bug and propagates with its traceback.
        if args.verbose:
            traceback.print_exc()
        print(f"convis: error: {e}", file=sys.stderr)
        return 2
