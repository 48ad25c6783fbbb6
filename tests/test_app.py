"""The app without a server: the demo builds, handlers and widgets behave, bad uploads are harmless.

Runs on the toy vocabulary and test-tiny (no WordNet, no weights, no network).
"""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path

import gradio as gr
import numpy as np
import pytest
from conftest import load_app
from PIL import Image

from convis import saliency as convis_sal
from convis.app import Backend, Session
from convis.app.endpoints import Endpoints
from convis.app.handlers import Handlers
from convis.app.links import Links
from convis.app.methods import Methods
from convis.app.panels import info_html
from convis.app.session import Superseded, View
from convis.app.uploads import Uploads
from convis.app.widgets import PAGE, children_page, make_fetch_children, tree_value

EXAMPLES = Path(__file__).resolve().parents[1] / "assets" / "examples"
CAT = str(EXAMPLES / "cat.jpg")



def last(stream):
    """The final output of a streaming handler (it yields once per indexing stage)."""
    return list(stream)[-1]

def noop(*_args, **_kwargs) -> None:
    """Stands in for gr.Progress outside a request."""


def event(synset: str, path: list[str] | None = None) -> gr.EventData:
    return gr.EventData(None, {"synset": synset, **({"path": path} if path else {})})


@pytest.fixture()
def indexed(toy_backend):
    """A session that has indexed cat.jpg, and the two handler groups."""
    uploads, handlers = Uploads(toy_backend), Handlers(toy_backend)
    session = Session()
    uploads.mark_upload(CAT, session)
    out = last(uploads.index_image(CAT, session, noop))
    assert session.entry is not None, out[3]
    return session, uploads, handlers


# ---- building ------------------------------------------------------------------------------------
def test_create_demo_builds_without_launching(toy_backend):
    app = load_app()
    demo = app.create_demo(toy_backend)
    assert isinstance(demo, gr.Blocks)
    deps = demo.config["dependencies"]
    public = {d["api_name"]: d for d in deps if d.get("api_visibility") == "public"}
    assert set(public) == {"search", "explain", "explain_text", "top_concepts"}, "UI events are private"
    # Queued: MCP tool calls of an unqueued event would skip the queue and its per-session guard.
    assert all(d["queue"] is not False for d in public.values())
    assert all(d.get("api_name") for d in deps), "every event needs an explicit api_name"
    trees = [c for c in demo.config["components"]
             if c.get("props", {}).get("component_class_name") == "SynsetTree"]
    assert trees and trees[0]["props"]["server_fns"] == ["fetch_children"]
    assert not demo.is_running


def test_parse_args_and_main_launch(monkeypatch, toy_backend):
    app = load_app()
    args = app.parse_args(["--model", "test-tiny", "--vocabulary", "toy", "--port", "7999", "--share"])
    assert (args.model, args.vocabulary, args.port, args.share) == ("test-tiny", "toy", 7999, True)
    seen = {}
    monkeypatch.setattr(app, "Backend", lambda *a, **k: toy_backend)
    monkeypatch.setattr(app, "launch", lambda demo, **kw: seen.update(kw, demo=demo))
    monkeypatch.delenv("GRADIO_SHARE", raising=False)
    app.main(["--model", "test-tiny", "--host", "127.0.0.1"])
    assert seen["share"] is False, "no --share, no GRADIO_SHARE: no public link"
    assert seen["host"] == "127.0.0.1" and isinstance(seen["demo"], gr.Blocks)


@pytest.mark.parametrize("value,share", [("yes", True), ("TRUE", True), ("1", True), ("off", False), ("", False)])
def test_boolean_environment_flags_are_read_by_one_parser(monkeypatch, capsys, value, share):
    app = load_app()
    monkeypatch.setenv("GRADIO_SHARE", value)
    monkeypatch.setenv("CONVIS_ALLOW_LARGE", value)
    args = app.parse_args([])
    assert (args.share, args.allow_large) == (share, share)
    monkeypatch.setenv("CONVIS_ALLOW_LARGE", "maybe")
    with pytest.raises(SystemExit):
        app.parse_args([])
    assert "CONVIS_ALLOW_LARGE='maybe' is not a yes/no value" in capsys.readouterr().err


@pytest.mark.parametrize(("env", "argv", "message"), [
    ({"CONVIS_INDEX_MIB": "1GB"}, [], "CONVIS_INDEX_MIB: '1GB' is not a whole number of MiB"),
    ({"CONVIS_CACHE_MIB": "0"}, [], "CONVIS_CACHE_MIB: 0 MiB holds nothing"),
    ({}, ["--index-mib", "-5"], "-5 MiB holds nothing"),
])
def test_a_bad_budget_stops_with_its_name_not_a_traceback(monkeypatch, capsys, env, argv, message):
    app = load_app()
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SystemExit) as stop:
        app.parse_args(argv)
    assert stop.value.code == 2 and message in capsys.readouterr().err


