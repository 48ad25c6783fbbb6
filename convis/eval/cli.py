"""`convis eval {wsol,pointing,ood,faithfulness,synthetic,sanity}`: the harness's argument parser.

The commands themselves live in `convis.eval.commands` (sanity and multi-object pointing in
`convis.eval.trust_commands`); `add_eval_parser` hangs them under the
`convis` parser the main CLI builds.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from convis.eval import commands, trust_commands
from convis.eval.registry import METHODS
from convis.cli.flags import add_engine_args, add_run_args

SYNTHETIC_METHODS = "grid,raw,dense,centre"


def _common(p: argparse.ArgumentParser, model: str = "ViT-B-32", vocabulary: str = "physical",
            methods: str | None = "grid") -> None:
    add_engine_args(p, model, vocabulary)
    add_run_args(p, seed_help="seeds the image draw, noise border and sampler")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    p.add_argument("--out", type=Path, default=None, help="write per-image CSV and summary JSON here")
    if methods is not None:
        p.add_argument("--store", default=None,
                       help="a store (convis index) of these images: reuse its window embeddings, no window pass")
        p.add_argument("--methods", default=methods,
                       help=f"comma list of {', '.join(METHODS)}, or 'all'")


def add_eval_parser(subparsers: argparse._SubParsersAction) -> None:
    """Add `eval` and its six sub-commands to the `convis` parser."""
    p = subparsers.add_parser("eval", help="evaluation: WSOL, pointing game, OOD, faithfulness, synthetic, "
                              "sanity checks")
    sub = p.add_subparsers(dest="eval_command", required=True)

    w = sub.add_parser("wsol", help="MaxBoxAcc / MaxBoxAccV2 on CUB-200-2011 or an ImageNet-style folder")
    w.add_argument("data", help="dataset root")
    w.add_argument("--layout", choices=("cub", "imagenet"), default="cub")
    w.add_argument("--boxes", help="imagenet: folder of XML boxes or LOC_val_solution.csv")
    w.add_argument("--split", default="all", choices=("all", "train", "test"), help="cub split")
    w.add_argument("-n", "--num-images", type=int, default=1000, help="images drawn with --seed (paper 1000)")
    w.add_argument("--concept", help="synset for every image (cub default: bird.n.01; imagenet: each class)")
    w.add_argument("--fallback", choices=("skip", "ancestor"), default="skip", help="class not in vocabulary")
    _common(w)
    w.set_defaults(func=commands.cmd_wsol)

    q = sub.add_parser("pointing", help="pointing game on VOC07-style XML or COCO-style JSON")
    q.add_argument("--voc", help="VOC root (Annotations/, JPEGImages/, ImageSets/Main/)")
    q.add_argument("--split", default=None, help="voc: ImageSets/Main/<split>.txt, e.g. test")
    q.add_argument("--coco", help="COCO instances JSON")
    q.add_argument("--images", help="coco: image folder")
    q.add_argument("--mapping", help="class -> synset: voc, coco or a TSV file (default: by format)")
    q.add_argument("--tolerance", type=float, default=15.0, help="hit radius in pixels")
    q.add_argument("-n", "--num-images", type=int, default=None, help="images drawn with --seed (all)")
    q.add_argument("--fallback", choices=("skip", "ancestor"), default="skip", help="class not in vocabulary")
    _common(q)
    q.set_defaults(func=commands.cmd_pointing)

    o = sub.add_parser("ood", help="the paper's OOD experiment on an ImageNet val folder (class folders)")
    o.add_argument("data", help="folder of WordNet-id class folders (n01440764/, ...)")
    o.add_argument("--splits", default="all", help="comma list of split names or 'all'")
    o.add_argument("--max-per-class", type=int, default=None, help="first N images of each class")
    _common(o, methods=None)
    o.set_defaults(func=commands.cmd_ood)

    f = sub.add_parser("faithfulness", help="deletion / insertion AUC of the maps")
    f.add_argument("data", help="dataset root")
    f.add_argument("--layout", choices=("cub", "imagenet", "folder"), default="cub")
    f.add_argument("--split", default="all", choices=("all", "train", "test"), help="cub split")
    f.add_argument("-n", "--num-images", type=int, default=100, help="images drawn with --seed")
    f.add_argument("--concept", help="synset for every image (cub default: bird.n.01; imagenet: each class)")
    f.add_argument("--fallback", choices=("skip", "ancestor"), default="skip")
    f.add_argument("--steps", type=int, default=32, help="perturbation steps per curve")
    _common(f, methods="grid,raw,dense,centre")
    f.set_defaults(func=commands.cmd_faithfulness)

    s = sub.add_parser("synthetic", help="the synthetic-shapes benchmark (no download; runs in CI)")
    s.add_argument("-n", "--num-scenes", type=int, default=50)
    s.add_argument("--tolerance", type=float, default=15.0, help="pointing radius in pixels")
    s.add_argument("--objects", type=trust_commands.parse_counts, default=None, metavar="K,K,...",
                   help="multi-object pointing instead: -n scenes with exactly K figures of distinct kinds "
                        "for each K, pointing by K, chance beside")
    _common(s, "synthetic-shapes", "synthetic-shapes", SYNTHETIC_METHODS)
    s.set_defaults(func=trust_commands.cmd_synthetic)

    c = sub.add_parser("sanity", help="sanity checks: randomised encoder blocks and permuted glosses "
                       "(Adebayo et al. 2018), on synthetic scenes")
    c.add_argument("-n", "--num-scenes", type=int, default=20)
    mode = c.add_mutually_exclusive_group()
    mode.add_argument("--cascade", action="store_true", help="randomise from the output block down (default)")
    mode.add_argument("--independent", action="store_true", help="randomise one block at a time")
    c.add_argument("--depth", type=int, default=None, help="only the top N blocks (default: all)")
    c.add_argument("--tolerance", type=float, default=15.0, help="pointing radius in pixels")
    _common(c, "synthetic-shapes", "synthetic-shapes", "grid,raw,dense,centre")
    c.set_defaults(func=trust_commands.cmd_sanity)

    from convis.eval.search import add_search_parser

    add_search_parser(sub, _common)
