"""Handlers that may run CLIP: indexing an upload and switching model or vocabulary.

These run in the queue under one concurrency id, so one CPU or GPU is never oversubscribed. A
second upload does not wait for the first: `mark_upload` (unqueued) records it at once and the
running job stops at its next window batch.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gradio as gr
from PIL import Image

from convis.app import maps, panels
from convis.app.entry import Entry
from convis.app.handlers import USER_ERRORS, Base, problem
from convis.app.session import Session, Superseded
from convis.app.widgets import tree_value
from convis.image import ImageError, load_image

TOP_K = 15


def read_upload(path: str) -> Image.Image:
    """The uploaded picture, decoded within the pixel budget. Messages name the file, never a server path."""
    name = Path(path).name
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise ImageError(f"{name} is no longer on the server (uploads are kept for an hour); "
                         "upload it again") from None
    except OSError as exc:
        raise ImageError(f"could not read {name}: {exc.strerror or 'read error'}; upload it again") from None
    return load_image(data)


class Uploads(Base):
    """Upload and engine-switch handlers."""

    def mark_upload(self, path: str | None, session: Session) -> None:
        """Runs unqueued at upload time: a newer upload makes a running indexing job stop."""
        session.latest_upload = path
        self.b.disk.trim()  # the new upload is the newest file: older ones go first

    def index_image(self, path: str | None, session: Session, progress: gr.Progress = gr.Progress()):
        """Index an upload (once per image, model and vocabulary), live: a generator that shows the
        selected concept's map and the top concepts after each coarse-to-fine stage.

        Yields (session, image, map, status, top concepts, tree, info).
        """
        skip = (gr.skip(),) * 6
        if not path or path != session.latest_upload:  # cleared, or superseded while queued
            yield (session, *skip)
            return
        name = Path(path).name
        progress(0.0, desc=f"Reading {name}")  # the bar shows from the moment the file lands
        try:
            image = read_upload(path)
        except ImageError as exc:
            if path == session.failed_upload:  # Gradio may report one upload twice: warn once
                yield (session, *skip)
                return
            session.failed_upload = path
            # Put the last good image back: the session keeps exploring it.
            yield session, session.image_path, gr.skip(), problem(f"Could not use {name}", exc), *skip[:3]
            return
        good, was = session.image_path, session.entry  # a new `Entry` view each time: compare keys
        session.image_path, session.failed_upload = path, None
        try:
            for entry in self.stages(image, name, session, progress, path):
                if entry.complete and was is not None and was.complete and entry.key == was.key:
                    yield (session, *skip)  # the same picture again (e.g. restored after a bad upload)
                    return
                picture, status, top, tree, info = self.after_index(session, entry)
                yield session, gr.skip(), picture, status, top, gr.skip() if tree is None else tree, info
        except Superseded:
            session.image_path = good  # the last picture that indexed fine, should the newer one fail
            yield (session, *skip)
        except USER_ERRORS as exc:
            yield session, gr.skip(), gr.skip(), problem(f"Could not index {name}", exc), *skip[:3]

    def stages(self, image: Image.Image, name: str, session: Session, progress: gr.Progress,
               upload: str | None) -> Iterator[Entry]:
        """The one indexing path of the app (upload, engine switch, region switch): the session's
        complete entry for the image, else a new index coarse to fine, each stage made current.

        Stopped early (a newer upload, an error), the session goes back to the entry it showed: a
        preview dies with its job, and must not pass for an index the memory budget dropped.
        """
        model, vocabulary = session.model or None, session.vocabulary or None
        progress(0.0, desc=f"Looking {name} up (hashing its pixels)")
        key = self.b.key(image, model, vocabulary, whole=session.whole)
        if (entry := session.find(key)) is not None and entry.complete:
            session.remember(entry)
            yield entry
            return
        before = session.current
        on_bank, on_windows = self._progress(name, session, progress, upload)
        try:
            self.b.engine(model, vocabulary, on_bank)
            progress(0.0, desc=f"Indexing {name}: a coarse preview first")
            for entry in self.b.index_stages(image, name, model, vocabulary, progress=on_windows,
                                             whole=session.whole):
                session.remember(entry)  # a partial entry is current until the next stage replaces it
                yield entry
        finally:
            shown = session.entry
            if session.current != before and (shown is None or not shown.complete):
                session.entries.evict(session.current)
                session.current = before

    def reindex(self, session: Session, progress: gr.Progress) -> Iterator[tuple]:
        """Index the session's picture again (new model, vocabulary or region), stage by stage:
        `after_index`'s (map, status, top concepts, tree or None, info) per stage; a problem or a
        newer upload gives one tuple of skips (with the problem's status)."""
        name, skips = Path(session.image_path).name, (gr.skip(), gr.skip(), gr.skip(), None, gr.skip())
        try:
            progress(0.0, desc=f"Reading {name}")
            image = read_upload(session.image_path)
            for entry in self.stages(image, name, session, progress, session.latest_upload):
                yield self.after_index(session, entry)
        except Superseded:
            yield skips
        except USER_ERRORS as exc:
            yield gr.skip(), problem(f"Could not index {name} again", exc), *skips[2:]

    @staticmethod
    def _progress(name: str, session: Session, progress: gr.Progress, upload: str | None) -> tuple:
        def on_bank(done: int, total: int) -> None:
            progress((done, total), desc="First use of this model and vocabulary: encoding concept glosses",
                     unit="glosses")

        def on_windows(done: int, total: int) -> None:
            session.check_current(upload)
            progress((done, total), desc=f"Indexing {name}: CLIP looks at every window once", unit="windows")

        return on_bank, on_windows

    def after_index(self, session: Session, entry: Entry) -> tuple:
        """(map, status, top concepts, tree value or None if unchanged, info) for a new current entry."""
        h = entry.index.hierarchy
        top = entry.index.top_concepts(TOP_K, collapse_chains=True)
        tree: dict | None = None
        if session.synset is None or session.synset not in h.ids:  # start where CLIP is most sure
            session.synset = top[0][0]
            tree = tree_value(h, session.synset)
        picture, _ = self._draw(session)
        if not entry.complete:
            part = entry.index
            status = (f"**{entry.name}**: showing {part.describe()} after {entry.seconds:.1f} s: a coarse "
                      "preview that sharpens as CLIP looks at more windows. Pick any concept meanwhile.")
            return picture, status, panels.top_html(h, top), tree, panels.info_html(h, session.synset)
        took = (f"from {entry.origin}" if entry.origin else "from cache" if entry.seconds == 0
                else f"in {entry.seconds:.1f} s")
        region = maps.region_name(entry)
        trimmed = (f" The picture is longer than {entry.index.config.max_aspect:g}:1, so the maps cover its "
                   "centre strip; crop the picture yourself to map another part." if entry.index.crop.trimmed else "")
        status = (f"**{entry.name}** indexed {took} with `{entry.key[1]}` over *{entry.key[2]}* "
                  f"({len(h):,} concepts, {len(entry.index.boxes)} windows over the {region}).{trimmed} "
                  "Every concept you pick now is drawn from this index, without another CLIP pass.")
        return picture, status, panels.top_html(h, top), tree, panels.info_html(h, session.synset)

    def switch_engine(self, model: str, vocabulary: str, session: Session,
                      progress: gr.Progress = gr.Progress()):
        """Model or vocabulary changed: load it (once per process), re-index the current image,
        stage by stage as an upload is.

        Yields (session, model, vocabulary, tree, map, status, top concepts, info).
        """
        old = (session.model or self.b.default_model, session.vocabulary or self.b.default_vocabulary)
        if (model, vocabulary) == old:
            yield (session, *(gr.skip(),) * 7)
            return
        try:
            engine = self.b.engine(model, vocabulary, lambda d, t: progress(
                (d, t), desc=f"Encoding the glosses of {vocabulary} with {model} (once, then cached)",
                unit="glosses"))
        except USER_ERRORS as exc:  # put the selectors back: the session keeps its working engine
            yield (session, old[0], old[1], gr.skip(), gr.skip(),
                   problem(f"Could not switch to {model} over {vocabulary}", exc), gr.skip(), gr.skip())
            return
        session.model, session.vocabulary = model, vocabulary
        h = engine.hierarchy
        tree: Any = gr.skip()
        if vocabulary != old[1]:
            session.synset = session.synset if session.synset in h.ids else None
            session.compare = [c for c in session.compare if c in h.ids]
            tree = tree_value(h, session.synset)
        status = f"Using `{model}` over *{vocabulary}* ({len(h):,} concepts)."
        if session.image_path is None:
            yield (session, gr.skip(), gr.skip(), tree, gr.skip(), status + " Upload an image.", gr.skip(),
                   panels.info_html(h, session.synset))
            return
        for picture, status, top, new_tree, info in self.reindex(session, progress):
            yield (session, gr.skip(), gr.skip(), tree if new_tree is None else new_tree, picture, status, top,
                   info)
