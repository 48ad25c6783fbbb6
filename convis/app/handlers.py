"""UI event handlers: thin adapters between Gradio values, the `Session` and the `Backend`.

Engine exceptions become a toast plus a status line; the session is left as it was, so a bad
upload or an unavailable model never costs the user what they were looking at.
"""

from __future__ import annotations

import time
from typing import Any

import gradio as gr

from convis.app import limits, maps, panels
from convis.app.backend import Backend
from convis.app.maps import wordnet_hint
from convis.app.session import MAX_COMPARE, Session, View
from convis.app.views import export, render_compare, render_view
from convis.app.widgets import tree_value
from convis.errors import UserError
from convis.concepts.hierarchy import Hierarchy, UnknownConceptError
from convis.concepts.hints import resolve_concept

# What the engine raises for bad input or missing resources; anything else is a bug and propagates.
USER_ERRORS = (UserError,)


def problem(what: str, exc: BaseException) -> str:
    """Status-line text for an error, and the same text as a toast."""
    text = limits.public(f"{what}: {exc}")  # an OSError names a server path: cut it
    gr.Warning(text, duration=12)
    return limits.public(f"\u26a0\ufe0f **{what}.** {exc}")


class Base:
    """What every handler group needs: the backend, the session's hierarchy, the current picture."""

    def __init__(self, backend: Backend) -> None:
        self.b = backend

    def hierarchy(self, session: Session) -> Hierarchy | None:
        """The session's concept set, or None when WordNet is missing (the banner says why)."""
        try:
            return self.b.hierarchy(session.vocabulary or None)
        except USER_ERRORS:
            return None

    def _draw(self, session: Session) -> tuple[Any, str]:
        """(picture or skip, status) for the session's selection on its current image."""
        entry, name = session.entry, session.item
        if session.dropped:
            return gr.skip(), ("The server dropped this picture's index to stay within its memory budget; "
                               "upload it again (or pick an example) to keep exploring.")
        if entry is None or name is None:
            return gr.skip(), ("Upload an image (or pick an example) to see where CLIP finds "
                               f"`{name}`." if name else "Upload an image to start.")
        t0 = time.perf_counter()
        try:
            saliency, what = maps.current(self.b, session)
        except USER_ERRORS as exc:
            return gr.skip(), problem(f"Could not map {name}", exc)
        picture, _ = render_view(entry, name, session.view, saliency)
        ms = 1000 * (time.perf_counter() - t0)
        cost = "one text forward, no new image pass" if session.phrase else "no new CLIP pass"
        stage = "" if entry.complete else f" Preview from {entry.index.describe()}: it sharpens as indexing goes on."
        return picture, (f"`{name}` on **{entry.name}**: {what}, drawn from the index in {ms:.0f} ms "
                         f"({cost}).{stage}")

    def _choose(self, session: Session, query: str) -> tuple[Hierarchy, str]:
        h = self.hierarchy(session)
        if h is None:
            raise gr.Error("WordNet is not available on this server; see the message at the top.")
        try:
            # says so for names WordNet has but T lacks
            return h, resolve_concept(h, limits.text(query, "The concept name"))
        except (UnknownConceptError, limits.BadRequest) as exc:
            raise gr.Error(str(exc)) from None


