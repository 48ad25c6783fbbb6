"""What every command line shares: the engine flags, the engine they name, a progress bar.

`convis` (explain, top, bench), `convis eval ...` and `python app.py` declare the engine flags
here, once, with one meaning of every default: no `--pretrained` means the model's own weights
(OpenAI's for the curated archs, a registered file for a registered model, none for test-tiny).
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import TYPE_CHECKING

from convis.clip.bank import SEEKS
from convis.clip.models import PRECISIONS

if TYPE_CHECKING:
    from convis.engine import Engine

VOCABULARY_HELP = "physical | nouns | wordlist:PATH | synsets:PATH | a registered list (e.g. synthetic-shapes)"


def add_engine_args(p: argparse.ArgumentParser, model: str = "ViT-B-32", vocabulary: str = "physical") -> None:
    """Declare --model, --pretrained, --vocabulary, --seek, --device and --precision on `p`."""
    p.add_argument("--model", default=model, help="open_clip arch, arch/tag, hf-hub:org/repo, test-tiny")
    p.add_argument("--pretrained", default=None,
                   help="weights tag, checkpoint file, or 'none' (random); default: the model's own weights")
    p.add_argument("--vocabulary", default=vocabulary, help=VOCABULARY_HELP)
    p.add_argument("--seek", default="definitions", choices=SEEKS, help="embed glosses (paper) or lemma names")
    p.add_argument("--device", default="auto", help="auto (GPU when available), cpu, cuda, mps")
    p.add_argument("--precision", default=os.environ.get("CONVIS_PRECISION", "auto"), choices=PRECISIONS,
                   help="auto (fp16 on CUDA, else fp32), fp32, fp16, bf16, or int8 (CPU only: ~1.5x faster "
                        "encoder, maps within r 0.99 of fp32 on the synthetic model); default $CONVIS_PRECISION "
                        "or auto")


def model_and_weights(args: argparse.Namespace) -> tuple[str, str | None]:
    """(model, pretrained) as `load_model` takes them; no --pretrained = the model's own weights."""
    from convis.clip.models import parse_model

    return (args.model, args.pretrained) if args.pretrained else parse_model(args.model)


def load_engine(args: argparse.Namespace) -> Engine:
    """The engine the flags name, with a progress bar while the concept bank is encoded."""
    from convis.engine import Engine

    model, pretrained = model_and_weights(args)
    return Engine.load(model, pretrained, args.vocabulary, args.seek, args.device, args.precision,
                       progress=Bar("encoding concepts"))


def add_run_args(p: argparse.ArgumentParser, batch_size: int = 64, seed_help: str = "seed of the noise border") -> None:
    """Declare --seed, --batch-size (windows per forward) and --json on `p`: one meaning everywhere."""
    p.add_argument("--seed", type=int, default=0, help=seed_help)
    p.add_argument("--batch-size", type=int, default=batch_size, help="windows per forward")
    p.add_argument("--json", action="store_true", help="print the result as JSON")


class Bar:
    """A tqdm bar on stderr, fed by (done, total) callbacks or by steps (`bar(1)`), closed when full."""

    def __init__(self, desc: str, total: int | None = None, unit: str = "it") -> None:
        self.desc, self.total, self.unit, self.bar = desc, total, unit, None

    def __call__(self, done: int, total: int | None = None) -> None:
        from tqdm import tqdm

        if self.bar is None:
            self.bar = tqdm(total=total or self.total, desc=self.desc, unit=self.unit, leave=False,
                            bar_format="{l_bar}{bar}| {n:.0f}/{total_fmt} [{elapsed}<{remaining}, {rate_fmt}{postfix}]", file=sys.stderr)
        self.bar.update(done - self.bar.n if total is not None else done)
        if self.bar.total is not None and self.bar.n >= self.bar.total:
            self.bar.close()

    def describe(self, desc: str) -> None:
        """Relabel the bar (e.g. with the indexing stage now being filled in)."""
        self.desc = desc
        if self.bar is not None:
            self.bar.set_description(desc)
