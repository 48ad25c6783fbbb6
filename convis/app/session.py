"""What one browser tab keeps: a few image indexes (LRU), the selection, the view settings.

A `Session` lives in a `gr.State` with a time to live. Its initial value is deep-copied per tab,
so it starts empty and only ever holds references: models and hierarchies stay in the `Backend`.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import asdict, dataclass, field
from typing import Any

from convis.app.backend import Entry, Key
from convis.errors import UserError
from convis.render import STYLES

# Labels of the style radio -> convis.render style names.
# Radio labels of the `convis.render.STYLES`.
STYLE_LABELS = {"Overlay": "overlay", "White blend (paper)": "white", "Heatmap": "map", "Threshold mask": "mask"}
COLORMAPS = ("jet", "inferno", "turbo", "viridis", "magma", "plasma")
MAX_COMPARE = 6


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
        style = STYLE_LABELS.get(style, style)
        if style not in STYLES:
            raise ViewError(f"unknown style {style!r}; use one of {', '.join(STYLES)}")
        if cmap not in COLORMAPS:
            raise ViewError(f"unknown colormap {cmap!r}; use one of {', '.join(COLORMAPS)}")
        return cls(style, cmap, float(alpha), float(exponent), bool(box), float(threshold))


@dataclass
class Session:
    """Per-tab state. Bounded: at most `capacity` indexes are referenced."""

    capacity: int = 3
    model: str = ""  # "" = the backend's default
    vocabulary: str = ""
    entries: OrderedDict[Key, Entry] = field(default_factory=OrderedDict)
    current: Key | None = None
    synset: str | None = None
    compare: list[str] = field(default_factory=list)
    view: View = field(default_factory=View)
    image_path: str | None = None  # last image that indexed fine (restored after a bad upload)
    latest_upload: str | None = None  # set at upload time, before the queued job: newer wins
    failed_upload: str | None = None  # the last upload that was not an image (reported once)

    @property
    def entry(self) -> Entry | None:
        """The image being explored, or None before the first upload."""
        return self.entries.get(self.current) if self.current else None

    def remember(self, entry: Entry) -> None:
        """Make an entry current; drop the least recently used beyond capacity."""
        self.entries[entry.key] = entry
        self.entries.move_to_end(entry.key)
        self.current = entry.key
        while len(self.entries) > self.capacity:
            self.entries.popitem(last=False)

    def find(self, key: Key) -> Entry | None:
        """An entry this tab indexed before, or None."""
        entry = self.entries.get(key)
        if entry is not None:
            self.entries.move_to_end(key)
        return entry

    def check_current(self, upload: str | None) -> None:
        """Raise `Superseded` if a newer upload arrived after `upload` (polled during indexing)."""
        if upload != self.latest_upload:
            raise Superseded(upload)