def test_a_flag_overrides_a_bad_budget_variable(monkeypatch):
    monkeypatch.setenv("CONVIS_INDEX_MIB", "1GB")
    monkeypatch.setenv("CONVIS_CACHE_MIB", "300")
    args = load_app().parse_args(["--index-mib", "10"])
    assert (args.index_mib, args.cache_mib) == (10, 300)


def test_unloadable_model_leaves_the_app_up_with_the_fix(toy_backend):
    backend = Backend("ViT-B-32/openai", "toy", device="cpu",
                      hierarchies={"toy": toy_backend.hierarchy("toy")})
    assert not backend.preload()
    assert "ModelLoadError" in backend.startup_error and "test-tiny" in backend.startup_error
    assert "test-tiny/none" in [k for _, k in backend.model_choices()], "offer the offline model"
    demo = load_app().create_demo(backend)
    banner = next(c for c in demo.config["components"] if c.get("props", {}).get("elem_id") == "cv-banner")
    assert banner["props"]["visible"] and "test-tiny" in banner["props"]["value"]


def test_switching_to_an_unavailable_model_keeps_the_session(indexed):
    session, uploads, _ = indexed
    before = session.current
    with pytest.warns(UserWarning, match="HF_HUB_OFFLINE"):
        out = last(uploads.switch_engine("ViT-B-32/openai", "toy", session, noop))
    assert out[1] == "test-tiny/none" and out[2] == "toy", "the selectors go back"
    assert "Could not switch" in out[5] and session.current == before
    assert session.model in ("", "test-tiny/none")


def test_switching_vocabulary_resets_the_tree_and_reindexes(toy_backend):
    from convis.concepts.hierarchy import toy_hierarchy

    small = toy_hierarchy({"animal.n.01": ["entity.n.01"], "cat.n.01": ["animal.n.01"]}, vocabulary="mini")
    backend = Backend("test-tiny", "toy", device="cpu",
                      hierarchies={"toy": toy_backend.hierarchy("toy"), "mini": small})
    uploads, session = Uploads(backend), Session()
    uploads.mark_upload(CAT, session)
    last(uploads.index_image(CAT, session, noop))
    session.synset = "feline.n.01"  # not in "mini": the selection must go
    _, _, _, tree, picture, status, top, _ = last(uploads.switch_engine("test-tiny/none", "mini", session, noop))
    assert tree["vocabulary"] == "mini" and session.entry.key[2] == "mini"
    assert session.synset in small.ids and isinstance(picture, np.ndarray) and "indexed" in status


# ---- the tree ------------------------------------------------------------------------------------
def test_tree_value_opens_the_root_and_reveals_a_node(toy_backend):
    h = toy_backend.hierarchy("toy")
    first = tree_value(h)
    assert [r["id"] for r in first["roots"]] == ["entity.n.01"] and first["open"] == ["entity.n.01"]
    value = tree_value(h, "cat.n.01")
    path = ["entity.n.01", "physical_entity.n.01", "object.n.01", "animal.n.01", "feline.n.01", "cat.n.01"]
    assert value["selected"] == "cat.n.01" and value["focus"] == "|".join(path)
    assert value["open"][-1] == "|".join(path[:-1]) and set(value["kids"]) == set(path[:-1])
    json.dumps(value)  # it travels to the browser as JSON


def test_children_are_paged_and_a_deep_target_is_included(toy_backend):
    h = toy_backend.hierarchy("toy")
    page = children_page(h, "device.n.01")
    assert (len(page["items"]), page["total"]) == (PAGE, 130)
    rest = children_page(h, "device.n.01", offset=PAGE)
    assert len(rest["items"]) == 30 and rest["items"][0]["id"] == "gadget_100.n.01"
    grown = children_page(h, "device.n.01", include="gadget_120.n.01")
    assert grown["items"][-1]["id"] == "gadget_120.n.01"


def test_a_two_parent_synset_is_under_both_parents(toy_backend):
    h = toy_backend.hierarchy("toy")
    under = {p: [n["id"] for n in children_page(h, p)["items"]] for p in ("animal.n.01", "pet.n.01")}
    assert all("dog.n.01" in kids for kids in under.values())
    dog = next(n for n in children_page(h, "pet.n.01")["items"] if n["id"] == "dog.n.01")
    assert dog["p"] == ["animal.n.01", "pet.n.01"]
    crumbs = info_html(h, "dog.n.01", ["entity.n.01", "physical_entity.n.01", "object.n.01", "pet.n.01",
                                       "dog.n.01"])
    assert 'data-synset="pet.n.01"' in crumbs.split("</nav>")[0], "breadcrumbs follow the route taken"


