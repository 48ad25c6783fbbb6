"""A warm engine at start-up: the default model and concept bank load in a background thread.

The server starts serving at once; the page polls `WarmUp.describe` to say what is loading.
The bank's disk cache (`$CONVIS_CACHE`, default ~/.cache/convis) makes a restart quick where the
disk survives restarts; on a Hugging Face Space that is only persistent storage: set
`CONVIS_CACHE=/data/convis` (and `HF_HOME=/data/huggingface` for the weights).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from convis.config import Progress


@dataclass
class WarmUp:
    """How far the start-up load is. Written by the loading thread, read by page polls."""

    label: str
    state: str = "loading"  # "loading", "ready" or "failed"
    done: int = 0  # concept glosses encoded (0 while the model itself loads, or on a bank cache hit)
    total: int = 0
    started: float = field(default_factory=time.perf_counter)
    seconds: float = 0.0  # until ready or failed

    def on_bank(self, done: int, total: int) -> None:
        self.done, self.total = done, total

    def describe(self, error: str | None = None) -> str:
        """One Markdown line for the page ("" once ready: nothing to say)."""
        if self.state == "ready":
            return ""
        if self.state == "failed":
            return (f"\u26a0\ufe0f **Could not load {self.label}:** {error or 'see the server log'}. Pick "
                    "another model in the menu.")
        took = time.perf_counter() - self.started
        step = (f"encoding concept glosses {self.done:,} / {self.total:,} (once; then cached on disk)"
                if self.total else "loading the model and the concept set")
        return (f"\u23f3 **Starting up:** {self.label}: {step}, {took:.0f} s so far. You can upload "
                "now; indexing starts as soon as this is done.")


def start_warm_up(load: Callable[[Progress], bool], label: str) -> WarmUp:
    """Run `load(progress)` (True when it worked) in a daemon thread; return the state it updates.

    `label` names what loads, in Markdown (e.g. "`ViT-B-32/openai` over *physical*").
    """
    warm = WarmUp(label)

    def run() -> None:
        ok = load(warm.on_bank)
        warm.state, warm.seconds = ("ready" if ok else "failed"), time.perf_counter() - warm.started

    threading.Thread(target=run, name="convis-warm-up", daemon=True).start()
    return warm
