"""Which map the app shows, and the maps that need the engine besides the index.

An item of the app is a synset name ("dog.n.01") or a free-text phrase, written in curly quotes
(“a red sports car”) wherever the two mix: in the session, the compare list and titles.

* Grid (ConVis): the paper's map, drawn from the index's ranks (`ImageIndex.saliency`).
* Phrase: per window, the phrase's rank among T plus the phrase, accumulated like a leaf's rank.
* Raw cosine (ablation): per window, the best window-to-gloss cosine over the subtree (a phrase:
  the window-to-phrase cosine), no rank.
* Stochastic: the reference's sampler, sequential forwards; computed by a queued job, kept in
  the backend's byte budget (shared: the sampler is seeded) and shown when ready.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable

import numpy as np

from convis.app import limits
from convis.app.backend import Backend
from convis.app.entry import Entry
from convis.app.session import Session
from convis.config import Progress, StochasticConfig
from convis.engine import Engine
from convis.engine import clean_phrase as engine_phrase
from convis.concepts.hierarchy import Hierarchy
from convis.concepts.hints import wordnet_hint as _wordnet_hint

OPEN, CLOSE = "\u201c", "\u201d"
_SENSE = re.compile(r"^\S+\.[nvasr]\.\d+$")
EXPLAIN = {  # one sentence per map, shown in the app and kept in step with the README
    "grid": "Grid (ConVis, the paper): for each window, the best rank CLIP gives any concept in the "
            "subtree among all of T; windows where it ranks high make the map hot.",
    "stochastic": "Stochastic (the reference's sampler): windows drawn one at a time where the evidence "
                  "was high so far, 600 sequential CLIP forwards (so it takes longer).",
    "raw": "Raw cosine (ablation): the window-to-gloss cosine, best over the subtree (for a phrase, the "
           "window-to-phrase cosine), without the rank among T; shows what the rank adds.",
    "phrase": "Phrase: for each window, how many concepts of T CLIP prefers to your phrase (its rank "
              "among T plus the phrase), accumulated like a concept's rank; no new image pass.",
}


def quote(text: str) -> str:
    """A phrase as an item: “text”."""
    return OPEN + text + CLOSE


def unquote(item: str) -> str | None:
    """The phrase of a quoted item, or None for a synset name."""
    if len(item) > 2 and item.startswith(OPEN) and item.endswith(CLOSE):
        return item[1:-1]
    return None


def clean_phrase(text: str) -> str:
    """Text bounded at the edge (`limits.text`), then the engine's one phrase check."""
    return engine_phrase(limits.text(text, "The phrase"))


def looks_like_synset(text: str) -> bool:
    """True for "dog.n.01"-like names: those are looked up, never mapped as phrases."""
    return bool(_SENSE.match(text.strip()))


def engine_of(backend: Backend, entry: Entry) -> Engine:
    """The engine that built an entry's index (loaded once per process)."""
    return backend.engine(entry.key[1], entry.key[2])


def item_maps(backend: Backend, entry: Entry, items: list[str],
              size: int | tuple[int, int] = 0) -> list[np.ndarray]:
    """Grid maps of synsets and phrase maps of quoted phrases, in order: (h, w) each, no image pass."""
    out = []
    for item in items:
        phrase = unquote(item)
        if phrase is None:
            out.append(entry.index.saliency(item, size=size))
        else:
            engine = engine_of(backend, entry)
            out.append(backend.on_device(engine.text_saliency, entry.index, phrase, size=size))
    return out


def raw_map(backend: Backend, entry: Entry, item: str, size: int | tuple[int, int] = 0,
            progress: Progress | None = None) -> np.ndarray:
    """The raw-cosine ablation of a synset or a quoted phrase (its cosine per window, no rank): (h, w)."""
    engine, phrase = engine_of(backend, entry), unquote(item)
    if phrase is None:
        return backend.on_device(engine.raw_saliency, entry.index, item, size=size)
    return backend.on_device(engine.raw_text_saliency, entry.index, phrase, size=size)


