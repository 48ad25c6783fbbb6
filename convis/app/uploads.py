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

from convis.app import panels
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
        session.image_path, session.failed_upload = path, None
        was = session.entry  # a new `Entry` view each time: compare keys, not identities
        try:
            for entry in self.ensure_stages(image, name, session, progress, path):
                if entry.complete and was is not None and was.complete and entry.key == was.key:
                    yield (session, *skip)  # the same picture again (e.g. restored after a bad upload)
                    return
                session.remember(entry)  # a partial entry is current until the next stage replaces it
                picture, status, top, tree, info = self.after_index(session, entry)
                yield session, gr.skip(), picture, status, top, gr.skip() if tree is None else tree, info
        except Superseded:
            yield (session, *skip)
        except USER_ERRORS as exc:
            yield session, gr.skip(), gr.skip(), problem(f"Could not index {name}", exc), *skip[:3]

    def ensure_stages(self, image: Image.Image, name: str, session: Session, progress: gr.Progress,
                      upload: str | None) -> Iterator[Entry]:
        """The session's entry for an image if it has a complete one, else the stages of a new index."""
        model, vocabulary = session.model or None, session.vocabulary or None
        key = self.b.key(image, model, vocabulary, whole=session.whole)
        if (entry := session.find(key)) is not None and entry.complete:
            yield entry
            return
        on_bank, on_windows = self._progress(name, session, progress, upload)
        self.b.engine(model, vocabulary, on_bank)
        progress(0.0, desc=f"Indexing {name}: a coarse preview first")
        yield from self.b.index_stages(image, name, model, vocabulary, progress=on_windows, whole=session.whole)

    def ensure_index(self, image: Image.Image, name: str, session: Session, progress: gr.Progress,
                     upload: str | None) -> Entry:
        """The session's entry for an image, from its own LRU, the process cache, or a new index."""
        model, vocabulary = session.model or None, session.vocabulary or None
        key = self.b.key(image, model, vocabulary, whole=session.whole)
        if (entry := session.find(key)) is not None and entry.complete:
            return entry
        on_bank, on_windows = self._progress(name, session, progress, upload)
        self.b.engine(model, vocabulary, on_bank)
        progress(0.0, desc=f"Indexing {name}")
        return self.b.index(image, name, model, vocabulary, progress=on_windows, whole=session.whole)

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
        took = "from cache" if entry.seconds == 0 else f"in {entry.seconds:.1f} s"
        region = "the whole picture" if entry.key[4] else "the centre square"
        status = (f"**{entry.name}** indexed {took} with `{entry.key[1]}` over *{entry.key[2]}* "
                  f"({len(h):,} concepts, {len(entry.index.boxes)} windows over {region}). "
                  "Every concept you pick now "
                  "is drawn from this index, without another CLIP pass.")
        return picture, status, panels.top_html(h, top), tree, panels.info_html(h, session.synset)

    def switch_engine(self, model: str, vocabulary: str, session: Session,
                      progress: gr.Progress = gr.Progress()) -> tuple:
        """Model or vocabulary changed: load it (once per process), re-index the current image.

        Returns (session, model, vocabulary, tree, map, status, top concepts, info).
        """
        old = (session.model or self.b.default_model, session.vocabulary or self.b.default_vocabulary)
        if (model, vocabulary) == old:
            return (session, *(gr.skip(),) * 7)
        try:
            engine = self.b.engine(model, vocabulary, lambda d, t: progress(
                (d, t), desc=f"Encoding the glosses of {vocabulary} with {model} (once, then cached)",
                unit="glosses"))
        except USER_ERRORS as exc:  # put the selectors back: the session keeps its working engine
            return (session, old[0], old[1], gr.skip(), gr.skip(),
                    problem(f"Could not switch to {model} over {vocabulary}", exc), gr.skip(), gr.skip())
        session.model, session.vocabulary = model, vocabulary
        h = engine.hierarchy
        tree: Any = gr.skip()
        if vocabulary != old[1]:
            session.synset = session.synset if session.synset in h.ids else None
            session.compare = [c for c in session.compare if c in h.ids]
            tree = tree_value(h, session.synset)
        status = f"Using `{model}` over *{vocabulary}* ({len(h):,} concepts)."
        if session.image_path is None:
            return (session, gr.skip(), gr.skip(), tree, gr.skip(), status + " Upload an image.", gr.skip(),
                    panels.info_html(h, session.synset))
        upload = session.latest_upload
        try:
            image = read_upload(session.image_path)
            entry = self.ensure_index(image, Path(session.image_path).name, session, progress, upload)
        except Superseded:
            return (session, gr.skip(), gr.skip(), tree, *(gr.skip(),) * 4)
        except USER_ERRORS as exc:
            return (session, gr.skip(), gr.skip(), tree, gr.skip(), problem("Could not re-index", exc),
                    gr.skip(), gr.skip())
        session.remember(entry)
        picture, status, top, new_tree, info = self.after_index(session, entry)
        return (session, gr.skip(), gr.skip(), tree if new_tree is None else new_tree, picture, status, top,
                info)