def test_labels_are_escaped(toy_backend):
    h = toy_backend.hierarchy("toy")
    html = info_html(h, "jack-o'-lantern.n.01")
    assert "jack-o&#x27;-lantern" in html and "jack-o'-lantern" not in html


def test_fetch_children_rejects_what_is_not_offered(toy_backend):
    fetch = make_fetch_children(toy_backend.hierarchy)
    assert fetch({"vocabulary": "toy", "synset": "feline.n.01"})["total"] == 2
    bad_requests = ({"vocabulary": "wordlist:/etc/passwd", "synset": "x"},
                    {"vocabulary": "toy", "synset": "nope"})
    for bad in bad_requests:
        out = fetch(bad)
        assert out["items"] == [] and out["error"]


# ---- handlers ------------------------------------------------------------------------------------
def test_upload_shows_a_map_and_top_concepts(toy_backend):
    uploads, session = Uploads(toy_backend), Session()
    uploads.mark_upload(CAT, session)
    _, image, picture, status, top, tree, info = last(uploads.index_image(CAT, session, noop))
    # The whole picture by default: the map keeps cat.jpg's 451 x 300 aspect, long side capped at 768.
    assert isinstance(picture, np.ndarray) and picture.shape[2] == 3 and max(picture.shape[:2]) <= 768
    assert abs(picture.shape[1] / picture.shape[0] - 451 / 300) < 0.01, picture.shape
    assert "whole picture" in status and session.entry.index.crop.box == (0, 0, 451, 300)
    assert "cat.jpg" in status and "data-synset" in top and session.synset in info
    assert tree["selected"] == session.synset, "the top concept is revealed in the tree"


def test_each_selection_redraws_from_the_index(indexed):
    session, _, handlers = indexed
    pictures = [handlers.select_node(session, event(s))[1] for s in ("feline.n.01", "device.n.01")]
    assert not np.array_equal(*pictures), "two concepts, two maps"
    _, tree, picture, info, status = handlers.navigate(session, event("tiger.n.02"))
    assert tree["selected"] == "tiger.n.02" and "tiger" in info and "no new CLIP pass" in status
    with pytest.raises(gr.Error, match="did you mean"):
        handlers.select_node(session, event("tigre.n.02"))


def test_search_lists_hits_and_enter_goes_to_the_best(indexed):
    session, _, handlers = indexed
    assert 'data-synset="cat.n.01"' in handlers.search("cat", session)
    assert handlers.search_submit("feline", session)[1]["selected"] == "feline.n.01"
    with pytest.raises(gr.Error, match="dog.n.01"):
        handlers.search_submit("dgo.n.01", session)


def test_display_options_change_the_picture(indexed):
    session, _, handlers = indexed
    handlers.select_node(session, event("animal.n.01"))
    overlay = handlers.set_view(session, "Overlay", "jet", 0.5, 10, False, 0.5)[1]
    white = handlers.set_view(session, "White blend (paper)", "jet", 0.5, 10, True, 0.5)[1]
    assert overlay.shape == white.shape and not np.array_equal(overlay, white)
    with pytest.raises(gr.Error, match="colormap"):
        handlers.set_view(session, "Overlay", "rainbow-unicorn", 0.5, 10, False, 0.5)


def test_compare_holds_up_to_six_concepts(indexed):
    session, _, handlers = indexed
    handlers.select_node(session, event("feline.n.01"))
    _, control, grid = handlers.compare_children(session)
    assert sorted(control["value"]) == ["cat.n.01", "tiger.n.02"] and grid.ndim == 3
    _, control, _ = handlers.set_compare([f"gadget_{i:03d}.n.01" for i in range(9)], session)
    assert len(control["value"]) == 6
    assert handlers.compare_clear(session)[2] is None


def test_export_writes_png_npy_and_settings(indexed):
    session, _, handlers = indexed
    handlers.select_node(session, event("cat.n.01"))
    png, npy, meta = map(Path, handlers.export(session))
    assert Image.open(png).format == "PNG"
    raw = np.load(npy)
    assert raw.dtype == np.float32 and raw.shape == (300, 451), "the whole cat.jpg, at its own size"
    assert 0 <= raw.min() and raw.max() <= 1
    settings = json.loads(meta.read_text())
    assert settings["synset"] == "cat.n.01" and settings["model"] == "test-tiny/none"
    assert settings["grid_config"]["seed"] == 0 and settings["view"]["style"] == "overlay"
    assert settings["precision"] == "fp32", "auto on a CPU is fp32"


def test_export_records_the_precision_that_made_the_map(toy_backend, tmp_path):
    """int8 and fp32 share a model_id: only the precision tells their exports apart."""
    backend = Backend("test-tiny", "toy", device="cpu", precision="int8",
                      hierarchies={"toy": toy_backend.hierarchy("toy")})
    uploads, handlers, session = Uploads(backend), Handlers(backend), Session()
    uploads.mark_upload(CAT, session)
    last(uploads.index_image(CAT, session, noop))
    handlers.select_node(session, event("cat.n.01"))
    settings = json.loads(Path(handlers.export(session)[2]).read_text())
    assert settings["model"] == "test-tiny/none" and settings["precision"] == "int8"