def stochastic_map(backend: Backend, entry: Entry, item: str, size: int | tuple[int, int] = 0,
                   progress: Progress | None = None) -> np.ndarray:
    """The reference's sampler, `STOCHASTIC.iterations` sequential forwards: (h, w); concepts of T only."""
    if unquote(item) is not None:
        raise limits.BadRequest("the stochastic map is for concepts of T; map a phrase with 'grid' or 'raw'")
    engine = engine_of(backend, entry)
    return backend.on_device(engine.stochastic, entry.index, item, STOCHASTIC, progress=progress)


def gamma_map(backend: Backend, entry: Entry, item: str, size: int | tuple[int, int] = 0,
              progress: Progress | None = None) -> np.ndarray:
    """The grid map with the reference's gamma score instead of the rank (API only): (h, w); concepts only."""
    if unquote(item) is not None:
        raise limits.BadRequest("the gamma map is for concepts of T; map a phrase with 'grid' or 'raw'")
    config = dataclasses.replace(entry.index.config, score="gamma")
    return dataclasses.replace(entry.index, config=config).saliency(item, size=size)  # same ranks, no forward


STOCHASTIC = StochasticConfig()  # the stochastic map's settings (the reference's 600 forwards)
# The maps the app shows, by the name the API takes: (backend, entry, item, size, progress) -> (h, w).
MAPS: dict[str, Callable[..., np.ndarray]] = {
    "grid": lambda backend, entry, item, size=0, progress=None: item_maps(backend, entry, [item], size)[0],
    "raw": raw_map,
    "stochastic": stochastic_map,
    "gamma": gamma_map,
}


def region_name(entry: Entry) -> str:
    """What an entry's maps cover: the whole picture, its centre strip (beyond the aspect bound), the square."""
    if entry.index.crop.trimmed:
        return f"centre {entry.index.config.max_aspect:g}:1 strip of the picture"
    return "whole picture" if entry.key[4] else "centre square (the paper)"


def stochastic_of(backend: Backend, session: Session) -> np.ndarray | None:
    """The stochastic map of the session's synset on its current image, if one is ready."""
    entry = session.entry
    return None if entry is None or session.synset is None else backend.kept_map(entry.key, session.synset)


def describe(backend: Backend, session: Session) -> str:
    """Which map of which region is on screen for the session's item (computes nothing)."""
    entry = session.entry
    region = region_name(entry)
    if session.phrase:
        return f"phrase map of the {region}"
    if session.method == "stochastic":
        if stochastic_of(backend, session) is not None:
            return f"stochastic map of the {region}"
        return f"grid map of the {region} (the stochastic map is on its way)"
    return f"grid map (ConVis) of the {region}"


def current(backend: Backend, session: Session) -> tuple[np.ndarray | None, str]:
    """(a ready map, or None for the index's grid map; `describe`) for the session's item."""
    entry, ready = session.entry, None
    if session.phrase:
        ready = item_maps(backend, entry, [session.item], entry.display.shape[:2])[0]
    elif session.method == "stochastic":
        ready = stochastic_of(backend, session)
    return ready, describe(backend, session)


def caption(backend: Backend, session: Session) -> str:
    """The map's caption: which map of which region is on screen."""
    if session.entry is None:
        return "Map"
    what = describe(backend, session)
    return what[:1].upper() + what[1:]


def request_stochastic(backend: Backend, session: Session) -> bool:
    """Mark the selection's stochastic map as pending unless it is ready or already pending.

    At most one map is pending: an earlier request is forgotten (its job stops at its next forward
    once the caller bumps `session.job`). True when a new job is needed.
    """
    target = (session.entry.key, session.synset)
    if session.pending == target or stochastic_of(backend, session) is not None:
        return False
    session.pending = target
    return True


def forget_pending(session: Session, entry: Entry, synset: str) -> None:
    """A stopped or superseded job leaves nothing pending behind."""
    if session.pending == (entry.key, synset):
        session.pending = None


def keep_stochastic(backend: Backend, session: Session, entry: Entry, synset: str,
                    saliency: np.ndarray) -> None:
    """Keep a finished stochastic map in the backend's byte budget; it is no longer pending."""
    backend.keep_map(entry.key, synset, saliency)
    forget_pending(session, entry, synset)


def wordnet_hint(h: Hierarchy, text: str) -> tuple[str, str] | None:
    """(WordNet synset, its nearest hypernym in T) for a name WordNet has but T lacks, else None."""
    if not text.strip() or len(text) > limits.MAX_TEXT:
        return None
    return _wordnet_hint(text, h)
