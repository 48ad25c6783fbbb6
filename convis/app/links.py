"""Links that reopen a view: `?image=<sha256>&concept=dog.n.01&region=whole`.

The page's address follows the view (a JavaScript `history.replaceState` after each redraw) and
*Copy link* copies it. Opening a link restores the view when the picture's index is on this server,
found through an injected `Finder` (the backend's index cache, then the dataset store when the app
has one); otherwise it selects the concept and region and asks for the picture again. A bad or stale
link is never an error page: the status line says what was wrong.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping
from urllib.parse import urlencode

import gradio as gr

from convis.app import limits, maps, panels
from convis.app.backend import Backend
from convis.app.entry import Entry
from convis.app.session import REGION_KEYS, REGIONS, Session
from convis.app.uploads import Uploads
from convis.app.widgets import tree_value
from convis.concepts.hierarchy import UnknownConceptError
from convis.engine import EmptyPhraseError

# (image sha256, model key, vocabulary, whole picture) -> the picture's index, or None.
Finder = Callable[[str, str, str, bool], Entry | None]
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
REGION_OF = {whole: name for name, whole in REGION_KEYS.items()}  # True -> "whole"
LABEL_OF = {whole: label for label, whole in REGIONS.items()}  # True -> the region radio's label

# Copy link: the view's query on this page's address, written to the clipboard (or, where the page
# is not a secure context, through a hidden text area), and shown in the link box to copy by hand.
COPY_LINK_JS = """(query) => {
  if (!query) return "Nothing to link to yet: upload a picture and pick a concept first.";
  const url = new URL(window.location.href);
  url.search = query;
  window.history.replaceState(window.history.state, "", url);
  const text = url.toString();
  const fallback = () => {
    const ta = document.createElement("textarea");
    ta.value = text; ta.setAttribute("readonly", ""); ta.style.position = "fixed"; ta.style.opacity = "0";
    document.body.appendChild(ta); ta.select();
    try { document.execCommand("copy"); } catch (e) {}
    document.body.removeChild(ta);
  };
  if (navigator.clipboard && window.isSecureContext) navigator.clipboard.writeText(text).catch(fallback);
  else fallback();
  return text;
}"""
# After each redraw: the address bar carries the view, so reloading or bookmarking keeps it.
FOLLOW_JS = """(query) => {
  if (!query) return;
  const url = new URL(window.location.href);
  url.search = query;
  window.history.replaceState(window.history.state, "", url);
}"""


def cache_finder(backend: Backend) -> Finder:
    """Look a picture up in the backend's index cache (seed 0, as the app indexes)."""

    def find(image: str, model: str, vocabulary: str, whole: bool) -> Entry | None:
        return backend.cached((image, model, vocabulary, 0, whole))

    return find


def finder(backend: Backend, *more: Finder | None) -> Finder:
    """The backend's index cache first, then each of `more` (e.g. a dataset store's finder) in turn."""
    finders = [cache_finder(backend), *(f for f in more if f is not None)]

    def find(image: str, model: str, vocabulary: str, whole: bool) -> Entry | None:
        return next((e for f in finders if (e := f(image, model, vocabulary, whole)) is not None), None)

    return find


def view_query(backend: Backend, session: Session) -> str:
    """The query string of the session's view ("" before there is one); model and concept set only
    when they are not the server's defaults."""
    entry, item = session.entry, session.item
    if entry is None or item is None:
        return ""
    image, model, vocabulary, _, whole = entry.key
    params = {"image": image, **({"phrase": session.phrase} if session.phrase else {"concept": session.synset}),
              "region": REGION_OF[whole]}
    if model != backend.default_model:
        params["model"] = model
    if vocabulary != backend.default_vocabulary:
        params["vocabulary"] = vocabulary
    return "?" + urlencode(params)


def parse(query: Mapping[str, str], backend: Backend) -> dict[str, str | bool]:
    """The link's bounded fields, defaults filled in; BadRequest names the first bad one."""
    image = limits.text(query.get("image", ""), "the link's image", 64).lower()
    if image and not _SHA256.match(image):
        raise limits.BadRequest("the link's image must be a 64-digit SHA-256")
    region = limits.text(query.get("region", "whole"), "the link's region", limits.MAX_WORD)
    if region not in REGION_KEYS:
        raise limits.BadRequest(f"the link's region must be one of {', '.join(REGION_KEYS)}")
    try:
        phrase = maps.clean_phrase(query["phrase"]) if "phrase" in query else ""
    except EmptyPhraseError as exc:  # a user error, reported like the link's other bad fields
        raise limits.BadRequest(str(exc)) from exc
    return {"image": image, "whole": REGION_KEYS[region],
            "concept": limits.text(query.get("concept", ""), "the link's concept"),
            "phrase": phrase,
            "model": limits.text(query.get("model", backend.default_model), "the link's model"),
            "vocabulary": limits.text(query.get("vocabulary", backend.default_vocabulary), "the link's concept set")}


class Links(Uploads):
    """Restore the view a link names on page load; the query of the current view for the address.

    Args:
        backend: the app's backend.
        find: how a picture is looked up by its SHA-256 (default: `cache_finder(backend)`).
    """

    def __init__(self, backend: Backend, find: Finder | None = None) -> None:
        super().__init__(backend)
        self.find = find or cache_finder(backend)

    def query(self, session: Session) -> str | dict:
        """After a redraw: the view's query for the address bar (skip while there is no view)."""
        return view_query(self.b, session) or gr.skip()

    def restore(self, session: Session, request: gr.Request) -> tuple:
        """Page load: the view of the page's link, if any.

        Returns (session, model, vocabulary, region, tree, map, info, top concepts, status).
        """
        skip = (gr.skip(),) * 8
        if not {"image", "concept", "phrase"} & set(request.query_params):
            return (session, *skip)
        try:
            link = parse(request.query_params, self.b)
        except limits.BadRequest as exc:
            return (session, *skip[:7], f"This link cannot be opened ({exc}); upload a picture to start.")
        session.whole = link["whole"]
        entry = self.find(link["image"], link["model"], link["vocabulary"], link["whole"]) if link["image"] else None
        h = entry.index.hierarchy if entry else self.hierarchy(session)
        note = ""
        try:
            session.synset = h.resolve(link["concept"]) if link["concept"] and h else session.synset
        except UnknownConceptError as exc:
            note = f" The link's concept is not in this concept set: {exc}."
        session.phrase = link["phrase"] or None
        region = LABEL_OF[link["whole"]]
        if entry is None:
            what = f"`{session.item}`" if session.item else "a view"
            status = (f"This link shows {what} on a picture this server no longer holds (it keeps indexes "
                      "for a while, within its memory budget). Upload the picture again to see it; the "
                      f"concept and region are selected.{note}")
            tree = tree_value(h, session.synset) if h and session.synset else gr.skip()
            info = panels.info_html(h, session.synset) if h and session.synset else gr.skip()
            return session, gr.skip(), gr.skip(), region, tree, gr.skip(), info, gr.skip(), status
        session.model, session.vocabulary = entry.key[1], entry.key[2]
        entry = dataclasses.replace(entry, seconds=0.0)  # the status says "from cache", not its first indexing
        session.remember(entry)
        picture, status, top, _, info = self.after_index(session, entry)
        if session.phrase:
            engine = maps.engine_of(self.b, entry)
            info = panels.phrase_html(session.phrase, self.b.on_device(engine.nearest_concepts, session.phrase, k=6))
        status = f"Opened from a link: {status}{note}"
        return (session, entry.key[1], entry.key[2], region, tree_value(h, session.synset), picture, info, top,
                status)