def test_a_newer_upload_stops_the_running_index(toy_backend):
    uploads, session = Uploads(toy_backend), Session()
    session.latest_upload = "second.jpg"  # arrived while the first was queued or running
    assert last(uploads.index_image("first.jpg", session, noop))[1:] == (gr.skip(),) * 6
    image = Image.fromarray(np.full((64, 64, 3), 7, np.uint8))
    with pytest.raises(Superseded):
        list(uploads.stages(image, "first.jpg", session, noop, "first.jpg"))


def test_api_endpoints(toy_backend):
    api = Endpoints(toy_backend)
    assert api.search("fel", 5)[0]["synset"] == "feline.n.01"
    # The whole 451 x 300 picture, like the app: long side capped at 1.5 x 512 = 768, 300 * 768 / 451 = 510.9.
    assert api.explain(CAT, "feline", "white").shape == (511, 768, 3)
    assert api.explain(CAT, "feline", "white", "centre").shape == (512, 512, 3)
    top = api.top_concepts(CAT, 3)
    assert len(top) == 3 and {"synset", "score", "gloss"} <= set(top[0])
    with pytest.raises(gr.Error, match="did you mean"):
        api.explain(CAT, "felin.n.01")


# ---- phrases, methods, region, top concepts (issue 10) ------------------------------------------
def test_a_phrase_is_mapped_joins_compare_and_exports(indexed):
    session, _, handlers = indexed
    assert 'data-phrase="a red sports car"' in handlers.search("a red sports car", session), "offered"
    grid = handlers.select_node(session, event("cat.n.01"))[1]
    _, tree, picture, info, status = handlers.search_submit("a red sports car", session)  # no concept matches
    assert session.item == "\u201ca red sports car\u201d" and session.phrase == "a red sports car"
    assert "phrase map of the whole picture" in status and picture.shape == grid.shape
    assert not np.array_equal(picture, grid)
    assert info.count("data-synset=") == 6, "its nearest concepts of T, as links into the tree"
    other = handlers.navigate(session, gr.EventData(None, {"phrase": "a blue bicycle"}))[2]
    assert not np.array_equal(picture, other), "another phrase, another map"
    _, control, compare = handlers.compare_add(session)
    assert control["value"] == ["\u201ca blue bicycle\u201d"] and compare.ndim == 3
    with pytest.warns(UserWarning, match="dgo"):
        names = [*control["value"], "feline", "rust on a car", "dgo.n.01"]
        _, control, _ = handlers.set_compare(names, session)
    assert control["value"] == ["\u201ca blue bicycle\u201d", "feline.n.01", "\u201crust on a car\u201d"]
    png, npy, meta = map(Path, handlers.export(session))
    assert np.load(npy).shape == (300, 451) and json.loads(meta.read_text())["method"] == "phrase"
    handlers.select_node(session, event("cat.n.01"))
    assert session.phrase is None and session.item == "cat.n.01"