class Handlers(Base):
    """Concept selection, search, display options, compare view and exports."""

    def select_node(self, session: Session, evt: gr.EventData) -> tuple:
        """Tree click. Returns (session, map, info, status); the tree highlighted the row itself."""
        h, session.synset = self._choose(session, str(evt.synset))
        session.phrase = None
        path = getattr(evt, "path", None)  # the route the user took in the tree, for the breadcrumbs
        picture, status = self._draw(session)
        info = panels.info_html(h, session.synset, path if isinstance(path, list) else None)
        return session, picture, info, status

    def navigate(self, session: Session, evt: gr.EventData) -> tuple:
        """Link click (breadcrumb, search hit, top concept, "map this phrase").

        Returns (session, tree, map, info, status).
        """
        phrase = getattr(evt, "phrase", None)
        if phrase is not None:
            return self.show_phrase(session, str(phrase))
        h, session.synset = self._choose(session, str(evt.synset))
        session.phrase = None
        picture, status = self._draw(session)
        return session, tree_value(h, session.synset), picture, panels.info_html(h, session.synset), status

    def show_phrase(self, session: Session, text: str) -> tuple:
        """Map a free-text phrase. Returns (session, tree, map, info, status)."""
        try:
            text = maps.clean_phrase(text)
            engine = self.b.engine(session.model or None, session.vocabulary or None)
            nearest = self.b.on_device(engine.nearest_concepts, text, k=6)  # one text forward
        except USER_ERRORS as exc:
            raise gr.Error(f"Could not map the phrase: {exc}") from None
        session.phrase = text
        picture, status = self._draw(session)
        return session, gr.skip(), picture, panels.phrase_html(text, nearest), status

    def search(self, text: str, session: Session) -> str:
        """Search-as-you-type: up to 12 hits as links, "map this phrase", and a WordNet hint."""
        text = self._query(text)
        h = self.hierarchy(session)
        hits = h.search(text, 12) if h else []
        return panels.search_html(h, text, hits, None if hits or h is None else wordnet_hint(h, text))

    def search_submit(self, text: str, session: Session) -> tuple:
        """Enter in the search box: go to the best hit, else map the words as a phrase.

        Returns (session, tree, map, info, status).
        """
        text = self._query(text)
        h = self.hierarchy(session)
        hits = h.search(text, 1) if h and text.strip() else []
        if not hits:
            if h is not None and text.strip():
                if not maps.looks_like_synset(text):
                    return self.show_phrase(session, text)
                self._choose(session, text)  # raises: WordNet hint, then did-you-mean
            return (session, *(gr.skip(),) * 4)
        return self.navigate(session, gr.EventData(None, {"synset": hits[0]}))

    @staticmethod
    def _query(text: str | None) -> str:
        try:
            return limits.text(text, "The search text")
        except limits.BadRequest as exc:
            raise gr.Error(str(exc)) from None

    # ---- view, compare, export ----------------------------------------------------------------
    def set_view(self, session: Session, style: str, cmap: str, alpha: float, exponent: float, box: bool,
                 threshold: float) -> tuple:
        """Any display control changed. Returns (session, map, compare grid)."""
        try:
            session.view = View.from_controls(style, cmap, alpha, exponent, box, threshold)
        except USER_ERRORS as exc:
            raise gr.Error(str(exc)) from None
        picture, _ = self._draw(session)
        return session, picture, self._compare_picture(session)

    def _compare_picture(self, session: Session) -> Any:
        if session.entry is None or not session.compare:
            return None if not session.compare else gr.skip()
        try:
            ready = maps.item_maps(self.b, session.entry, session.compare)
        except USER_ERRORS as exc:
            raise gr.Error(f"Could not draw the compare view: {exc}") from None
        return render_compare(session.entry, session.compare, session.view, ready)

    def set_compare(self, names: list[str] | None, session: Session) -> tuple:
        """Set the compare list (validated, at most 6). Returns (session, list control, grid).

        A name T lacks that does not look like a synset name joins as a free-text phrase.
        """
        h = self.hierarchy(session)
        good: list[str] = []
        if len(names or []) > 4 * MAX_COMPARE:
            raise gr.Error(f"The compare view holds {MAX_COMPARE} concepts; got {len(names):,} names.")
        for n in names or []:
            phrase = maps.unquote(n)
            try:
                n = limits.text(n, "A concept name")
                good.append(maps.quote(maps.clean_phrase(phrase)) if phrase is not None
                            else h.resolve(n) if h else n)
            except UnknownConceptError as exc:
                if maps.looks_like_synset(n):
                    gr.Warning(str(exc))
                else:
                    good.append(maps.quote(maps.clean_phrase(n)))
            except ValueError as exc:  # limits.BadRequest: too long, or an empty phrase
                gr.Warning(str(exc))
        session.compare = list(dict.fromkeys(good))[:MAX_COMPARE]
        return (session, gr.update(choices=session.compare, value=session.compare),
                self._compare_picture(session))

    def compare_add(self, session: Session) -> tuple:
        """Add the selected concept to the compare list."""
        item = session.item
        if item is None:
            raise gr.Error("Select a concept (or map a phrase) first.")
        if len(session.compare) >= MAX_COMPARE and item not in session.compare:
            gr.Warning(f"The compare view holds {MAX_COMPARE} concepts; remove one first.")
        return self.set_compare([*session.compare, item], session)

    def compare_clear(self, session: Session) -> tuple:
        """Empty the compare list."""
        return self.set_compare([], session)

    def compare_children(self, session: Session) -> tuple:
        """Compare the selected concept's children, those this image shows most first."""
        h = self.hierarchy(session)
        if h is None or session.synset is None or not h.children(session.synset):
            raise gr.Error("Select a concept that has children first.")
        kids = h.children(session.synset)
        if session.entry is not None:
            scores = session.entry.index.concept_scores()
            kids = sorted(kids, key=lambda k: -float(scores[h.index(k)]))
        return self.set_compare(kids[:MAX_COMPARE], session)

    def export(self, session: Session) -> list[str] | None:
        """PNG, NPY and JSON of the current view."""
        if session.entry is None or session.item is None:
            raise gr.Error("Upload an image and select a concept first.")
        saliency, _ = maps.current(self.b, session)
        method = "phrase" if session.phrase else "stochastic" if saliency is not None else "grid"
        self.b.disk.trim()  # a flood of exports stays within the disk budget
        return export(session.entry, session.item, session.view, session.export_folder(), saliency, method)
