"""Public-service bounds without a server: pixel budget, bounded inputs and lookups, per-key loads,
failure back-off, one LRU, sessions that hold keys, bounded exports, no server paths."""

from __future__ import annotations

import hashlib
import os
import threading
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from conftest import APP_TOY
from hostile import png_stream
from PIL import Image

from convis.cache import LRU, memoize
from convis.app import Backend, Session
from convis.app import limits
from convis.app.entry import image_hash
from convis.app.handlers import Handlers
from convis.app.loads import KeyedLoads, LoadFailed
from convis.app.session import MAX_EXPORTS
from convis.app.uploads import Uploads
from convis.concepts.hierarchy import UnknownConceptError, toy_hierarchy
from convis.image import ImageError, load_image
from convis.clip.models import ModelLoadError, load_model

CAT = str(Path(__file__).resolve().parents[1] / "assets" / "examples" / "cat.jpg")


def noop(*_a, **_k) -> None:
    """Stands in for gr.Progress."""


# ---- pixel budget ----------------------------------------------------------------------------------
def test_small_file_with_huge_pixel_count_is_refused_from_its_header(tmp_path, monkeypatch):
    from PIL import ImageFile

    path = png_stream(tmp_path / "deep.png", 13_000, 13_000, color_type=0, bit_depth=16)
    assert path.stat().st_size < 1_000_000
    decoded = []  # a state, not a time: refused from the header means no pixel was decoded
    monkeypatch.setattr(ImageFile.ImageFile, "load", lambda im: decoded.append(im.size))
    with pytest.raises(ImageError, match="13000x13000 pixels, more than the 40,000,000-pixel limit"):
        load_image(path)
    assert decoded == [], "refused from the header, before decoding 338 MB"


def test_large_16bit_and_rgba_are_reduced_before_conversion(tmp_path):
    grey = load_image(png_stream(tmp_path / "g.png", 6000, 5000, color_type=0, bit_depth=16, fill=0x40))
    # 0x4040 = 16448 over 16 bits -> 16448 / 257 = 64 in 8 bits (hand computation).
    assert grey.size == (2048, round(5000 * 2048 / 6000)) and grey.mode == "RGB"
    assert np.asarray(grey)[10, 10].tolist() == [64, 64, 64]
    rgba = load_image(png_stream(tmp_path / "a.png", 5000, 5000, color_type=6, fill=0x40))
    # RGB 64 at alpha 64/255 over white: 64 * 64/255 + 255 * (1 - 64/255) = 207.06.
    assert rgba.size == (2048, 2048) and np.asarray(rgba)[7, 7].tolist() == [207, 207, 207]


