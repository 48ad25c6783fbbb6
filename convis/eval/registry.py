"""The name -> method registry of the harness: what a map maker is and how one is named.

It imports no method: `convis.eval.methods` (ConVis' grid map and the baselines) and
`convis.eval.progressive_methods` register theirs with `register_method`, and importing
`convis.eval` imports both, so the registry is full wherever the harness is used.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from convis.config import GridConfig, StochasticConfig
from convis.eval.datasets import DataError
from convis.index.image_index import ImageIndex

if TYPE_CHECKING:
    from convis.engine import Engine

# Names an earlier release used; asking for one says what it is called now.
RENAMED = {"convis": "grid", "convis-progressive": "grid-progressive", "convis-int8": "grid-int8"}

METHODS: dict[str, Method] = {}  # name -> method, in registration order ("all" runs them in this order)


@dataclass
class Job:
    """One image's request to every method: what they read, and the shared window pass."""

    engine: Engine
    config: GridConfig
    stochastic: StochasticConfig
    image: Image.Image
    concepts: list[str]
    side: int  # map side
    index: ImageIndex | None = None  # the window pass (ranks and embeddings), for windowed methods
    batch_size: int = 64  # windows per forward, for methods that run a window pass of their own
    extra: dict[str, dict] = field(default_factory=dict)  # side results a method reports (per-stage maps)


@dataclass(frozen=True)
class Method:
    """A map maker: `run(job)` -> (C, side, side) float32 in [0, 1]."""

    run: Callable[[Job], np.ndarray]
    windowed: bool  # needs the window pass (730 forwards), which the maker runs once per image
    in_all: bool = True  # run by "--methods all"


def register_method(name: str, windowed: bool = False, in_all: bool = True,
                    ) -> Callable[[Callable[[Job], np.ndarray]], Callable]:
    """Decorator: add a method under `name` (new baselines and ablations are one registration).

    `in_all=False` keeps it out of "--methods all" (diagnostics such as the progressive stages)."""
    def add(run: Callable[[Job], np.ndarray]) -> Callable[[Job], np.ndarray]:
        METHODS[name] = Method(run, windowed, in_all)
        return run
    return add


def parse_methods(text: str | Sequence[str]) -> list[str]:
    """"grid,raw" or ["grid", "raw"] or "all" -> checked method names, in the given order."""
    names = [n.strip() for n in (text.split(",") if isinstance(text, str) else text) if n.strip()]
    if names == ["all"]:
        return [n for n, m in METHODS.items() if m.in_all]
    renamed = [f"'{n}' is now '{RENAMED[n]}'" for n in names if n in RENAMED]
    if renamed:
        raise DataError(f"{'; '.join(renamed)} (one name, grid, for the paper's map everywhere)")
    bad = [n for n in names if n not in METHODS]
    if bad or not names:
        raise DataError(f"unknown method(s) {bad or names}; choose from {', '.join(METHODS)} or 'all'")
    return list(dict.fromkeys(names))
