"""The Dataset tab (`python app.py --store STORE`) and `/dataset_search`: which stored images show
the selected concept or phrase most, each with its map, and opening one in Explore.

Read-only: the store was written by `convis index`; maps come from its window embeddings (no image
forward) and an opened hit's index is rebuilt from them, so Explore needs no CLIP pass either.
Stored images are named by their path relative to the dataset's folder, never the server's.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gradio as gr
import numpy as np
from PIL import Image

from convis import render
from convis.app import limits, maps
from convis.app.entry import Entry, model_key
from convis.app.handlers import USER_ERRORS, problem
from convis.app.links import LABEL_OF
from convis.app.session import Session
from convis.app.uploads import Uploads
from convis.concepts.hints import resolve_concept
from convis.engine import Engine
from convis.image import ImageError, load_image
from convis.store.locate import Found, locate
from convis.store.search import search_text
from convis.store.store import Store

MAX_HITS, THUMB, STREAM = 100, 224, 4  # gallery bound; thumbnail short side (px); hits per gallery update


class DatasetView(Uploads):
    """Search a store from the app, show the hits, open one in Explore."""

    def __init__(self, backend, store: Store) -> None:
        super().__init__(backend)
        self.store = store
        spec = store.spec
        self.model = model_key(spec.model, spec.pretrained or None) if spec.model else spec.model_id
        self.whole = bool(spec.grid_config().whole)
        self.vocabularies = sorted({c.vocabulary for c in store.concept_sets()})
        paths = [r.path for r in store.rows()]
        self.root = os.path.commonpath([os.path.dirname(os.path.abspath(p)) for p in paths]) if paths else ""

    # ---- what the tab says ---------------------------------------------------------------------
    def name(self, path: str) -> str:
        """A stored image's path relative to the dataset's folder (no server path)."""
        return os.path.relpath(os.path.abspath(path), self.root) if self.root else Path(path).name

    def describe(self) -> str:
        have = ", ".join(f"*{v}*" for v in self.vocabularies) or "no concept set yet"
        region = "whole pictures" if self.whole else "centre squares"
        return (f"**Dataset store**: {len(self.store):,} images indexed with `{self.model}` ({region}); "
                f"scores for {have}. Pick a concept in the tree or type a phrase, then show the images.")

    def target(self) -> tuple[str, str]:
        """(model, vocabulary) the store was made for: what *Switch* selects."""
        return self.model, (self.b.default_vocabulary if self.b.default_vocabulary in self.vocabularies
                            else (self.vocabularies or [self.b.default_vocabulary])[0])

    def mismatch(self, engine: Engine, vocabulary: str) -> str:
        """Why this engine cannot search the store ("" when it can)."""
        if engine.clip.model_id != self.store.spec.model_id:
            return f"the store was indexed with `{self.model}`, Explore uses `{engine.clip.model_id}`"
        if vocabulary not in self.vocabularies:
            return f"the store has scores for {', '.join(self.vocabularies) or 'no concept set'}, not *{vocabulary}*"
        return ""

    # ---- searching ---------------------------------------------------------------------------
    def found(self, engine: Engine, concept: str | None, phrase: str | None, k: int) -> Iterator[Found]:
        """The k best hits with their maps and boxes (a generator: one hit at a time)."""
        if phrase:
            emb = self.b.on_device(engine.encode_text, phrase)  # one text forward, for the ranking and the maps
            hits = search_text(self.store, emb, engine.bank.embeddings, k)
            yield from locate(self.store, hits, engine.bank.embeddings, engine.hierarchy, phrase=emb)
        else:
            hits = self.store.search(engine, concept=concept, k=k)
            yield from locate(self.store, hits, engine.bank.embeddings, engine.hierarchy, concept=concept)

    def thumbnail(self, found: Found) -> np.ndarray:
        """(h, w, 3) uint8: the hit's mapped region with its map and box, short side `THUMB`."""
        x0, y0, w, h = found.row.crop
        scale = THUMB / min(w, h)
        size = (max(1, round(h * scale)), max(1, round(w * scale)))  # (H, W)
        try:
            region = load_image(found.hit.path).crop((x0, y0, x0 + w, y0 + h))
            picture = np.asarray(region.resize(size[::-1], Image.Resampling.BILINEAR).convert("RGB"))
        except ImageError:  # moved or gone since indexing: the map alone, from the store
            picture = np.full((*size, 3), 255, np.uint8)
        out = render.panel(picture, render.resize_map(found.heat, size), "overlay")
        if found.box is not None:
            bx0, by0, bx1, by1 = found.box
            box = tuple(int(round(v * scale)) for v in (bx0 - x0, by0 - y0, bx1 - x0, by1 - y0))
            out = render.draw_box(out, box, width=2)
        return out

    def show(self, k: float, session: Session, progress: gr.Progress = gr.Progress()) -> Iterator[tuple]:
        """Show button, tab opened, or a new selection while the tab is open: the gallery fills as
        the maps are made (every `STREAM` hits), so the first images show at once.

        Yields (session, gallery, status, switch button update).
        """
        switch = gr.update(visible=False)
        item = session.item
        if item is None:
            yield session, gr.skip(), "Pick a concept in the tree (or type a phrase) first.", switch
            return
        try:
            k = limits.whole(k, "the number of images", 1, MAX_HITS)
            vocabulary = session.vocabulary or self.b.default_vocabulary
            engine = self.b.engine(session.model or None, vocabulary)
            if why := self.mismatch(engine, vocabulary):
                yield (session, [], f"This store cannot be searched with Explore's model: {why}. "
                       "*Switch* loads the store's model and concept set.", gr.update(visible=True))
                return
            t0, gallery, session.hits = time.perf_counter(), [], []
            progress(0.0, desc=f"Ranking {len(self.store):,} stored images for {item}")
            for found in self.found(engine, session.synset, session.phrase, k):
                caption = f"{len(gallery) + 1}. {self.name(found.hit.path)} \u00b7 {found.hit.score:.3f}"
                gallery.append((self.thumbnail(found), caption))
                session.hits = session.hits + [found.hit.sha256]  # a click opens what is shown
                progress((len(gallery), k), desc=f"Maps of {item} from the store (no image forward)", unit="images")
                if len(gallery) % STREAM == 0 and len(gallery) < k:
                    yield session, list(gallery), f"The best {len(gallery)} so far of the {k} asked...", switch
        except USER_ERRORS as exc:
            yield session, gr.skip(), problem(f"Could not search the store for {item}", exc), switch
            return
        took = time.perf_counter() - t0
        yield (session, gallery, f"The {len(gallery)} images of {len(self.store):,} that show {item} most, best "
               f"first ({took:.1f} s). Click one to explore it.", switch)

    def follow(self, k: float, session: Session, progress: gr.Progress = gr.Progress()) -> Iterator[tuple]:
        """After a selection: refresh the gallery when the Dataset tab is the one open."""
        if not session.on_dataset:
            yield session, gr.skip(), gr.skip(), gr.skip()
            return
        yield from self.show(k, session, progress)

    def opened(self, session: Session, on_dataset: bool) -> Session:
        """Which tab is open (the gallery follows the tree only while it shows)."""
        session.on_dataset = on_dataset
        return session

    # ---- opening a hit -------------------------------------------------------------------------
    def entry(self, sha256: str, engine: Engine, model: str, vocabulary: str) -> Entry:
        """The stored image as the app's entry, cached like an upload's (StoreError if its file changed)."""
        image = self.store.image(sha256)  # read once: the index's pixels and the display
        index = self.store.index(sha256, engine, image)  # ranks rebuilt from the stored windows, no forward
        return self.b.adopt((sha256, model, vocabulary, 0, self.whole), image, index,
                            self.name(self.store.row(sha256).path), "the dataset store")

    def find(self, image: str, model: str, vocabulary: str, whole: bool) -> Entry | None:
        """A link's picture from the store when the server's cache no longer holds it (a `Finder`)."""
        if image not in self.store or whole != self.whole:
            return None
        try:
            engine = self.b.engine(model, vocabulary)
            if self.mismatch(engine, vocabulary):
                return None
            return self.entry(image, engine, model, vocabulary)
        except USER_ERRORS:
            return None

    def open(self, session: Session, evt: gr.SelectData, progress: gr.Progress = gr.Progress()) -> tuple:
        """Gallery click: the hit in Explore, its index drawn from the store.

        Returns (session, tabs, region, map, status, top concepts, tree, info).
        """
        skip = (gr.skip(),) * 7
        if not isinstance(evt.index, int) or not 0 <= evt.index < len(session.hits):
            return (session, *skip)
        sha = session.hits[evt.index]
        model, vocabulary = session.model or self.b.default_model, session.vocabulary or self.b.default_vocabulary
        progress(0.0, desc="Rebuilding the picture's ranks from the store (no CLIP pass)")
        t0 = time.perf_counter()
        try:
            entry = self.entry(sha, self.b.engine(model, vocabulary), model, vocabulary)
        except USER_ERRORS as exc:
            return (session, *skip[:3], problem("Could not open this image", exc), *skip[4:])
        session.whole, session.image_path = self.whole, self.store.row(sha).path
        session.on_dataset = False
        session.remember(entry)
        picture, _, top, tree, info = self.after_index(session, entry)
        status = (f"**{entry.name}** opened from the dataset store in {time.perf_counter() - t0:.2f} s: its "
                  f"{len(entry.index.boxes)} windows were encoded once by `convis index`, so no CLIP pass now. "
                  "Every concept you pick is drawn from this index.")
        return (session, gr.Tabs(selected="explore"), LABEL_OF[self.whole], picture, status, top,
                gr.skip() if tree is None else tree, info)

    # ---- the API -------------------------------------------------------------------------------
    def dataset_search(self, concept: str = "", text: str = "", k: int = 10) -> list[dict[str, Any]]:
        """Which images of the server's dataset store show a concept (or a phrase) most, and where.

        Args:
            concept: a synset name ("dog.n.01") or a lemma ("dog"); or leave it empty and give `text`.
            text: a free-text phrase ("a red sports car"), searched when `concept` is empty.
            k: how many images to return, 1 to 100.
        Returns:
            Up to k hits, best first: file (its path relative to the dataset's folder), sha256 of the file, score,
            label, and box [x0, y0, x1, y1] in the image's pixels around where the map is strongest.
        """
        try:
            k = limits.whole(k, "k", 1, MAX_HITS)
            concept, text = limits.text(concept or "", "concept"), limits.text(text or "", "text")
            if bool(concept) == bool(text):
                raise limits.BadRequest("give a concept or a text (one of them)")
            model, vocabulary = self.target()
            engine = self.b.engine(model, vocabulary)
            if why := self.mismatch(engine, vocabulary):
                raise limits.BadRequest(why)
            synset = resolve_concept(engine.hierarchy, concept) if concept else None
            phrase = maps.clean_phrase(text) if text else None
            return [f.as_dict(self.name(f.hit.path)) for f in self.found(engine, synset, phrase, k)]
        except USER_ERRORS as exc:
            raise gr.Error(limits.public(f"Could not search the dataset: {exc}"), print_exception=False) from None
