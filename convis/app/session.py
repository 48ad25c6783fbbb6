"""What one browser tab keeps: keys of a few image indexes, the selection, the view settings.

A `Session` lives in a `gr.State` with a time to live. Its initial value is deep-copied per tab,
so it starts empty. It holds no bytes of its own: its indexes are weak references into the
`Backend`'s byte-bounded cache (an index the backend drops is gone for the tab too), its
stochastic maps live in that cache too, and its exports live in one temporary folder, bounded,
removed when the tab's state is deleted.
"""

from __future__ import annotations

import shutil
import time
import uuid
import weakref
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from convis.app import limits
from convis.app.disk import export_root
from convis.app.entry import Entry, Key
from convis.cache import LRU
from convis.errors import UserError
from convis.render import STYLES

# Radio labels of the `convis.render.STYLES`.
STYLE_LABELS = {"Overlay": "overlay", "White blend (paper)": "white", "Heatmap": "map", "Threshold mask": "mask"}
COLORMAPS = ("jet", "inferno", "turbo", "viridis", "magma", "plasma")
MAX_COMPARE = 6
MAX_EXPORTS = 3  # export sets (PNG + NPY + JSON, at most ~18 MB each) kept per tab; older ones are deleted
# Labels of the map-method radio -> method; of the region radio -> whole picture or not.
METHODS = {"Grid (ConVis)": "grid", "Stochastic (sequential, slower)": "stochastic"}
REGIONS = {"Whole picture": True, "Centre square (the paper)": False}
REGION_KEYS = {"whole": True, "centre": False}  # the same regions as the API and links name them


class Superseded(Exception):
    """A newer upload in the same session made this indexing job pointless."""


class ViewError(UserError, ValueError):
    """A display setting outside the offered choices (style, colormap)."""


@dataclass
class View:
    """How the current map is drawn; every field maps to one control of the app."""

    style: str = "overlay"  # a convis.render style: "overlay", "white" (the paper), "map", "mask"
    cmap: str = "jet"
    alpha: float = 0.5  # overlay opacity
    exponent: float = 10.0  # white-blend exponent (the paper uses 10)
    box: bool = False  # draw the box of the largest region above `threshold`
    threshold: float = 0.5  # for the box and the "mask" style

    def as_dict(self) -> dict[str, Any]:
        """Plain dict, for the JSON export."""
        return asdict(self)

    def look(self) -> dict[str, Any]:
        """The style settings `convis.render.panel` and `convis.figure.grid` take."""
        return {"cmap": self.cmap, "alpha": self.alpha, "exponent": self.exponent, "threshold": self.threshold}

    @classmethod
    def from_controls(cls, style: str, cmap: str, alpha: float, exponent: float, box: bool,
                      threshold: float) -> View:
        """Build from the control values (the style radio gives its label or its value)."""
        style = STYLE_LABELS.get(style, style) if isinstance(style, str) else style
        if style not in STYLES:
            raise ViewError(f"unknown style {repr(style)[:40]}; use one of {', '.join(STYLES)}")
        if cmap not in COLORMAPS:
            raise ViewError(f"unknown colormap {repr(cmap)[:40]}; use one of {', '.join(COLORMAPS)}")
        return cls(style, cmap, limits.number(alpha, "opacity", 0, 1), limits.number(exponent, "exponent", 1, 100),
                   bool(box), limits.number(threshold, "threshold", 0, 1))


def _remove(_name: str, folder: str) -> None:
    shutil.rmtree(folder, ignore_errors=True)


@dataclass
class Session:
    """Per-tab state. Bounded: at most `capacity` index keys, `MAX_EXPORTS` export sets."""

    capacity: int = 3
    model: str = ""  # "" = the backend's default
    vocabulary: str = ""
    # key -> (weak reference to the backend's index, weak reference to its display crop, file name);
    # at most `capacity` (set in __post_init__)
    entries: LRU[Key, tuple[Any, Any, str]] = field(default=None)  # type: ignore[assignment]
    current: Key | None = None
    synset: str | None = None
    compare: list[str] = field(default_factory=list)
    view: View = field(default_factory=View)
    image_path: str | None = None  # last image that indexed fine (restored after a bad upload)
    latest_upload: str | None = None  # set at upload time, before the queued job: newer wins
    failed_upload: str | None = None  # the last upload that was not an image (reported once)
    whole: bool = True  # map the whole picture (False: the paper's centre square)
    method: str = "grid"  # "grid" or "stochastic" (see METHODS)
    raw: bool = False  # also show the raw-cosine ablation beside the map
    phrase: str | None = None  # a free-text phrase being shown instead of `synset`
    job: int = 0  # stochastic run generation: a newer request or Stop makes a running one stop
    # (entry key, synset) of the stochastic map being computed, if any (the maps: `Backend.kept_map`)
    pending: tuple[Key, str] | None = None
    hits: list[str] = field(default_factory=list)  # the Dataset tab's gallery, by stored sha256 (<= 100)
    on_dataset: bool = False  # the Dataset tab is open: its gallery follows the selection
    exports: str | None = None  # this tab's export folder, made on its first export
    # export set name -> its folder; the oldest beyond `MAX_EXPORTS` are deleted from disk
    export_sets: LRU[str, str] = field(default_factory=lambda: LRU(MAX_EXPORTS, on_evict=_remove))

    def __post_init__(self) -> None:
        if self.entries is None:
            self.entries = LRU(self.capacity)

    @property
    def item(self) -> str | None:
        """What is shown: the phrase in quotes (see `convis.app.maps`) or the synset name."""
        return f"\u201c{self.phrase}\u201d" if self.phrase else self.synset

    def find(self, key: Key) -> Entry | None:
        """An entry this tab indexed before and the backend still holds, or None."""
        held = self.entries.get(key)  # now the most recent
        index, display = (held[0](), held[1]()) if held else (None, None)
        if index is None or display is None:
            return None
        return Entry(key, index, display, held[2], 0.0)

    @property
    def entry(self) -> Entry | None:
        """The image being explored, or None before the first upload or once the backend dropped it."""
        return self.find(self.current) if self.current else None

    @property
    def dropped(self) -> bool:
        """Whether the current image's index was dropped by the backend (to stay in its memory budget)."""
        return self.current is not None and self.entry is None

    def remember(self, entry: Entry) -> None:
        """Make an entry current (by weak reference); forget the least recently used beyond capacity."""
        self.entries[entry.key] = (weakref.ref(entry.index), weakref.ref(entry.display), entry.name)
        self.current = entry.key

    def check_current(self, upload: str | None) -> None:
        """Raise `Superseded` if a newer upload arrived after `upload` (polled during indexing)."""
        if upload != self.latest_upload:
            raise Superseded(upload)

    def export_folder(self) -> Path:
        """A new empty folder for one export set; the oldest sets beyond `MAX_EXPORTS` are deleted."""
        if self.exports is None:
            self.exports = str(export_root() / uuid.uuid4().hex)
        name = f"{time.time_ns():020d}"
        folder = Path(self.exports) / name
        folder.mkdir(parents=True)
        self.export_sets[name] = str(folder)  # may delete the oldest set
        return folder

    def close(self) -> None:
        """The tab is gone (closed or expired): delete its exports."""
        if self.exports is not None:
            shutil.rmtree(self.exports, ignore_errors=True)
            self.exports = None
