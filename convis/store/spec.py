"""What a store is made of, written once in `store.json`, and how two specs differ.

A store's window embeddings are only reusable by the same image encoder on the same windows: the
model, its weights and precision, the grid (sizes, stride, noise seed, region). The concept set
may differ (scores are kept per vocabulary, `--rescore` adds one). The map's score ("rank" or
"gamma") is applied when a map is drawn, so it is not part of the spec.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

from convis.config import GridConfig
from convis.errors import UserError

FORMAT = 1  # bump when a reader of the old layout would misread the new one
SPEC_FILE = "store.json"
# GridConfig fields that decide which pixels the windows see (not how a map is scored).
WINDOW_FIELDS = ("image_size", "pad", "scales", "stride", "seed", "only_touching", "whole", "max_aspect")


class StoreError(UserError, ValueError):
    """A store that cannot be used as asked; the message names what differs and the fix."""


@dataclass(frozen=True)
class StoreSpec:
    """The settings every embedding of a store was made with.

    Attributes:
        model_id: `Clip.model_id` (architecture and weights, with a checkpoint's fingerprint).
        precision: the encoder's precision ("fp32", "fp16", "bf16", "int8").
        grid: the window-relevant `GridConfig` fields (`WINDOW_FIELDS`).
        dim: D, the embedding width.
        dtype: how window embeddings are kept: "float16" (0.73 MB per image) or "float32".
    """

    model_id: str
    precision: str
    grid: tuple[tuple[str, object], ...]
    dim: int
    dtype: str = "float16"
    format: int = FORMAT
    convis_version: str = ""
    model: str = ""  # how to load the model again (--model, --pretrained): informative, not compared
    pretrained: str = ""

    @classmethod
    def make(cls, model_id: str, precision: str, config: GridConfig, dim: int, dtype: str = "float16",
             model: str = "", pretrained: str = "") -> StoreSpec:
        from convis import __version__

        grid = tuple((f, _plain(getattr(config, f))) for f in WINDOW_FIELDS)
        return cls(model_id, precision, grid, dim, dtype, FORMAT, __version__, model, pretrained)

    def grid_config(self, **scoring: object) -> GridConfig:
        """The `GridConfig` of the stored windows (plus any scoring fields: score, gamma...)."""
        fields = {k: tuple(v) if isinstance(v, list) else v for k, v in self.grid}
        return GridConfig(**fields, **scoring)

    def differences(self, other: StoreSpec) -> list[str]:
        """'field: ours vs theirs' for every field that makes embeddings incomparable."""
        out = [f"{k}: {getattr(self, k)!r} vs {getattr(other, k)!r}"
               for k in ("model_id", "precision", "dim", "dtype") if getattr(self, k) != getattr(other, k)]
        mine, theirs = dict(self.grid), dict(other.grid)
        out += [f"grid.{k}: {mine.get(k)!r} vs {theirs.get(k)!r}" for k in WINDOW_FIELDS if mine.get(k) != theirs.get(k)]
        return out

    def to_json(self) -> dict:
        d = dataclasses.asdict(self)
        d["grid"] = dict(self.grid)
        return d

    @classmethod
    def from_json(cls, d: dict) -> StoreSpec:
        if d.get("format") != FORMAT:
            raise StoreError(f"this store has format {d.get('format')!r}; this convis reads format {FORMAT}: "
                             "index the data again into a new store, or use the convis version that wrote it")
        grid = tuple((k, _plain(d["grid"][k])) for k in WINDOW_FIELDS)
        return cls(d["model_id"], d["precision"], grid, int(d["dim"]), d["dtype"], FORMAT, d.get("convis_version", ""),
                   d.get("model", ""), d.get("pretrained", ""))


def _plain(v: object) -> object:
    return list(v) if isinstance(v, tuple) else v


def read_spec(root: Path) -> StoreSpec:
    """The spec of the store at `root`; a StoreError when there is none."""
    path = root / SPEC_FILE
    if not path.is_file():
        raise StoreError(f"'{root}' is not a convis store (no {SPEC_FILE}); make one with: convis index DATA --out {root}")
    try:
        return StoreSpec.from_json(json.loads(path.read_text()))
    except (json.JSONDecodeError, KeyError, TypeError) as err:
        raise StoreError(f"'{path}' is damaged ({err}); index the data again into a new store") from err


def check_spec(root: Path, wanted: StoreSpec) -> None:
    """Refuse a store whose embeddings were made otherwise than `wanted`, naming every difference."""
    have = read_spec(root)
    diff = have.differences(wanted)
    if diff:
        raise StoreError(f"the store '{root}' was made with other settings (store vs asked): " + "; ".join(diff)
                         + ". Use the store's settings, or index into a new --out folder")


@dataclass(frozen=True)
class Hit:
    """One search result: the image, its score, and where it is stored."""

    sha256: str
    path: str
    score: float
    label: str = ""


@dataclass(frozen=True)
class ConceptSet:
    """A vocabulary's scores folder: its key, vocabulary name, pooling and size T."""

    key: str
    vocabulary: str
    score: str
    count: int
