"""The `convis eval` commands: load the engine, run an experiment, print and write its results.

Every command is seeded (`--seed` draws the images, the noise border and the stochastic
sampler), prints a table (or the summary as JSON with `--json`) and, with `--out DIR`, writes
`<command>_images.csv` (one row per image or query) and `<command>_summary.json`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from convis.config import GridConfig, StochasticConfig
from convis.eval.datasets import DataError
from convis.cli.flags import Bar, load_engine

if TYPE_CHECKING:
    from convis.engine import Engine
    from convis.eval.datasets import Sample
    from convis.eval.mapmaker import MapMaker


def _engine(args: argparse.Namespace) -> Engine:
    """The engine the common flags name, on --threads CPU threads."""
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    return load_engine(args)


def _maker(args: argparse.Namespace, engine: Engine) -> MapMaker:
    from convis.eval.mapmaker import MapMaker

    store = None
    if getattr(args, "store", None):
        from convis.store import Store

        store = Store.open(args.store)
    args.maker = MapMaker(engine, args.methods, GridConfig(seed=args.seed), StochasticConfig(seed=args.seed),
                          args.batch_size, store)
    return args.maker


def _finish(args: argparse.Namespace, engine: Engine, name: str, summary: dict, rows: list, text: str,
            notes: Sequence[str] = ()) -> int:
    """Print the table or JSON, the notes on stderr, and write the files."""
    from convis.eval.report import to_json, write_outputs

    # int8 and fp32 share a model_id but not their figures: the precision goes with the results.
    summary = {"command": name, "model": engine.clip.model_id, "precision": engine.clip.precision,
               "vocabulary": engine.hierarchy.vocabulary,
               "concepts": len(engine.hierarchy), "seed": args.seed, **summary}
    if (maker := getattr(args, "maker", None)) is not None and maker.store is not None:
        summary["store"] = {"path": str(maker.store.root), "from_store": maker.from_store, "encoded": maker.encoded}
    if summary.get("unreadable"):  # skipped, not fatal: the rows of the readable images are written
        notes = [*notes, f"{summary['unreadable']} unreadable images skipped: "
                 + "; ".join(summary["unreadable_images"][:5]) + (" ..." if summary["unreadable"] > 5 else "")]
    files = write_outputs(args.out, name, summary, rows)
    print(to_json(summary) if args.json else text)
    for line in [*notes, *(f"wrote {f}" for f in files)]:
        print(line, file=sys.stderr)
    return 0


def _samples(args: argparse.Namespace) -> list[Sample]:
    """The images of `args.data` in the layout `args.layout`."""
    from convis.eval import datasets

    if args.layout == "cub":
        return datasets.read_cub(args.data, getattr(args, "split", "all"))
    if args.layout == "imagenet":
        return datasets.read_imagenet(args.data, getattr(args, "boxes", None))
    return datasets.read_folder(args.data)


def _concept_of(args: argparse.Namespace, engine: Engine, samples: Sequence[Sample],
                ) -> tuple[Callable[[Sample], str | None], list[str]]:
    """The synset per image: --concept for all, bird.n.01 for CUB, else each class folder's synset."""
    from convis.eval.concepts import resolve_classes

    if args.concept or args.layout == "cub":
        name = engine.hierarchy.resolve(args.concept or "bird.n.01")
        return (lambda s: name), []
    if args.layout == "folder":
        raise DataError("--layout folder needs --concept")
    res = resolve_classes({s.label for s in samples}, engine.hierarchy, None, args.fallback)
    return (lambda s: res.queries.get(s.label)), res.notes()


def cmd_wsol(args: argparse.Namespace) -> int:
    """`convis eval wsol`: MaxBoxAcc / MaxBoxAccV2 on CUB or an ImageNet-style folder."""
    from convis.eval.datasets import draw
    from convis.eval.report import method_table
    from convis.eval.wsol import run_wsol

    engine = _engine(args)
    samples = draw(_samples(args), args.num_images, args.seed)
    concept_of, notes = _concept_of(args, engine, samples)
    summary, rows = run_wsol(samples, _maker(args, engine), concept_of, Bar("wsol", len(samples)))
    text = method_table(summary, [("maxboxacc", "MaxBoxAcc"), ("maxboxacc_v2", "MaxBoxAccV2"),
                                  ("best_threshold", "tau*")])
    scored = f"{summary['images']} images scored, {summary['skipped']} skipped (no box inside the crop)"
    notes = [*notes, scored]
    return _finish(args, engine, "wsol", summary, rows, text, notes)


