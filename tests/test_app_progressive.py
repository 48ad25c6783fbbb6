"""The app while it indexes, without a server: stages stream, the partial index serves clicks,
a newer upload stops it, and the start-up load runs in the background."""

from __future__ import annotations

import time

import gradio as gr
import numpy as np
import pytest
from conftest import APP_TOY
from PIL import Image

from convis.app import Backend, Session
from convis.app.handlers import Handlers
from convis.app.uploads import Uploads


def noop(*_args, **_kwargs) -> None:
    """Stands in for gr.Progress outside a request."""


def picture(tmp_path, seed: int) -> str:
    """A fresh image (not in any cache) saved as PNG."""
    pixels = np.random.default_rng(seed).integers(0, 256, (96, 120, 3), dtype=np.uint8)
    path = tmp_path / f"scene-{seed}.png"
    Image.fromarray(pixels).save(path)
    return str(path)


def test_stages_stream_and_a_click_between_them_uses_the_partial_index(toy_backend, tmp_path):
    uploads, handlers = Uploads(toy_backend), Handlers(toy_backend)
    session = Session()
    path = picture(tmp_path, 1)
    uploads.mark_upload(path, session)
    stream = uploads.index_image(path, session, noop)
    _, image, pic, status, top, tree, info = next(stream)
    # The whole picture (the app's default): 120 x 96 -> 280 x 224 inside the 128 px border. Window
    # corners by hand, per axis: 128 px at 16..336 (21) x 16..400 (25), 64 px at 80..336 (17) x 80..400
    # (21): 525 + 357 = 882; stage 1 (128 px at stride 64 from the first corner): 6 x 7 = 42.
    assert "stage 1 of 4" in status and "42 of 882 windows" in status
    assert session.entry is not None and not session.entry.complete and len(session.entry.index.boxes) == 42
    assert isinstance(pic, np.ndarray) and pic.ndim == 3 and "data-synset" in top
    assert toy_backend.cached(session.current) is None, "a partial index is never cached"
    # A click during indexing: drawn from the partial index, and the status says so.
    _, _, pic2, _, click_status = handlers.navigate(session, gr.EventData(None, {"synset": "dog.n.01"}))
    assert "Preview from stage 1 of 4" in click_status and isinstance(pic2, np.ndarray)
    rest = list(stream)
    statuses = [out[3] for out in rest]
    assert ["stage 2 of 4" in statuses[0], "stage 3 of 4" in statuses[1], "indexed" in statuses[2]] == [True] * 3
    assert session.entry.complete and len(session.entry.index.boxes) == 882
    assert session.synset == "dog.n.01", "the user's pick survives the stages"
    assert toy_backend.cached(session.current) is not None, "the final index is cached"


def test_a_newer_upload_stops_indexing_between_stages_and_the_partial_is_not_reused(toy_backend, tmp_path):
    uploads = Uploads(toy_backend)
    session = Session()
    first, second = picture(tmp_path, 2), picture(tmp_path, 3)
    uploads.mark_upload(first, session)
    stream = uploads.index_image(first, session, noop)
    next(stream)
    uploads.mark_upload(second, session)  # the user drops another picture
    rest = list(stream)
    assert rest == [(session, *(gr.skip(),) * 6)]
    # Sessions hold weak references: the abandoned partial index is gone with its job, never cached.
    assert session.entry is None and toy_backend.cached(session.current) is None
    uploads.mark_upload(first, session)  # back to the first: indexed afresh, not the stale partial
    outs = list(uploads.index_image(first, session, noop))
    assert len(outs) == 4 and "indexed" in outs[-1][3] and session.entry.complete


def test_warm_up_loads_in_the_background_and_reports_progress():
    from convis.concepts.hierarchy import toy_hierarchy

    from convis.clip.models import load_model

    loads = []

    def counted(*a, **k):
        loads.append(a[0])
        return load_model(*a, **k)

    backend = Backend("test-tiny", "toy", device="cpu", hierarchies={"toy": toy_hierarchy(APP_TOY)},
                      loader=counted)
    warm = backend.warm_up()
    assert warm.state in ("loading", "ready")
    if warm.state == "loading":
        assert "Starting up" in warm.describe()
    deadline = time.monotonic() + 120
    while warm.state == "loading" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert warm.state == "ready" and warm.describe() == "" and warm.seconds > 0
    backend.engine(None, None)
    assert loads == ["test-tiny"], "the engine is warm: the first visitor loads nothing again"


def test_a_failed_warm_up_says_why():
    backend = Backend("no-such-arch/none", "toy", device="cpu", hierarchies={"toy": {}})
    warm = backend.warm_up()
    deadline = time.monotonic() + 60
    while warm.state == "loading" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert warm.state == "failed"
    assert "Could not load" in warm.describe(backend.startup_error) and backend.startup_error


@pytest.mark.parametrize("precision", ["int8"])
def test_backend_passes_its_precision_to_the_model_door(precision):
    from convis.concepts.hierarchy import toy_hierarchy

    backend = Backend("test-tiny", "toy", device="cpu", precision=precision,
                      hierarchies={"toy": toy_hierarchy(APP_TOY)})
    assert backend.engine(None, None).clip.precision == precision