def test_stochastic_map_shows_progress_and_stops_when_asked(indexed, monkeypatch):
    session, _, handlers = indexed
    methods = Methods(handlers.b)
    handlers.select_node(session, event("feline.n.01"))
    _, _, status = methods.set_method("Stochastic (sequential, slower)", False, session)
    assert "stochastic map is on its way" in status
    _, caption, request = methods.extras(session)
    assert isinstance(request, int) and caption["label"].startswith("Grid map")
    handlers.set_view(session, "Heatmap", "jet", 0.5, 10, False, 0.5)
    assert methods.extras(session)[2] == gr.skip(), "a display change does not restart a pending job"
    seen, scored = [], []
    real = convis_sal.stochastic_map

    def recording(score_box, *args, **kwargs):  # the (box, score) pairs the app's run draws
        return real(lambda box: scored.append((box, score_box(box))) or scored[-1][1], *args, **kwargs)

    monkeypatch.setattr(convis_sal, "stochastic_map", recording)
    _, picture, status = methods.run_stochastic(session, lambda p, **kw: seen.append(p))
    assert seen[-1] == (600, 600) and len(seen) == 600, "one progress step per sequential forward"
    assert picture["label"] == "Stochastic map of the whole picture"
    assert "600 sequential CLIP forwards" in status
    entry = session.entry
    # Expected: the reference's accumulation written out here from the drawn boxes and scores
    # (A[box] *= 1 + 0.002 * score; A added into the map and reset every 100 draws; 300 draws of
    # 128 px, then 300 of 64 px; the map is the picture's part inside the 128 px border, min-max).
    h, w = entry.index.grid_shape
    acc, total = np.ones((h + 256, w + 256)), np.zeros((h + 256, w + 256))
    for i, ((x0, y0, x1, y1), score) in enumerate(scored):
        assert x1 - x0 == y1 - y0 == (128 if i < 300 else 64) and -1 <= score <= 1
        acc[y0:y1, x0:x1] *= 1 + 0.002 * score
        if i % 100 == 99:
            total, acc = total + acc, np.ones_like(acc)
    inner = total[128:128 + h, 128:128 + w]
    expected = (inner - inner.min()) / (inner.max() - inner.min())
    assert len(scored) == 600
    np.testing.assert_allclose(handlers.b.kept_map(entry.key, "feline.n.01"), expected, atol=1e-5)
    # The scores too, for a few draws, by hand from the window's embedding: the best 0-based rank r
    # of feline's subtree among all of T, then the reference's 2 exp(-5 r / 91) - 1 (-1 beyond 91).
    from convis.windows import crop_windows  # the crop itself is PIL's, checked in test_faithful

    engine = handlers.b.engine(entry.key[1], entry.key[2])
    h = entry.index.hierarchy
    subtree = [h.ids.index(n) for n in ("feline.n.01", "cat.n.01", "tiger.n.02")]  # the toy DAG, by hand
    bank = engine.bank.embeddings.float().numpy()
    for box, score in scored[::150]:
        crop = crop_windows(entry.index.padded, np.asarray([box]), engine.spec.size, engine.spec.mean,
                            engine.spec.std)
        emb = engine.clip.encode_image(crop).numpy()[0]
        cos = bank @ (emb / np.linalg.norm(emb))
        order = sorted(range(len(cos)), key=lambda j: (-cos[j], j))  # ties keep T's order
        r = min(order.index(j) for j in subtree)
        assert score == pytest.approx(2 * np.exp(-5 * r / 91) - 1 if r < 91 else -1.0, abs=1e-6), (box, r)
    assert "stochastic map of the whole picture" in handlers.select_node(session, event("feline.n.01"))[3]
    # Stop: the running job ends at its next forward and keeps nothing.
    handlers.select_node(session, event("cat.n.01"))
    assert isinstance(methods.extras(session)[2], int)
    calls = []

    said = []

    def stop_at_50(p, **kw):
        calls.append(p)
        if len(calls) == 50:
            said.extend(methods.stop(session))

    assert methods.run_stochastic(session, stop_at_50)[1:] == (gr.skip(), gr.skip())
    assert len(calls) == 50 and handlers.b.kept_map(entry.key, "cat.n.01") is None and session.pending is None
    assert said[0].startswith("Stopped") and said[1]["label"].endswith("the stochastic map was stopped")
    assert methods.stop(session)[0].startswith("Nothing to stop")


def test_raw_cosine_map_beside_the_grid_map(indexed):
    session, _, handlers = indexed
    methods = Methods(handlers.b)
    grid = handlers.select_node(session, event("feline.n.01"))[1]
    methods.set_method("Grid (ConVis)", True, session)
    raw, caption, request = methods.extras(session)
    assert raw["visible"] and raw["label"] == "Raw cosine (ablation) of the whole picture"
    assert raw["value"].shape == grid.shape and not np.array_equal(raw["value"], grid)
    assert caption["label"] == "Grid map (ConVis) of the whole picture" and request == gr.skip()
    methods.set_method("Grid (ConVis)", False, session)
    assert methods.extras(session)[0]["visible"] is False


def test_centre_square_is_one_click_away(indexed):
    session, _, handlers = indexed
    methods = Methods(handlers.b)
    whole = session.current
    _, picture, status, *_ = last(methods.set_region("Centre square (the paper)", session, noop))
    assert session.entry.key[4] is False and "centre square" in status
    assert picture.shape == (512, 512, 3) and session.entry.index.crop.box == (75, 0, 375, 300)
    _, picture, status, *_ = last(methods.set_region("Whole picture", session, noop))
    assert session.current == whole and picture.shape[1] > picture.shape[0]


def test_what_clip_sees_lists_each_chain_once(indexed):
    session, uploads, _ = indexed
    top = uploads.after_index(session, session.entry)[2]
    first = [item.split('data-synset="')[1].split('"')[0] for item in top.split("<li>")[1:]]
    # In the toy set entity -> physical_entity -> object is a chain of only children: never listed alone.
    assert not {"entity.n.01", "physical_entity.n.01"} & set(first) and len(first) == len(set(first))
    if "object.n.01" in first:
        assert 'cvl-context">in <button' in top


