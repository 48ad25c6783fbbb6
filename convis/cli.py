"""`convis` command line: explain, top, concepts, bench (and eval when installed)."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from convis.config import GridConfig, StochasticConfig

STYLES = ("overlay", "mask", "grid")


class _Bar:
    """(done, total) callback drawing a tqdm bar on stderr."""

    def __init__(self, desc: str) -> None:
        self.desc, self.bar = desc, None

    def __call__(self, done: int, total: int) -> None:
        from tqdm import tqdm

        if self.bar is None:
            self.bar = tqdm(total=total, desc=self.desc, unit="it", leave=False, file=sys.stderr)
        self.bar.update(done - self.bar.n)
        if done >= total:
            self.bar.close()


def _add_engine_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default="ViT-B-32", help="open_clip arch, arch/tag, hf-hub:org/repo, test-tiny")
    p.add_argument("--pretrained", default="openai", help="weights tag, checkpoint file, or 'none' (random)")
    p.add_argument("--vocabulary", default="physical", help="physical | nouns | wordlist:PATH | synsets:PATH | synthetic-shapes")
    p.add_argument("--seek", default="definitions", choices=("definitions", "lemmas"))
    p.add_argument("--device", default="auto")
    p.add_argument("--precision", default="auto", help="auto | fp32 | fp16 | bf16 | int8 (CPU: faster encoder)")
    p.add_argument("--progressive", action="store_true", help="index coarse to fine, one bar per stage")
    p.add_argument("--seed", type=int, default=0, help="seed of the noise border")
    p.add_argument("--batch-size", type=int, default=64)


def _engine(args: argparse.Namespace):
    from convis.engine import Engine

    return Engine.load(args.model, args.pretrained, args.vocabulary, args.seek, args.device,
                       getattr(args, "precision", "auto"), progress=_Bar("encoding concepts"))


def _index(engine, path: str, args: argparse.Namespace, config: GridConfig | None = None):
    from convis.image import load_image

    image = load_image(path)
    config = config or GridConfig(seed=args.seed)
    if not getattr(args, "progressive", False):
        return image, engine.index(image, config, args.batch_size, _Bar("indexing windows"))
    bar = _Bar("indexing, stage 1 (coarse grid)")
    for part in engine.index_progressive(image, config, args.batch_size, bar):
        if not part.complete:  # the bar's label says which grid is being filled in
            bar.desc = f"indexing, stage {part.stage + 1} of {part.stages}"
            if bar.bar is not None:
                bar.bar.set_description(bar.desc)
    return image, part


def cmd_explain(args: argparse.Namespace) -> int:
    from convis import render
    from convis.boxes import map_to_box

    engine = _engine(args)
    names = [engine.hierarchy.resolve(c) for c in args.concept]  # fail fast, before 730 forwards
    score = "gamma" if args.method == "gamma" else "rank"
    image, index = _index(engine, args.image, args, GridConfig(seed=args.seed, score=score))
    t0 = time.perf_counter()
    if args.method == "stochastic":
        maps = np.stack([engine.stochastic(index, n, StochasticConfig(seed=args.seed)) for n in names])
    else:
        maps = index.saliency_many(names, size=0)  # (C, 224, 224)
    map_seconds = time.perf_counter() - t0
    crop = np.asarray(image.crop(index.crop.box))
    boxes = [map_to_box(m, args.box) if args.box is not None else None for m in maps]
    if args.style == "grid" or len(names) > 1:
        style = "white" if args.style == "mask" else "overlay"
        out = render.grid(crop, list(maps), names, style=style, cmap=args.cmap, alpha=args.alpha,
                          exponent=args.exponent)
    else:
        m = render.resize_map(maps[0], crop.shape[:2])
        out = (render.white_blend(crop, m, exponent=args.exponent) if args.style == "mask"
               else render.overlay(crop, m, cmap=args.cmap, alpha=args.alpha))
        if boxes[0] is not None:
            scale = crop.shape[0] / maps.shape[-1]
            out = render.draw_box(out, tuple(int(round(v * scale)) for v in boxes[0]))
        if args.colorbar:
            out = render.colorbar(out, args.cmap)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_bytes(render.to_png_bytes(out))
    if args.npy:
        np.save(args.npy, maps if len(names) > 1 else maps[0])
    summary = {"image": args.image, "concepts": names, "out": args.out, "npy": args.npy,
               "model": index.model_id, "vocabulary": engine.hierarchy.vocabulary, "method": args.method,
               "seed": args.seed, "crop": index.crop.box, "map_size": maps.shape[-1],
               "boxes_224": [list(map(int, b)) if b else None for b in boxes], "map_seconds": map_seconds}
    print(json.dumps(summary, indent=2) if args.json else f"wrote {args.out}")
    return 0


def cmd_top(args: argparse.Namespace) -> int:
    engine = _engine(args)
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
    from convis.wordnet import load_hierarchy

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
    p.add_argument("--concept", action="append", required=True, help="synset (repeat for several)")
    p.add_argument("--style", choices=STYLES, default="overlay", help="mask = the paper's white blend")
    p.add_argument("--method", choices=("grid", "gamma", "stochastic"), default="grid")
    p.add_argument("--cmap", default="jet")
    p.add_argument("--alpha", type=float, default=0.5)
    p.add_argument("--exponent", type=float, default=10.0, help="white-blend exponent (paper: 10)")
    p.add_argument("--box", type=float, default=None, metavar="TAU", help="draw the box at threshold TAU")
    p.add_argument("--colorbar", action="store_true")
    p.add_argument("--out", required=True)
    p.add_argument("--npy", help="also save the raw 224x224 map(s)")
    p.add_argument("--json", action="store_true")
    _add_engine_args(p)
    p.set_defaults(func=cmd_explain)

    p = sub.add_parser("top", help="what does CLIP see here: top concepts of an image")
    p.add_argument("image")
    p.add_argument("-k", type=int, default=20)
    p.add_argument("--json", action="store_true")
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

    from convis.bench import add_bench_parser

    add_bench_parser(sub)
    try:
        from convis.eval.cli import add_eval_parser
    except ImportError:  # the evaluation harness is optional
        pass
    else:
        add_eval_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `convis` console script; returns the exit status."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(message)s")
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except (KeyError, ValueError, FileNotFoundError, RuntimeError) as e:
        # Library errors carry the fix in their message; a traceback would bury it.
        print(f"convis: error: {e}", file=sys.stderr)
        return 2
