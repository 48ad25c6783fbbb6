"""Mistakes a visitor meets in the app, each with a message (in-process; the served versions of
the upload and region cases are in tests/test_fault_load.py). Toy vocabulary, test-tiny."""

from __future__ import annotations

import errno
import gc
import logging
from pathlib import Path

import gradio as gr
import numpy as np
import pytest
from conftest import APP_TOY, load_app
from PIL import Image

from convis.app import Backend, Session
from convis.app.handlers import Handlers
from convis.app.methods import Methods
from convis.app.uploads import Uploads
from convis.concepts.hierarchy import toy_hierarchy


def noop(*_args, **_kwargs) -> None:
    """Stands in for gr.Progress outside a request."""


def picture(path: Path, width: int, height: int, seed: int = 0) -> str:
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (height, width, 3), np.uint8)).save(path)
    return str(path)


def upload(uploads: Uploads, session: Session, path: str) -> tuple:
    uploads.mark_upload(path, session)
    return list(uploads.index_image(path, session, noop))[-1]


@pytest.fixture()
def backend():
    toy = toy_hierarchy(APP_TOY)  # and a second vocabulary to switch to
    return Backend("test-tiny", "toy", device="cpu", hierarchies={"toy": toy, "toy2": toy_hierarchy(APP_TOY, vocabulary="toy2")})


def test_a_panorama_in_the_default_mode_maps_its_centre_strip_and_says_so(backend, tmp_path):
    uploads, session = Uploads(backend), Session()
    assert session.whole, "the whole picture is the default"
    status = upload(uploads, session, picture(tmp_path / "pano.png", 500, 100))[3]  # 5:1
    assert "indexed" in status and "centre 4:1 strip" in status and "longer than 4:1" in status
    assert session.entry.index.crop.box == (50, 0, 450, 100)
    h, w = session.entry.display.shape[:2]
    assert abs(w / h - 4) < 0.02, "the picture shown is the strip that was mapped"


def test_switching_the_region_after_the_upload_expired_says_upload_again(backend, tmp_path):
    uploads, methods, session = Uploads(backend), Methods(backend), Session()
    path = Path(picture(tmp_path / "mine.png", 90, 70))
    upload(uploads, session, str(path))
    path.unlink()  # Gradio deletes uploads after an hour
    with pytest.warns(UserWarning, match="no longer on the server"):
        out = list(methods.set_region("Centre square (the paper)", session, noop))[-1]
    status = out[2]
    assert "mine.png is no longer on the server" in status and "upload it again" in status
    assert str(tmp_path) not in status


def test_engine_and_region_switches_index_in_stages_with_progress_from_the_first_moment(backend, tmp_path):
    uploads, methods, session = Uploads(backend), Methods(backend), Session()
    said: list[str] = []

    def progress(value, desc=None, **_):
        said.append(desc or "")

    uploads.mark_upload(picture(tmp_path / "a.png", 120, 90), session)
    stages = list(uploads.index_image(session.latest_upload, session, progress))
    assert said[0].startswith("Reading a.png") and any("hashing" in d for d in said[:3])
    for switch in (lambda: methods.set_region("Centre square (the paper)", session, progress),
                   lambda: uploads.switch_engine("test-tiny/none", "toy2", session, progress)):
        said.clear()
        outs = list(switch())
        statuses = [o[2] if len(o) == 6 else o[5] for o in outs]
        assert len(outs) == len(stages) > 1, "as many live stages as an upload"
        assert "coarse preview" in statuses[0] and "indexed" in statuses[-1]
        reading = [i for i, d in enumerate(said) if d.startswith("Reading a.png")]
        indexing = [i for i, d in enumerate(said) if d.startswith("Indexing a.png")]
        assert reading and indexing and reading[0] < indexing[0], said[:4]
        assert all(d.startswith("Encoding the glosses") for d in said[:reading[0]]), "only a new bank comes first"