@pytest.mark.wordnet
def test_a_wordnet_name_outside_t_points_to_its_hypernym_and_the_phrase(indexed):
    session, _, handlers = indexed
    html = handlers.search("tabby.n.01", session)
    assert "is in WordNet but not in toy" in html and 'data-synset="cat.n.01"' in html
    assert 'data-phrase="tabby"' in html, "and offers the word's free-text map"
    with pytest.raises(gr.Error, match="nearest hypernym there is 'cat.n.01'"):
        handlers.search_submit("tabby.n.01", session)


def test_every_model_call_goes_through_the_gpu_decorator(toy_backend):
    """On ZeroGPU the model is usable only inside `spaces.GPU`: phrases and stochastic maps too."""
    wrapped = []

    def gpu(fn):
        def run(*args, **kwargs):
            wrapped.append(getattr(args[0], "__name__", fn.__name__))
            return fn(*args, **kwargs)
        return run

    backend = Backend("test-tiny", "toy", device="cpu", gpu=gpu,
                      hierarchies={"toy": toy_backend.hierarchy("toy")})
    handlers, methods, session = Handlers(backend), Methods(backend), Session()
    methods.mark_upload(CAT, session)
    last(methods.index_image(CAT, session, noop))
    handlers.search_submit("a red sports car", session)
    handlers.select_node(session, event("cat.n.01"))
    methods.set_method("Stochastic (sequential, slower)", True, session)
    methods.extras(session)
    methods.run_stochastic(session, noop)
    needed = {"_run_index", "nearest_concepts", "text_saliency", "raw_saliency", "stochastic"}
    assert needed <= set(wrapped), wrapped


def test_explain_text_endpoint(toy_backend):
    api = Endpoints(toy_backend)
    car = api.explain_text(CAT, "a red sports car", "overlay")
    assert car.shape == (511, 768, 3), "the API maps the whole picture by default, like the app"
    assert not np.array_equal(car, api.explain_text(CAT, "a blue bicycle", "overlay"))
    with pytest.raises(gr.Error, match="empty"):
        api.explain_text(CAT, "   ", "overlay")


def test_api_maps_are_the_maps_the_app_shows(indexed):
    """Same picture, item, region and map: the API returns the app's picture, pixel for pixel."""
    session, _, handlers = indexed
    methods, api = Methods(handlers.b), Endpoints(handlers.b)
    grid = handlers.select_node(session, event("feline.n.01"))[1]
    assert np.array_equal(api.explain(CAT, "feline.n.01"), grid), "defaults: whole picture, grid"
    methods.set_method("Grid (ConVis)", True, session)
    raw = methods.extras(session)[0]["value"]
    assert np.array_equal(api.explain(CAT, "feline.n.01", "overlay", "whole", "raw"), raw)
    *_, last = methods.set_region("Centre square (the paper)", session, noop)  # staged: the last update
    centre = last[1]
    assert np.array_equal(api.explain(CAT, "feline.n.01", region="centre"), centre)
    phrase = handlers.search_submit("a red sports car", session)[2]
    assert np.array_equal(api.explain_text(CAT, "a red sports car", region="centre"), phrase)
    raw_phrase = methods.extras(session)[0]  # the raw map of a phrase: its cosine per window
    assert raw_phrase["label"] == "Raw cosine (ablation) of the centre square (the paper)"
    assert not np.array_equal(raw_phrase["value"], phrase)
    assert np.array_equal(api.explain_text(CAT, "a red sports car", "overlay", "centre", "raw"), raw_phrase["value"])
    top = api.top_concepts(CAT, 4, "centre")
    assert [t["synset"] for t in top] == [n for n, _ in session.entry.index.top_concepts(4)]


def test_api_stochastic_map_is_the_apps(indexed, monkeypatch):
    from convis.app import maps
    from convis.config import StochasticConfig

    monkeypatch.setattr(maps, "STOCHASTIC", StochasticConfig(iterations=40, reset_every=20))  # keep it short
    session, _, handlers = indexed
    methods, api = Methods(handlers.b), Endpoints(handlers.b)
    handlers.select_node(session, event("cat.n.01"))
    methods.set_method("Stochastic (sequential, slower)", False, session)
    assert isinstance(methods.extras(session)[2], int), "the app asks for the stochastic map"
    _, picture, status = methods.run_stochastic(session, noop)
    assert "40 sequential CLIP forwards" in status
    assert np.array_equal(api.explain(CAT, "cat.n.01", method="stochastic"), picture["value"])
    with pytest.raises(gr.Error, match="stochastic map is for concepts of T"):
        api.explain_text(CAT, "a cat", method="stochastic")


@pytest.mark.parametrize("kwargs, message", [
    ({"region": "center"}, "unknown region 'center'; use one of whole, centre"),
    ({"method": "saliency"}, "unknown method 'saliency'; use one of grid, raw, stochastic, gamma"),
    ({"region": "w" * 1_000_000}, "region is 1,000,000 characters long; the limit is 40"),
    ({"method": None}, "unknown method ''"),
])
def test_api_options_are_checked_before_any_work(toy_backend, kwargs, message):
    api = Endpoints(toy_backend)
    with pytest.raises(gr.Error, match=message):
        api.explain("never-read.jpg", "cat.n.01", **kwargs)  # no file: the options fail first
    if "region" in kwargs:
        with pytest.raises(gr.Error, match=message):
            api.top_concepts("never-read.jpg", 3, kwargs["region"])


