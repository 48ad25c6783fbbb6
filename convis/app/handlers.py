"""UI event handlers: thin adapters between Gradio values, the `Session` and the `Backend`.

Engine exceptions become a toast plus a status line; the session is left as it was, so a bad
upload or an unavailable model never costs the user what they were looking at.
"""

from __future__ import annotations

import time
from typing import Any

import gradio as gr

from convis.app import panels
from convis.app.backend import Backend
from convis.app.session import MAX_COMPARE, Session, View
from convis.app.views import export, render_compare, render_view
from convis.app.widgets import tree_value
from convis.hierarchy import Hierarchy, UnknownConceptError
from convis.image import ImageError
from convis.models import ModelLoadError
from convis.wordnet import WordNetUnavailableError

# What the engine raises for bad input or missing resources; anything else is a bug and propagates.
USER_ERRORS = (ImageError, UnknownConceptError, ModelLoadError, WordNetUnavailableError, FileNotFoundError,
               ValueError)


def problem(what: str, exc: BaseException) -> str:
    """Status-line text for an error, and the same text as a toast."""
    text = f"{what}: {exc}"
    gr.Warning(text, duration=12)
    return f"\u26a0\ufe0f **{what}.** {exc}"


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
        entry, name = session.entry, session.synset
        if entry is None or name is None:
            return gr.skip(), ("Upload an image (or pick an example) to see where CLIP finds "
                               f"`{name}`." if name else "Upload an image to start.")
        t0 = time.perf_counter()
        picture, _ = render_view(entry, name, session.view)
        ms = 1000 * (time.perf_counter() - t0)
        stage = "" if entry.complete else f" Preview from {entry.index.describe()}: it sharpens as indexing goes on."
        return picture, (f"`{name}` on **{entry.name}**: drawn from the index in {ms:.0f} ms "
                         f"(no new CLIP pass).{stage}")

    def _choose(self, session: Session, query: str) -> tuple[Hierarchy, str]:
        h = self.hierarchy(session)
        if h is None:
            raise gr.Error("WordNet is not available on this server; see the message at the top.")
        try:
            return h, h.resolve(query)
        except UnknownConceptError as exc:
            raise gr.Error(str(exc)) from None



class Handlers(Base):
    """Concept selection, search, display options, compare view and exports."""

    def select_node(self, session: Session, evt: gr.EventData) -> tuple:
        """Tree click. Returns (session, map, info, status); the tree highlighted the row itself."""
        h, session.synset = self._choose(session, str(evt.synset))
        path = getattr(evt, "path", None)  # the route the user took in the tree, for the breadcrumbs
        picture, status = self._draw(session)
        info = panels.info_html(h, session.synset, path if isinstance(path, list) else None)
        return session, picture, info, status

    def navigate(self, session: Session, evt: gr.EventData) -> tuple:
        """Link click (breadcrumb, search hit, top concept). Returns (session, tree, map, info, status)."""
        h, session.synset = self._choose(session, str(evt.synset))
        picture, status = self._draw(session)
        return session, tree_value(h, session.synset), picture, panels.info_html(h, session.synset), status

    def search(self, text: str, session: Session) -> str:
        """Search-as-you-type: up to 12 hits as links."""
        h = self.hierarchy(session)
        return panels.search_html(h, text, h.search(text, 12) if h else [])

    def search_submit(self, text: str, session: Session) -> tuple:
        """Enter in the search box: go to the best hit. Returns (session, tree, map, info, status)."""
        h = self.hierarchy(session)
        hits = h.search(text, 1) if h and text.strip() else []
        if not hits:
            if h is not None and text.strip():
                self._choose(session, text)  # raises with the did-you-mean message
            return (session, *(gr.skip(),) * 4)
        return self.navigate(session, gr.EventData(None, {"synset": hits[0]}))

    # ---- view, compare, export ----------------------------------------------------------------
    def set_view(self, session: Session, style: str, cmap: str, alpha: float, exponent: float, box: bool,
                 threshold: float) -> tuple:
        """Any display control changed. Returns (session, map, compare grid)."""
        try:
            session.view = View.from_controls(style, cmap, alpha, exponent, box, threshold)
        except ValueError as exc:
            raise gr.Error(str(exc)) from None
        picture, _ = self._draw(session)
        return session, picture, self._compare_picture(session)

    def _compare_picture(self, session: Session) -> Any:
        if session.entry is None or not session.compare:
            return None if not session.compare else gr.skip()
        return render_compare(session.entry, session.compare, session.view)

    def set_compare(self, names: list[str] | None, session: Session) -> tuple:
        """Set the compare list (validated, at most 6). Returns (session, list control, grid)."""
        h = self.hierarchy(session)
        good: list[str] = []
        for n in names or []:
            try:
                good.append(h.resolve(n) if h else n)
            except UnknownConceptError as exc:
                gr.Warning(str(exc))
        session.compare = list(dict.fromkeys(good))[:MAX_COMPARE]
        return (session, gr.update(choices=session.compare, value=session.compare),
                self._compare_picture(session))

    def compare_add(self, session: Session) -> tuple:
        """Add the selected concept to the compare list."""
        if session.synset is None:
            raise gr.Error("Select a concept first.")
        if len(session.compare) >= MAX_COMPARE and session.synset not in session.compare:
            gr.Warning(f"The compare view holds {MAX_COMPARE} concepts; remove one first.")
        return self.set_compare([*session.compare, session.synset], session)

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
        if session.entry is None or session.synset is None:
            raise gr.Error("Upload an image and select a concept first.")
        return export(session.entry, session.synset, session.view)