def test_exif_orientation_survives_the_reduction(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    a = np.zeros((100, 5000, 3), np.uint8)
    a[:, :2500] = 255  # left half white
    Image.fromarray(a).save(tmp_path / "r.jpg", exif=exif.tobytes(), quality=95)
    out = np.asarray(load_image(tmp_path / "r.jpg", max_side=1000))
    assert out.shape[0] > out.shape[1], "the picture is upright (tall), as the EXIF tag says"
    assert out[50, :, 0].mean() > 200 and out[-50, :, 0].mean() < 50, "left half -> top after rotation"


# ---- bounded text and numbers --------------------------------------------------------------------
@pytest.mark.parametrize("value, match", [
    (-5, "from 1 to 100"), (10**12, "from 1 to 100"), (float("nan"), "whole number"),
    (float("inf"), "whole number"), (2.5, "whole number"), ("x" * 1_000_000, "characters long"),
    (True, "whole number"), ([3], "whole number"),
])
def test_numbers_are_bounded_with_a_clear_error(value, match):
    with pytest.raises(limits.BadRequest, match=match):
        limits.whole(value, "k", 1, 100)


def test_numbers_in_range_pass():
    assert limits.whole(10.0, "k", 1, 100) == 10 and limits.whole("7", "k", 1, 100) == 7
    assert limits.number("0.5", "alpha", 0, 1) == 0.5


def test_text_is_bounded():
    with pytest.raises(limits.BadRequest, match="1,000,000 characters long; the limit is 200"):
        limits.text("a" * 1_000_000, "synset")
    assert limits.text("dog.n.01", "synset") == "dog.n.01"


@pytest.mark.parametrize("message, expected", [
    ("[Errno 2] No such file or directory: '/tmp/gradio/ab12cd/cat.jpg'",
     "[Errno 2] No such file or directory: 'cat.jpg'"),
    ("could not load /srv/app/assets/models/x.safetensors: bad", "could not load x.safetensors: bad"),
    ("see https://huggingface.co/timm/vit and ViT-B-32/openai", "see https://huggingface.co/timm/vit and ViT-B-32/openai"),
])
def test_public_messages_name_no_server_path(message, expected):
    assert limits.public(message) == expected


def test_did_you_mean_is_bounded_in_time_and_memory():
    h = toy_hierarchy(APP_TOY)
    with pytest.raises(UnknownConceptError, match="did you mean 'dog.n.01'"):
        h.resolve("dgo.n.01")  # suggestions still work for typos
    for n in (8_000, 16_000, 1_000_000):
        tracemalloc.start()
        t0 = time.perf_counter()
        with pytest.raises(UnknownConceptError):
            h.resolve("q" * n)
        assert h.search("q" * n, 20) == []
        seconds = time.perf_counter() - t0
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        # The message repeats the query (the app bounds it to 200 characters before it gets here).
        # Marked wall-clock bound: an unbounded edit distance over 1e6 characters takes minutes;
        # the bounded one takes milliseconds, so 5 s fails on the bug, not on a slow machine.
        assert seconds < 5.0 and peak < 10 * n + 5_000_000, (n, seconds, peak)


# ---- one LRU ---------------------------------------------------------------------------------------
def test_lru_with_a_byte_weight_keeps_the_newest_within_the_budget():
    import copy

    gone = []
    cache = LRU(max_weight=100, weight=len, on_evict=lambda k, v: gone.append(k))
    cache["a"], cache["b"] = "x" * 40, "y" * 50  # 90 of 100
    assert cache.weight == 90 and gone == []
    cache.get("a")  # a is now the most recent: b goes first
    cache["c"] = "z" * 30  # 120 > 100
    assert gone == ["b"] and list(cache) == ["a", "c"] and cache.weight == 70
    cache["a"] = "x" * 10  # a new value under a key replaces its weight, evicts nothing
    assert cache.weight == 40 and gone == ["b"]
    cache["big"] = "w" * 500  # heavier than the budget alone: kept, everything older goes
    assert list(cache) == ["big"] and cache.weight == 500 and gone == ["b", "c", "a"]  # a was stored last
    both = LRU(2, max_weight=1000, weight=len)
    both["a"], both["b"], both["c"] = "1", "2", "3"
    assert list(both) == ["b", "c"], "the count bound holds beside the weight bound"
    twin = copy.deepcopy(both)  # gr.State deep-copies a tab's session, caches included
    twin["d"] = "4"
    assert list(twin) == ["c", "d"] and list(both) == ["b", "c"]
    with pytest.raises(ValueError, match="bound"):
        LRU()



def test_lru_evicts_least_recently_used_and_reports_it():
    gone = []
    cache = LRU(2, on_evict=lambda k, v: gone.append(k))
    cache["a"], cache["b"] = 1, 2
    assert cache.get("a") == 1  # a is now the most recent
    cache["c"] = 3
    assert gone == ["b"] and list(cache) == ["a", "c"]
    assert cache.evict("a") == 1 and gone == ["b", "a"]

    calls = []

    @memoize(LRU(1))
    def square(x):
        calls.append(x)
        return x * x

    assert square(3) == square(3) == 9 and calls == [3]
    square(4)
    square(3)
    assert calls == [3, 4, 3]
    square.cache_clear()
    square(3)
    assert calls == [3, 4, 3, 3]


# ---- loads: per key, back-off ---------------------------------------------------------------------
def test_a_slow_load_does_not_block_another_key():
    loads, started, release = KeyedLoads(), threading.Event(), threading.Event()

    def slow():
        with loads.loading(("model", "big")):
            started.set()
            release.wait(10)

    t = threading.Thread(target=slow)
    t.start()
    assert started.wait(5)
    with loads.loading(("hierarchy", "toy")):
        pass
    assert t.is_alive(), "another key's load went through while the model's load still held its own"
    release.set()
    t.join()


def test_failed_loads_are_remembered_with_back_off():
    now = [100.0]
    loads = KeyedLoads(retry_s=30, max_retry_s=100, clock=lambda: now[0])
    calls = []

    def attempt():
        with loads.loading(("model", "x")):
            calls.append(now[0])
            raise ModelLoadError("weights of x are not cached")

    with pytest.raises(ModelLoadError, match="not cached"):
        attempt()
    now[0] += 10
    with pytest.raises(LoadFailed, match="not cached.*tries again in 20 s"):
        attempt()
    assert calls == [100.0], "no retry during the back-off"
    now[0] += 25
    with pytest.raises(ModelLoadError):
        attempt()
    now[0] += 59
    with pytest.raises(LoadFailed, match="in 1 s"):  # the delay doubled to 60 s
        attempt()
    assert len(calls) == 2


def _toy_backend(**kw) -> Backend:
    return Backend("test-tiny", "toy", device="cpu", hierarchies={"toy": toy_hierarchy(APP_TOY)}, **kw)


def test_backend_serves_loaded_engines_while_another_model_loads():
    started, release = threading.Event(), threading.Event()

    def slow_loader(name, tag, device="cpu", **_):
        if name != "test-tiny":
            started.set()
            release.wait(10)  # a slowed download: the property needs no 30 s sleep
        return load_model("test-tiny", device="cpu")

    backend = _toy_backend(loader=slow_loader)
    assert backend.preload()
    t = threading.Thread(target=backend.engine, args=("ViT-B-32/openai", "toy"))
    t.start()
    assert started.wait(10)
    assert backend.engine(None, None).hierarchy.vocabulary == "toy"
    assert backend.hierarchy("toy").search("dog", 1) == ["dog.n.01"]
    assert t.is_alive() and not release.is_set(), "served while the other model's load was still waiting"
    release.set()
    t.join()


def test_evicted_engine_takes_its_model_and_bank_along():
    import dataclasses

    from convis.clip import bank as bank_mod
    from convis.clip import models

    def loader(name, tag, device="cpu", **_):  # a second model that is a distinct object
        clip = load_model("test-tiny", "none", device="cpu")
        return clip if name == "test-tiny" else dataclasses.replace(clip, name=name)

    backend = _toy_backend(max_engines=1, loader=loader)
    first = backend.engine(None, None)
    assert any(v is first.bank for v in bank_mod._BANKS.values())
    assert any(v is first.clip for v in models._MODELS.values())
    second = backend.engine("ViT-B-32/openai", "toy")
    assert second.clip is not first.clip and list(backend._engines) == [("ViT-B-32/openai", "toy")]
    assert not any(v is first.bank for v in bank_mod._BANKS.values()), "the bank left with its engine"
    assert not any(v is first.clip for v in models._MODELS.values()), "the model left with its engine"


def test_large_choices_need_the_operator_flag():
    public, full = _toy_backend(), _toy_backend(allow_large=True)
    assert "nouns" not in public.vocabulary_choices() and "nouns" in full.vocabulary_choices()
    assert not any(k.startswith("ViT-L-14") for _, k in public.model_choices())
    assert any(k.startswith("ViT-L-14") for _, k in full.model_choices())
    with pytest.raises(ValueError, match="--allow-large"):
        public.engine("ViT-L-14/openai", "toy")


# ---- sessions hold keys, the backend holds bytes --------------------------------------------------
def test_image_key_is_a_full_sha256():
    im = Image.new("RGB", (20, 20), (1, 2, 3))
    expected = hashlib.sha256(b"(20, 20)RGB" + bytes([1, 2, 3]) * 400).hexdigest()
    assert image_hash(im) == expected and len(expected) == 64


def test_session_loses_an_index_the_backend_dropped(tmp_path):
    backend = _toy_backend(max_indexes=1)
    uploads, handlers, session = Uploads(backend), Handlers(backend), Session()
    uploads.mark_upload(CAT, session)
    list(uploads.index_image(CAT, session, noop))
    assert session.entry is not None and not session.dropped
    other = tmp_path / "other.png"
    Image.fromarray(np.random.default_rng(1).integers(0, 255, (80, 90, 3), np.uint8)).save(other)
    backend.index(load_image(other), "other.png")  # another user's picture pushes ours out
    import gc

    gc.collect()
    assert session.entry is None and session.dropped
    _, status = handlers._draw(session)
    assert "memory budget" in status and "upload it again" in status


def test_stochastic_maps_count_in_the_index_budget():
    entry = _toy_backend().index(load_image(CAT), "cat.jpg", whole=True)
    one_map = np.zeros(entry.index.grid_shape, np.float32)  # (224, 336): 0.3 MB
    budget = entry.nbytes + 10 * one_map.nbytes
    backend = _toy_backend(max_index_bytes=budget)
    entry = backend.index(load_image(CAT), "cat.jpg", whole=True)
    for i in range(40):  # 40 maps would hold 12 MB beside the index
        backend.keep_map(entry.key, f"concept_{i}.n.01", np.full(one_map.shape, i / 40, np.float32))
        assert backend.held_bytes <= budget
    assert backend.cached(entry.key) is entry, "the index the maps are drawn on is in use: it stays"
    kept = [i for i in range(40) if backend.kept_map(entry.key, f"concept_{i}.n.01") is not None]
    assert kept == list(range(30, 40)), "the index and the ten newest maps fill the budget"
    assert backend.kept_map(entry.key, "concept_39.n.01")[0, 0] == np.float32(39 / 40)
    other = backend.index(load_image(CAT), "cat.jpg", whole=False)  # another picture's index
    assert backend.cached(other.key) is other and backend.held_bytes <= budget


def test_exports_are_per_session_bounded_and_cleaned(toy_backend):
    uploads, handlers, session = Uploads(toy_backend), Handlers(toy_backend), Session()
    uploads.mark_upload(CAT, session)
    list(uploads.index_image(CAT, session, noop))
    paths = [handlers.export(session) for _ in range(MAX_EXPORTS + 3)]
    root = Path(session.exports)
    assert all(Path(p).parent.parent == root for p in paths[-1])
    assert len(list(root.iterdir())) == MAX_EXPORTS and all(Path(p).exists() for p in paths[-1])
    assert not Path(paths[0][0]).exists()
    assert sum(f.stat().st_size for f in root.rglob("*") if f.is_file()) < MAX_EXPORTS * 20 * 2**20
    other = Session()
    uploads.mark_upload(CAT, other)
    list(uploads.index_image(CAT, other, noop))
    assert Path(handlers.export(other)[0]).parent.parent != root, "one folder per session"
    session.close()
    assert not root.exists() and Path(other.exports).exists()
    other.close()


def test_deleted_upload_gives_a_message_without_a_server_path(tmp_path):
    toy = toy_hierarchy(APP_TOY)
    backend = Backend("test-tiny", "toy", device="cpu", hierarchies={"toy": toy, "toy2": toy_hierarchy(APP_TOY, vocabulary="toy2")})
    uploads, session = Uploads(backend), Session()
    path = tmp_path / "mine.png"
    Image.fromarray(np.random.default_rng(2).integers(0, 255, (70, 70, 3), np.uint8)).save(path)
    uploads.mark_upload(str(path), session)
    list(uploads.index_image(str(path), session, noop))
    path.unlink()  # Gradio deletes uploads after an hour
    with pytest.warns(UserWarning):
        out = list(uploads.switch_engine("test-tiny/none", "toy2", session, noop))[-1]
    status = out[5]
    assert "mine.png is no longer on the server" in status and "upload it again" in status
    assert str(tmp_path) not in status and "Errno" not in status


def test_the_cache_folder_is_trimmed_oldest_first(tmp_path):
    """Age is the time a file came into the cache (ctime): Gradio copies an example with copy2,
    which keeps its source's mtime, so by mtime it would always go first."""
    from convis.app.disk import trim_files

    files = []
    for i in range(6):  # 6 files of 1 KiB made in order; their mtimes say the opposite
        path = tmp_path / f"set{i % 2}" / f"f{i}.bin"
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(b"x" * 1024)
        os.utime(path, (1000 - i, 1000 - i))
        files.append((path, 0.0))
        time.sleep(0.02)
    assert trim_files(files + files[:1], 3 * 1024) == 3 * 1024, "a path given twice counts once"
    left = sorted(p.name for p in tmp_path.rglob("*.bin"))
    assert left == ["f3.bin", "f4.bin", "f5.bin"], "the three oldest went, the three newest stay"
    assert trim_files(files, 3 * 1024) == 0, "within budget: nothing more goes"


def test_the_trim_spares_kept_young_and_other_apps_files(tmp_path):
    from convis.app.disk import CacheBudget

    class Demo:  # what the budget reads of a gr.Blocks
        def __init__(self, made, kept):
            self.temp_file_sets = [set(map(str, made))]
            self.blocks = {0: type("Block", (), {"keep_in_cache": set(map(str, kept))})()}

    def make(name):
        path = tmp_path / name
        path.write_bytes(b"x" * 1024)
        time.sleep(0.02)
        return path

    other, example, old, newer = make("other-app.bin"), make("example.jpg"), make("old.bin"), make("newer.bin")
    budget = CacheBudget(2048, every_s=3600, young_s=0.0, exports=False)
    demo = Demo([example, old, newer], kept=[example])
    budget.attach(demo)
    assert budget.trim() == 1024
    assert other.exists() and example.exists() and newer.exists() and not old.exists(), \
        "only the app's oldest file goes: never another app's, never an example"
    assert demo.temp_file_sets[0] == {str(example), str(newer)}, "the deleted file leaves the app's record"
    young = CacheBudget(0, every_s=3600, young_s=3600.0, exports=False)
    young.attach(Demo([newer], kept=[]))
    assert young.trim() == 0 and newer.exists(), "a file younger than young_s stays (an upload waiting its turn)"