# ---- links ---------------------------------------------------------------------------------------
class Request:
    """Stands in for gr.Request: the page's query parameters."""

    def __init__(self, **query: str) -> None:
        self.query_params = query


def test_a_link_reopens_the_view_when_the_server_holds_the_picture(indexed):
    from urllib.parse import parse_qsl

    session, _, handlers = indexed
    links = Links(handlers.b)
    picture = handlers.select_node(session, event("feline.n.01"))[1]
    params = dict(parse_qsl(links.query(session)[1:]))
    assert params == {"image": session.entry.key[0], "concept": "feline.n.01", "region": "whole"}
    assert len(params["image"]) == 64, "the SHA-256 of the picture's pixels"
    fresh = Session()
    _, model, vocab, region, tree, shown, info, top, status = links.restore(fresh, Request(**params))
    assert fresh.current == session.current and fresh.synset == "feline.n.01"
    assert np.array_equal(shown, picture), "the same view"
    assert (model, vocab, region) == (handlers.b.default_model, "toy", "Whole picture")
    assert tree["selected"] == "feline.n.01" and "<code>feline.n.01</code>" in info
    assert status.startswith("Opened from a link: **cat.jpg** indexed from cache")
    handlers.search_submit("a red sports car", session)  # a phrase's view links too
    params = dict(parse_qsl(links.query(session)[1:]))
    assert params["phrase"] == "a red sports car" and "concept" not in params
    again = Session()
    links.restore(again, Request(**params))
    assert again.item == session.item and again.current == session.current


def test_the_link_lookup_is_injected(indexed):
    session, _, handlers = indexed
    asked = []
    links = Links(handlers.b, find=lambda *key: asked.append(key) or session.entry)  # e.g. a dataset store
    fresh = Session()
    status = links.restore(fresh, Request(image="ab" * 32, concept="cat.n.01", region="centre"))[-1]
    assert asked == [("ab" * 32, handlers.b.default_model, "toy", False)]
    assert status.startswith("Opened from a link") and fresh.current == session.current


def test_a_link_to_a_picture_the_server_lost_selects_its_concept_and_asks_for_it(toy_backend):
    links, uploads, session = Links(toy_backend), Uploads(toy_backend), Session()
    out = links.restore(session, Request(image="0" * 64, concept="cat.n.01", region="centre"))
    _, model, _, region, tree, picture, _, _, status = out
    assert picture == gr.skip() and model == gr.skip() and region == "Centre square (the paper)"
    assert "Upload the picture again to see it" in status and tree["selected"] == "cat.n.01"
    uploads.mark_upload(CAT, session)
    last(uploads.index_image(CAT, session, noop))
    assert session.synset == "cat.n.01" and session.entry.key[4] is False, "the upload shows the link's view"


@pytest.mark.parametrize("query, message", [
    ({"image": "zz"}, "64-digit SHA-256"),
    ({"image": "a" * 1_000_000}, "1,000,000 characters long; the limit is 64"),
    ({"concept": "x" * 1_000_000}, "1,000,000 characters long; the limit is 200"),
    ({"concept": "cat.n.01", "region": "left"}, "region must be one of whole, centre"),
    ({"phrase": "  "}, "the phrase is empty"),
])
def test_a_bad_link_says_why_and_changes_nothing(toy_backend, query, message):
    session = Session()
    out = Links(toy_backend).restore(session, Request(**query))
    assert out[1:-1] == (gr.skip(),) * 7 and message in out[-1] and "upload a picture to start" in out[-1]
    assert session == Session(), "the session is untouched"


def test_a_link_to_an_unknown_concept_says_so(toy_backend):
    session = Session()
    status = Links(toy_backend).restore(session, Request(image="0" * 64, concept="dgo.n.01"))[-1]
    assert "not in this concept set" in status and "did you mean 'dog.n.01'" in status
    assert Links(toy_backend).restore(Session(), Request()) == (Session(), *(gr.skip(),) * 8), "no link"