def test_a_superseded_upload_whose_successor_is_broken_leaves_the_last_picture(backend, tmp_path):
    uploads, handlers, session = Uploads(backend), Handlers(backend), Session()
    first = picture(tmp_path / "first.png", 120, 90, seed=1)
    upload(uploads, session, first)
    shown = session.current
    second, broken = picture(tmp_path / "second.png", 120, 90, seed=2), tmp_path / "broken.png"
    broken.write_text("not a picture")
    uploads.mark_upload(second, session)
    job = uploads.index_image(second, session, noop)
    assert "coarse preview" in next(job)[3], "the second upload's first stage is on screen"
    uploads.mark_upload(str(broken), session)  # a third upload arrives while the second runs
    assert list(job)[-1][1:] == (gr.skip(),) * 6, "the second job stops"
    with pytest.warns(UserWarning, match="Could not use broken.png"):
        out = list(uploads.index_image(str(broken), session, noop))[-1]
    gc.collect()
    assert out[1] == first, "the upload box goes back to the last picture that indexed"
    assert session.current == shown and session.entry is not None
    _, status = handlers._draw(session)
    assert "memory budget" not in status and "first.png" in status


def test_the_first_visitor_of_a_failing_load_gets_the_clean_message(tmp_path):
    def full_disk(name, tag, device="cpu", **_):
        raise OSError(errno.ENOSPC, "No space left on device", "/srv/convis/cache/weights.bin")

    backend = Backend("test-tiny", "toy", device="cpu", hierarchies={"toy": toy_hierarchy(APP_TOY)},
                      loader=full_disk)
    statuses = []
    for _ in range(2):  # the first visitor, then one during the back-off
        session = Session()
        with pytest.warns(UserWarning, match="No space left"):
            statuses.append(upload(Uploads(backend), session, picture(tmp_path / "p.png", 60, 60))[3])
    for status in statuses:
        assert "Could not index p.png" in status and "No space left on device" in status
        assert "/srv/convis" not in status and "weights.bin" in status
    assert "tries again in" in statuses[1]


def test_a_start_up_bug_is_logged_with_its_traceback(caplog):
    def buggy(name, tag, device="cpu", **_):
        raise KeyError("a bug, not a missing resource")

    backend = Backend("test-tiny", "toy", device="cpu", hierarchies={"toy": toy_hierarchy(APP_TOY)}, loader=buggy)
    with caplog.at_level(logging.ERROR, logger="convis.app.backend"):
        assert not backend.preload()
    (record,) = [r for r in caplog.records if "could not load" in r.getMessage()]
    assert record.exc_info and record.exc_info[0] is KeyError


def test_the_tree_and_banner_name_no_server_path(backend):
    from convis.concepts.wordnet import WordNetUnavailableError

    class NoWordNet(Backend):
        def hierarchy(self, vocabulary=None):
            raise WordNetUnavailableError("no WordNet under /srv/secret/nltk_data/corpora/wordnet")

    broken = NoWordNet("test-tiny", "toy", device="cpu", hierarchies={})
    demo = load_app().create_demo(broken, examples=[])
    text = str(demo.config["components"])
    assert "no WordNet under wordnet" in text and "/srv/secret" not in text


def test_offline_the_menu_offers_the_models_that_need_no_download(backend):
    import convis.eval  # noqa: F401 - registers the shipped synthetic-shapes model, as app.py does

    offline = Backend("ViT-B-32/openai", "toy", device="cpu", hierarchies={"toy": toy_hierarchy(APP_TOY)})
    assert not offline.preload()  # no weights offline
    choices = dict((key, label) for label, key in offline.model_choices())
    for key in ("test-tiny/none", "synthetic-shapes"):
        assert key in choices and choices[key].endswith("works offline"), choices
    assert "works offline" not in choices["ViT-B-32/openai"]
    assert "synthetic-shapes" in offline.vocabulary_choices(), "with its own concept set"
    demo = load_app().create_demo(offline, examples=[])
    banner = next(c for c in demo.config["components"] if c.get("props", {}).get("elem_id") == "cv-banner")
    assert "works offline" in banner["props"]["value"] and "synthetic-shapes" in banner["props"]["value"]
