"""The stateless API (`/search`, `/explain`, `/explain_text`, `/top_concepts`) for `gradio_client`.

Calls use the server's default model and vocabulary. Indexes are shared with the UI through the
backend's LRU keyed by (image pixels, model, vocabulary, seed), so repeated calls are fast.
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
from convis.app.session import View
from convis.app.uploads import read_upload
from convis.app.views import render_view

MAX_LIMIT, MAX_K = 200, 100


def _fail(what: str, exc: BaseException) -> gr.Error:
    return gr.Error(limits.public(f"{what}: {exc}"), print_exception=False)


class Endpoints:
    """API handlers bound to a `Backend`. Errors come back to the client as `gr.Error` messages."""

    def __init__(self, backend: Backend) -> None:
        self.b = backend

    def search(self, query: str, limit: int = 20) -> list[dict[str, Any]]:
        """Concepts matching a lemma prefix, a synset name ("dog.n.01") or an offset ("n02084071").

        Returns up to `limit` dicts with synset, offset, lemmas, gloss and hypernym path, best first.
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

    def _entry(self, image: str | None) -> Entry:
        if not image:
            raise gr.Error("No image given: pass one, e.g. handle_file('cat.jpg').")
        if not isinstance(image, str):
            raise gr.Error("The image must be a file: pass handle_file('cat.jpg').")
        try:
            picture = read_upload(image)
            return self.b.index(picture, Path(image).name)
        except USER_ERRORS as exc:
            raise _fail(f"Could not index {Path(image).name}", exc) from None

    def explain(self, image: str | None, synset: str, style: str = "overlay") -> np.ndarray:
        """The ConVis map of one concept over the image's centre square, drawn in `style`.

        Styles: "overlay", "white" (the paper's white blend), "map", "mask".
        """
        try:
            name = self.b.hierarchy().resolve(limits.text(synset, "synset"))  # fail fast, before any CLIP forward
            view = View.from_controls(limits.text(style, "style", limits.MAX_WORD), "jet", 0.5, 10.0, False, 0.5)
        except USER_ERRORS as exc:
            raise _fail("Bad request", exc) from None
        picture, _ = render_view(self._entry(image), name, view)
        return picture

    def explain_text(self, image: str | None, text: str, style: str = "overlay") -> np.ndarray:
        """The ConVis map of a free-text phrase over the image's centre square, drawn in `style`.

        Per window, the phrase's rank among T plus the phrase, accumulated like a concept's rank.
        """
        try:
            phrase = maps.clean_phrase(text)
            view = View.from_controls(limits.text(style, "style", limits.MAX_WORD), "jet", 0.5, 10.0, False, 0.5)
        except USER_ERRORS as exc:
            raise _fail("Bad request", exc) from None
        entry = self._entry(image)
        try:
            saliency = maps.item_maps(self.b, entry, [maps.quote(phrase)], entry.display.shape[:2])[0]
        except USER_ERRORS as exc:
            raise _fail("Could not map the phrase", exc) from None
        picture, _ = render_view(entry, maps.quote(phrase), view, saliency)
        return picture

    def top_concepts(self, image: str | None, k: float = 10) -> list[dict[str, Any]]:
        """The `k` concepts the image shows most (1 to 100): synset, score (nats), gloss; best first."""
        try:
            k = limits.whole(k, "k", 1, MAX_K)
        except limits.BadRequest as exc:
            raise _fail("Bad request", exc) from None
        entry = self._entry(image)
        h = entry.index.hierarchy
        return [{"synset": n, "score": round(s, 4), "gloss": h.gloss(n)}
                for n, s in entry.index.top_concepts(k)]