# ---- bad uploads -----------------------------------------------------------------------------------
def _png_header(width: int, height: int) -> bytes:
    """A PNG that claims a size but holds no pixels: a huge image without the memory."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")


def _make(kind: str, folder: Path) -> Path:
    rng = np.random.default_rng(0)
    rgb = Image.fromarray(rng.integers(0, 255, (80, 96, 3), dtype=np.uint8))
    path = folder / {"text": "notes.jpg", "truncated": "cut.jpg", "tiny": "dot.png", "huge": "huge.png",
                     "cmyk": "cmyk.jpg", "16bit": "deep.png", "gif": "anim.gif", "rgba": "alpha.png"}[kind]
    if kind == "text":
        path.write_text("this is not a picture")
    elif kind == "truncated":
        path.write_bytes(Path(CAT).read_bytes()[:4000])
    elif kind == "tiny":
        Image.new("RGB", (1, 1)).save(path)
    elif kind == "huge":
        path.write_bytes(_png_header(30000, 20000))
    elif kind == "cmyk":
        rgb.convert("CMYK").save(path)
    elif kind == "16bit":
        Image.fromarray((rng.integers(0, 65535, (80, 96))).astype(np.uint16)).save(path)
    elif kind == "gif":
        frames = [rgb, rgb.transpose(Image.Transpose.FLIP_LEFT_RIGHT)]
        frames[0].save(path, save_all=True, append_images=frames[1:], duration=100, loop=0)
    else:
        rgb.convert("RGBA").save(path)
    return path


@pytest.mark.parametrize(("kind", "message"), [
    ("text", "cannot identify image file"), ("truncated", "truncated or corrupt"),
    ("tiny", "at least 16x16"), ("huge", "pixels; downscale it"),
])
def test_bad_uploads_explain_and_keep_the_session(kind, message, indexed, tmp_path):
    session, uploads, handlers = indexed
    before, good = session.current, session.image_path
    path = str(_make(kind, tmp_path))
    uploads.mark_upload(path, session)
    with pytest.warns(UserWarning, match="Could not use"):
        _, image, _, status, *_ = last(uploads.index_image(path, session, noop))
    assert message in status and Path(path).name in status and str(tmp_path) not in status
    assert image == good and session.current == before, "the previous image stays usable"
    assert isinstance(handlers.select_node(session, event("cat.n.01"))[1], np.ndarray)


@pytest.mark.parametrize("kind", ["cmyk", "16bit", "gif", "rgba"])
def test_odd_but_valid_uploads_are_indexed(kind, toy_backend, tmp_path):
    uploads, session = Uploads(toy_backend), Session()
    path = str(_make(kind, tmp_path))
    uploads.mark_upload(path, session)
    status = last(uploads.index_image(path, session, noop))[3]
    assert "indexed" in status and session.entry is not None and session.entry.display.shape[-1] == 3


@pytest.mark.wordnet
@pytest.mark.skipif(not (Path(__import__("convis.eval").eval.ASSETS) / "synthetic-shapes.safetensors").is_file(),
                    reason="no synthetic-shapes weights")
def test_the_shipped_synthetic_model_is_an_offline_demo():
    """`python app.py --model synthetic-shapes --vocabulary synthetic-shapes`: a trained model that
    needs no download, offered under its bare name (no server path in the UI), whose map finds
    the figure asked for."""
    from convis.eval.shapes import render_scene

    backend = Backend("synthetic-shapes", "synthetic-shapes", device="cpu")
    assert backend.default_model == "synthetic-shapes"
    assert all("/" not in key for _, key in backend.model_choices() if key.startswith("synthetic"))
    scene = render_scene(np.random.default_rng(3), ["circle.n.01", "triangle.n.01"])
    entry = backend.index(scene.pil())
    assert entry.index.crop.box == (0, 0, 224, 224)
    for synset, (x0, y0, x1, y1) in zip(scene.synsets, scene.boxes):
        m = entry.index.saliency(synset, size=0)  # (224, 224)
        y, x = np.unravel_index(np.argmax(m), m.shape)
        assert x0 - 15 <= x < x1 + 15 and y0 - 15 <= y < y1 + 15, synset


def test_api_gamma_map_is_the_reference_score_on_the_same_windows(indexed):
    """method="gamma": the map of a fresh index scored with gamma, drawn as the app draws a map."""
    from convis.app.views import render_view
    from convis.config import GridConfig
    from convis.image import load_image

    session, _, handlers = indexed
    api = Endpoints(handlers.b)
    engine = handlers.b.engine(None, None)
    fresh = engine.index(load_image(CAT), GridConfig(whole=True, score="gamma"))  # indexed anew, scored by gamma
    entry = session.entry
    concept = "jack-o'-lantern.n.01"  # on test-tiny its best ranks spread over 8..39: gamma reshapes them
    want, _ = render_view(entry, concept, View(), fresh.saliency(concept, size=entry.display.shape[:2]))
    got = api.explain(CAT, concept, "overlay", "whole", "gamma")
    assert np.array_equal(got, want)
    assert not np.array_equal(got, api.explain(CAT, concept)), "gamma is not the rank map"
    with pytest.raises(gr.Error, match="concepts of T"):
        api.explain_text(CAT, "a red sports car", "overlay", "whole", "gamma")
