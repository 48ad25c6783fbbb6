"""`convis eval sanity` and `convis eval synthetic --objects`: how far to trust the maps.

They share the harness's engine loading, map maker and output (`convis.eval.commands`).
"""

from __future__ import annotations

import argparse

from convis.eval import commands
from convis.eval.commands import _engine, _finish, _maker
from convis.eval.datasets import DataError
from convis.eval.registry import parse_methods
from convis.cli.flags import Bar

OWN_ENCODER = ("grid-int8",)  # methods that load a trained encoder of their own: randomisation misses them


def parse_counts(text: str) -> list[int]:
    """"1,2,3,4" -> [1, 2, 3, 4] (argparse type: a bad list is a usage error naming the fix)."""
    try:
        counts = [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        counts = []
    if not counts or min(counts) < 1:
        raise argparse.ArgumentTypeError(f"'{text}' is not a comma list of figure counts, e.g. 1,2,3,4")
    return list(dict.fromkeys(counts))


def cmd_sanity(args: argparse.Namespace) -> int:
    """`convis eval sanity`: model-parameter randomisation and permuted glosses."""
    from convis.eval.randomise import cascade, encoder_blocks
    from convis.eval.report import table
    from convis.eval.sanity import run_sanity
    from convis.eval.shapes import benchmark_scenes

    methods = parse_methods(args.methods)
    if own := [m for m in methods if m in OWN_ENCODER]:
        raise DataError(f"{', '.join(own)} loads its own trained encoder, so randomising the model "
                        "would not reach it; leave it out of --methods")
    if args.depth is not None and args.depth < 1:
        raise DataError(f"--depth {args.depth}: give a number of blocks >= 1, or leave it out for all")
    engine = _engine(args)
    blocks = encoder_blocks(engine.clip.model)[: args.depth or None]
    if args.independent:
        steps = [(b, (b,)) for b in blocks]
    else:
        steps = [(b[0] if len(b) == 1 else f"{b[0]}..{b[-1]}", b) for b in cascade(blocks)]
    scenes = benchmark_scenes(args.num_scenes, args.seed)
    bar = Bar("scenes x passes", len(scenes) * (len(steps) + 2))
    summary, rows = run_sanity(scenes, engine, lambda e: _maker(args, e), steps, args.seed, args.tolerance, bar)
    summary["mode"] = "independent" if args.independent else "cascade"
    head = ["randomised" + (" (one block)" if args.independent else " (cascade, top down)")]
    head += [f"{m} {k}" for m in methods for k in ("rho", "SSIM")]
    sims = [[s["step"], *(s["methods"][m][k] for m in methods for k in ("spearman", "ssim"))]
            for s in summary["steps"]]
    perm = summary["permutation"]
    points = [[m, perm["methods"][m]["trained"], perm["methods"][m]["permuted"], perm["chance"]] for m in methods]
    text = "\n\n".join([
        table(sims, head, [False] * len(head)),
        table(points, ["method", "pointing, trained", "glosses permuted", "chance"]),
    ])
    notes = [f"{summary['scenes']} scenes, {summary['queries']} queries; seed {args.seed} "
             "(scenes, noise border, random weights, permutation)"]
    return _finish(args, engine, "sanity", summary, rows, text, notes)


def cmd_synthetic(args: argparse.Namespace) -> int:
    """`convis eval synthetic`: the benchmark, or with `--objects` pointing by figure count."""
    return cmd_multiobject(args) if args.objects else commands.cmd_synthetic(args)


def cmd_multiobject(args: argparse.Namespace) -> int:
    """`convis eval synthetic --objects 1,2,3,4`: pointing by the number of figures in the scene."""
    from convis.eval.multiobject import multiobject_scenes, run_multiobject
    from convis.eval.report import table

    engine = _engine(args)
    scenes = multiobject_scenes(args.objects, args.num_scenes, engine.hierarchy, args.seed)
    maker = _maker(args, engine)
    bar = Bar("scenes", sum(map(len, scenes.values())))
    summary, rows = run_multiobject(scenes, maker, args.tolerance, bar)
    head = ["figures", "queries", *maker.methods, "chance", "1/k"]
    body = [[k, c["queries"], *(c["methods"][m] for m in maker.methods), c["chance"], c["one_in_k"]]
            for k, c in summary["counts"].items()]
    text = table(body, head, [False, False, *([True] * (len(head) - 2))])
    notes = [f"{args.num_scenes} scenes per count, seed {args.seed}; chance: a uniformly random point, "
             "1/k: one of the k figures at random"]
    return _finish(args, engine, "objects", summary, rows, text, notes)
