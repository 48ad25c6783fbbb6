"""The stateless API (`/search`, `/explain`, `/explain_text`, `/top_concepts`) for `gradio_client`
and MCP clients (each endpoint is a tool named after its handler; the docstrings describe them).

Calls use the server's default model and vocabulary and return what the app would show for the
same picture, region and map. Indexes are shared with the UI through the backend's LRU keyed by
(image pixels, model, vocabulary, seed, region), so repeated calls are fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gradio as gr
import numpy as np

from convis.app import limits, maps
from convis.app.backend import Backend
from convis.app.entry import Entry
from convis.app.handlers import USER_ERRORS
from convis.app.panels import offset_id
from convis.app.session import REGION_KEYS, View
from convis.app.uploads import read_upload
from convis.app.views import render_view

MAX_LIMIT, MAX_K = 200, 100


def _fail(what: str, exc: BaseException) -> gr.Error:
    return gr.Error(limits.public(f"{what}: {exc}"), print_exception=False)


def _choice(value: Any, what: str, choices: dict[str, Any]) -> Any:
    """The registry entry `value` names; BadRequest listing the names otherwise."""
    name = limits.text(value, what, limits.MAX_WORD)
    if name not in choices:
        raise limits.BadRequest(f"unknown {what} {name!r}; use one of {', '.join(choices)}")
    return choices[name]


class Endpoints:
    """API handlers bound to a `Backend`. Errors come back to the client as `gr.Error` messages."""

    def __init__(self, backend: Backend) -> None:
        self.b = backend

    def search(self, query: str, limit: int = 20) -> list[dict[str, Any]]:
        """Find WordNet concepts of the server's concept set by a word, a synset name or an offset.

        Args:
            query: a lemma prefix ("dog"), a synset name ("dog.n.01") or a WordNet offset ("n02084071").
            limit: how many concepts to return, 1 to 200.
        Returns:
            Up to `limit` concepts, best first: synset, offset, lemmas, gloss and hypernym path.
        """
        try:
            query = limits.text(query, "query")
            limit = limits.whole(limit, "limit", 1, MAX_LIMIT)
        except limits.BadRequest as exc:
            raise _fail("Bad request", exc) from None
        try:
            h = self.b.hierarchy()
        except USER_ERRORS as exc:
            raise _fail("WordNet is not available", exc) from None
        return [{"synset": n, "offset": offset_id(h, n), "lemmas": list(h.lemmas(n)), "gloss": h.gloss(n),
                 "path": h.path_to_root(n)} for n in h.search(query, limit)]

    def _entry(self, image: str | None, whole: bool) -> Entry:
        if not image:
            raise gr.Error("No image given: pass one, e.g. handle_file('cat.jpg').")
        if not isinstance(image, str):
            raise gr.Error("The image must be a file: pass handle_file('cat.jpg').")
        try:
            picture = read_upload(image)
            return self.b.index(picture, Path(image).name, whole=whole)
        except USER_ERRORS as exc:
            raise _fail(f"Could not index {Path(image).name}", exc) from None

    def _map(self, image: str | None, item: str, view: View, whole: bool, method: str) -> np.ndarray:
        """The view of an item (a synset or a quoted phrase) by a map of `maps.MAPS`, as the app draws it."""
        entry = self._entry(image, whole)
        try:
            saliency = maps.MAPS[method](self.b, entry, item, entry.display.shape[:2])
        except USER_ERRORS as exc:
            raise _fail(f"Could not map {item}", exc) from None
        picture, _ = render_view(entry, item, view, saliency)
        return picture

    @staticmethod
    def _options(style: str, region: str, method: str) -> tuple[View, bool, str]:
        """Checked (view, whole picture, map name); BadRequest names the bad one and the choices."""
        view = View.from_controls(limits.text(style, "style", limits.MAX_WORD), "jet", 0.5, 10.0, False, 0.5)
        whole = _choice(region, "region", REGION_KEYS)
        _choice(method, "method", maps.MAPS)
        return view, whole, method

    def explain(self, image: str | None, synset: str, style: str = "overlay", region: str = "whole",
                method: str = "grid") -> np.ndarray:
        """Where CLIP sees a WordNet concept in a picture: its saliency map drawn over the picture.

        Args:
            image: the picture; MCP: a data:image/png;base64,... URL; gradio_client: handle_file("cat.jpg").
            synset: a concept of the server's set: a synset name ("dog.n.01"), a lemma ("dog") or an offset.
            style: "overlay" (default), "white" (the paper's white blend), "map" (heatmap) or "mask".
            region: "whole" (the whole picture, the app's default) or "centre" (the paper's centre square).
            method: "grid" (ConVis, default), "gamma" (the reference's gamma score instead of the rank), "raw"
                (cosine ablation) or "stochastic" (slow: 600 forwards).
        Returns:
            A PNG of the mapped region (short side 512 px, long side at most 768 px) with the map drawn on it, hot where CLIP sees it.
        """
        try:  # fail fast, before any CLIP forward
            name = self.b.hierarchy().resolve(limits.text(synset, "synset"))
            options = self._options(style, region, method)
        except USER_ERRORS as exc:
            raise _fail("Bad request", exc) from None
        return self._map(image, name, *options)

    def explain_text(self, image: str | None, text: str, style: str = "overlay", region: str = "whole",
                     method: str = "grid") -> np.ndarray:
        """Where CLIP sees a free-text phrase ("a red sports car") in a picture: its map over the picture.

        Args:
            image: the picture; MCP: a data:image/png;base64,... URL; gradio_client: handle_file("cat.jpg").
            text: the phrase, up to 200 characters.
            style: "overlay" (default), "white" (the paper's white blend), "map" (heatmap) or "mask".
            region: "whole" (the whole picture, the app's default) or "centre" (the paper's centre square).
            method: "grid" (default: the phrase's rank among the concepts, per window) or "raw" (its cosine).
        Returns:
            A PNG of the mapped region (short side 512 px, long side at most 768 px) with the phrase's map drawn on it.
        """
        try:
            phrase = maps.clean_phrase(text)
            options = self._options(style, region, method)
        except USER_ERRORS as exc:
            raise _fail("Bad request", exc) from None
        return self._map(image, maps.quote(phrase), *options)

    def top_concepts(self, image: str | None, k: float = 10, region: str = "whole") -> list[dict[str, Any]]:
        """What CLIP sees in a picture: the concepts it shows most, best first.

        Args:
            image: the picture; MCP: a data:image/png;base64,... URL; gradio_client: handle_file("cat.jpg").
            k: how many concepts, 1 to 100.
            region: "whole" (the whole picture, the app's default) or "centre" (the paper's centre square).
        Returns:
            Up to `k` concepts: synset, score (nats: how unlikely its ranks would be by chance) and gloss.
        """
        try:
            k = limits.whole(k, "k", 1, MAX_K)
            whole = _choice(region, "region", REGION_KEYS)
        except limits.BadRequest as exc:
            raise _fail("Bad request", exc) from None
        entry = self._entry(image, whole)
        h = entry.index.hierarchy
        return [{"synset": n, "score": round(s, 4), "gloss": h.gloss(n)}
                for n, s in entry.index.top_concepts(k)]
