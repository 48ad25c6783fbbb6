"""Handlers for the map method (grid or stochastic), the raw-cosine map beside it and the region.

The stochastic map runs as a queued model job, started through a hidden request component so
that only selections that need it queue one; `stop` (unqueued) or a newer request makes a
running job stop at its next forward.
"""

from __future__ import annotations

import time
from typing import Any

import gradio as gr

from convis.app import maps
from convis.app.handlers import USER_ERRORS, problem
from convis.app.session import METHODS, REGIONS, Session, Superseded
from convis.app.uploads import Uploads
from convis.app.views import render_view


class Methods(Uploads):
    """Method, raw-map and region controls; the stochastic job."""

    def set_method(self, method: str, raw: bool, session: Session) -> tuple:
        """Method radio or raw checkbox changed. Returns (session, map, status)."""
        method = METHODS.get(method, method)
        if method not in METHODS.values():
            raise gr.Error(f"unknown method {method!r}; use one of {', '.join(METHODS.values())}")
        if method != session.method:
            session.job += 1  # a running stochastic job stops
        session.method, session.raw = method, bool(raw)
        picture, status = self._draw(session)
        return session, picture, status

    def extras(self, session: Session) -> tuple:
        """After any redraw: the raw map beside it, the map's caption, a stochastic request.

        Returns (raw picture update, map caption update, request nonce or skip).
        """
        entry = session.entry
        if entry is None or session.item is None:
            return gr.update(visible=session.raw), gr.skip(), gr.skip()
        caption = gr.update(label=maps.caption(self.b, session))
        if not session.raw:
            raw: Any = gr.update(visible=False)
        else:
            try:  # a concept's or a phrase's cosine per window
                saliency = maps.raw_map(self.b, entry, session.item, entry.display.shape[:2])
            except USER_ERRORS as exc:
                raw = gr.update(visible=True, value=None, label=f"Raw cosine: {exc}")
            else:
                picture, _ = render_view(entry, session.item, session.view, saliency)
                raw = gr.update(visible=True, value=picture,
                                label=f"Raw cosine (ablation) of the {maps.region_name(entry)}")
        wanted = session.method == "stochastic" and not session.phrase and maps.request_stochastic(self.b, session)
        if not wanted:  # not asked for, ready, or already running (a display change must not restart it)
            return raw, caption, gr.skip()
        session.job += 1  # a stochastic job of an earlier selection stops at its next forward
        return raw, caption, session.job

    def stop(self, session: Session) -> tuple:
        """Stop button (unqueued): a running stochastic job stops at its next forward.

        Returns (status, map caption update).
        """
        session.job += 1
        pending, session.pending = session.pending, None  # picking the concept again starts it anew
        if pending is None or session.entry is None:
            return "Nothing to stop: no stochastic map is being computed.", gr.skip()
        region = maps.region_name(session.entry)
        caption = f"Grid map (ConVis) of the {region}; the stochastic map was stopped"
        return ("Stopped the stochastic map; the grid map stays on screen. Pick the concept again to rerun "
                "it.", gr.update(label=caption))

    def run_stochastic(self, session: Session, progress: gr.Progress = gr.Progress()) -> tuple:
        """The stochastic map of the selection (sequential forwards). Returns (session, map, status)."""
        entry, synset, mine = session.entry, session.synset, session.job
        if (entry is None or synset is None or session.phrase or session.method != "stochastic"
                or self.b.kept_map(entry.key, synset) is not None):
            return session, gr.skip(), gr.skip()
        config = maps.STOCHASTIC

        def step(done: int, total: int) -> None:
            if session.job != mine:
                raise Superseded(synset)
            progress((done, total), desc=f"Stochastic map of {synset}: one CLIP forward at a time",
                     unit="forwards")

        t0 = time.perf_counter()
        try:
            engine = maps.engine_of(self.b, entry)
            saliency = self.b.on_device(engine.stochastic, entry.index, synset, config, progress=step)
        except Superseded:
            maps.forget_pending(session, entry, synset)
            return session, gr.skip(), gr.skip()
        except USER_ERRORS as exc:
            maps.forget_pending(session, entry, synset)
            return session, gr.skip(), problem(f"Could not compute the stochastic map of {synset}", exc)
        maps.keep_stochastic(self.b, session, entry, synset, saliency)
        if session.current != entry.key or session.synset != synset or session.phrase:
            return session, gr.skip(), gr.skip()  # the user moved on; the map is kept for later
        picture, _ = self._draw(session)
        took = time.perf_counter() - t0
        picture = gr.update(value=picture, label=maps.caption(self.b, session))
        return session, picture, (f"`{synset}` on **{entry.name}**: stochastic map of the "
                                  f"{maps.region_name(entry)}, {config.iterations} sequential CLIP forwards "
                                  f"in {took:.1f} s.")

    def set_region(self, region: str, session: Session, progress: gr.Progress = gr.Progress()):
        """Whole picture or centre square: re-index the current image (once per region, then cached),
        stage by stage as an upload is.

        Yields (session, map, status, top concepts, tree, info).
        """
        if region not in REGIONS:
            raise gr.Error(f"unknown region {region!r}; use one of {', '.join(REGIONS)}")
        skip = (gr.skip(),) * 4
        if REGIONS[region] == session.whole:
            yield (session, gr.skip(), *skip)
            return
        session.whole = REGIONS[region]
        session.job += 1
        if session.image_path is None:
            yield session, gr.skip(), f"Maps will cover the {region.lower()}.", *skip[:3]
            return
        for picture, status, top, tree, info in self.reindex(session, progress):
            if session.phrase:  # the phrase stays shown, with its panel
                info = gr.skip()
            yield session, picture, status, top, gr.skip() if tree is None else tree, info