def cmd_pointing(args: argparse.Namespace) -> int:
    """`convis eval pointing`: pointing game on VOC- or COCO-style annotations."""
    from convis.eval import datasets
    from convis.eval.concepts import load_mapping, resolve_classes
    from convis.eval.pointing import run_pointing
    from convis.eval.report import method_table

    if bool(args.voc) == bool(args.coco):
        raise DataError("give exactly one of --voc ROOT or --coco FILE.json (with --images DIR)")
    if args.coco and not args.images:
        raise DataError("--coco needs --images DIR")
    if args.voc:
        samples = datasets.read_voc(args.voc, args.split)
    else:
        samples = datasets.read_coco(args.coco, args.images)
    samples = datasets.draw(samples, args.num_images, args.seed)
    engine = _engine(args)
    mapping = load_mapping(args.mapping or ("voc" if args.voc else "coco"))
    classes = {n for s in samples for n, _ in s.objects}
    res = resolve_classes(classes, engine.hierarchy, mapping, args.fallback)
    bar = Bar("pointing", len(samples))
    summary, rows = run_pointing(samples, res, _maker(args, engine), args.tolerance, bar)
    summary["classes"] = res.to_dict()
    text = method_table(summary, [("all", "all"), ("difficult", "difficult"), ("class_mean", "class mean")])
    return _finish(args, engine, "pointing", summary, rows, text, res.notes())


def cmd_ood(args: argparse.Namespace) -> int:
    """`convis eval ood`: the paper's six ID/OOD splits, AUROC and FPR95 per score."""
    import torch

    from convis.eval import ood
    from convis.eval.datasets import first_per_class, read_imagenet
    from convis.eval.report import table

    splits = list(ood.SPLITS) if args.splits == "all" else args.splits.split(",")
    engine = _engine(args)
    samples = read_imagenet(args.data)
    if args.max_per_class:
        samples = first_per_class(samples, args.max_per_class)
    parts = {sp: ood.split_samples(samples, sp) for sp in splits}
    needed = list(dict.fromkeys(s for a, b in parts.values() for s in a + b))
    unreadable: list[str] = []  # left out of both sides, named in the summary
    emb, kept = ood.image_embeddings(engine, needed, args.batch_size, Bar("embedding", len(needed)), unreadable)
    row_of = {s: i for i, s in enumerate(kept)}
    results, rows = {}, []
    for sp, (ins, outs) in parts.items():
        ins, outs = [s for s in ins if s in row_of], [s for s in outs if s in row_of]
        if not ins or not outs:
            results[sp] = {"error": f"no images for {'ID' if not ins else 'OOD'} classes of {sp}"}
            continue
        pick = lambda ss: emb[torch.tensor([row_of[s] for s in ss])]  # noqa: E731
        results[sp] = ood.evaluate_split(engine, sp, pick(ins), pick(outs))
        rows += [[sp, n, results[sp][n]["auroc"], results[sp][n]["fpr95"]] for n in ood.SCORES]
    text = table(rows, ["split", "score", "AUROC", "FPR95"])
    records = [dict(zip(("split", "score", "auroc", "fpr95"), r)) for r in rows]
    return _finish(args, engine, "ood", {"splits": results, "unreadable": len(unreadable),
                                         "unreadable_images": unreadable}, records, text)


def cmd_faithfulness(args: argparse.Namespace) -> int:
    """`convis eval faithfulness`: deletion and insertion AUC of each method's maps."""
    from convis.eval.datasets import draw
    from convis.eval.faithfulness import run_faithfulness
    from convis.eval.report import method_table

    engine = _engine(args)
    samples = draw(_samples(args), args.num_images, args.seed)
    concept_of, notes = _concept_of(args, engine, samples)
    summary, rows = run_faithfulness(samples, _maker(args, engine), concept_of, args.steps,
                                     Bar("faithfulness", len(samples)))
    columns = [("deletion_auc", "deletion AUC (low)"), ("insertion_auc", "insertion AUC (high)")]
    text = method_table(summary, columns, percent=False)
    return _finish(args, engine, "faithfulness", summary, rows, text, notes)


def cmd_synthetic(args: argparse.Namespace) -> int:
    """`convis eval synthetic`: pointing and MaxBoxAcc on seeded synthetic scenes."""
    from convis.eval.report import method_table
    from convis.eval.shapes import benchmark_scenes
    from convis.eval.synthetic import run_synthetic

    engine = _engine(args)
    scenes = benchmark_scenes(args.num_scenes, args.seed)
    summary, rows = run_synthetic(scenes, _maker(args, engine), args.tolerance, Bar("scenes", len(scenes)))
    text = method_table(summary, [("pointing", "pointing"), ("pointing_distractor", "w/ distractor"),
                                  ("pointing_hypernym", "hypernym"), ("maxboxacc", "MaxBoxAcc"),
                                  ("maxboxacc_v2", "MaxBoxAccV2"), ("seconds_per_scene", "s/scene")])
    return _finish(args, engine, "synthetic", summary, rows, text)
