"""The Dataset tab and `/dataset_search` over a real store on disk (synthetic-shapes, offline).

The store is written by the local engine from planted scenes (two sub-folders, a duplicate, a
broken file); the app is launched over it and driven through `gradio_client`, its handlers, and
Chromium: pick a concept, see the gallery, open a hit in Explore, copy the link, open it in a new
page after the server's cache dropped the picture (the store answers the link).
"""

from __future__ import annotations

import builtins
import hashlib
import io
import os
import shutil

import gradio as gr
import numpy as np
import pytest
from PIL import Image

import convis.eval  # noqa: F401  (registers the synthetic-shapes model and vocabulary)
from conftest import serve
from convis.boxes import map_to_box
from convis.config import GridConfig
from convis.dataset.local import index_dataset
from convis.dataset.manifest import Item
from convis.dataset.worker import IndexWorker
from convis.eval.shapes import benchmark_scenes
from convis.image import load_image
from convis.store import Store, StoreSpec

gradio_client = pytest.importorskip("gradio_client")
MODEL = "synthetic-shapes"
CONCEPT = "circle.n.01"


def quiet(*_args, **_kwargs) -> None:
    """Stands in for gr.Progress outside a request."""


def last(stream):
    """The final output of a streaming handler."""
    return list(stream)[-1]


def make_store(engine, root, n: int = 8, seed: int = 5):
    """n planted scenes in data/a and data/b, a byte-identical copy and a broken file; returns
    (store, {sha256 of the file: (relative path, scene)})."""
    data, files = root / "data", {}
    for i, scene in enumerate(benchmark_scenes(n, seed=seed)):
        path = data / ("a" if i % 2 else "b") / f"scene{i}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        scene.pil().save(path)
        files[hashlib.sha256(path.read_bytes()).hexdigest()] = (f"{path.parent.name}/{path.name}", scene)
    shutil.copy(data / "b" / "scene0.png", data / "a" / "copy.png")  # listed first: the name kept
    (data / "a" / "broken.png").write_bytes(b"\x89PNG not really")
    config = GridConfig(whole=True)
    spec = StoreSpec.make(engine.clip.model_id, engine.clip.precision, config, engine.bank.embeddings.shape[1],
                          model=MODEL)
    store = Store.create(root / "store", spec)
    items = [Item(str(p)) for p in sorted(data.rglob("*.png"))]
    with store.writer():
        summary = index_dataset(items, store, IndexWorker(engine, config, 256, "top1"), "top1")
    assert summary.indexed == n and summary.duplicates == 1 and len(summary.failed) == 1, summary.describe()
    return Store.open(root / "store"), files


@pytest.fixture(scope="module")
def shapes_backend():
    from convis.app import Backend

    backend = Backend(MODEL, MODEL, device="cpu")
    assert backend.preload(), backend.startup_error
    return backend


@pytest.fixture(scope="module")
def stored(shapes_backend, tmp_path_factory):
    return make_store(shapes_backend.engine(None, None), tmp_path_factory.mktemp("dataset"))


@pytest.fixture(scope="module")
def server(shapes_backend, stored):
    with serve(shapes_backend, store=stored[0]) as url:
        yield url


@pytest.fixture(scope="module")
def client(server):
    return gradio_client.Client(server, verbose=False)


# ---- /dataset_search ---------------------------------------------------------------------------
def test_dataset_search_is_published_with_its_parameters(client):
    api = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    assert set(api) == {"/search", "/explain", "/explain_text", "/top_concepts", "/dataset_search"}
    assert [p["parameter_name"] for p in api["/dataset_search"]["parameters"]] == ["concept", "text", "k"]


def test_dataset_search_ranks_every_stored_image_once_with_relative_paths(client, stored, shapes_backend):
    store, files = stored
    hits = client.predict(CONCEPT, "", 100, api_name="/dataset_search")
    assert {h["sha256"] for h in hits} == set(files), "each distinct readable file once (the copy is a duplicate)"
    assert len(hits) == len(files) == 8
    names = {sha: {name} for sha, (name, _) in files.items()}
    names[next(iter(files))].add("a/copy.png")  # scene0's bytes under two names: either may be kept
    assert all(h["file"] in names[h["sha256"]] for h in hits), "paths relative to the dataset's folder"
    scores = [h["score"] for h in hits]
    assert scores == sorted(scores, reverse=True), "best first"
    top = hits[0]  # its box, by the direct path: a fresh index of the file, the map, its largest component
    path = store.row(top["sha256"]).path
    index = shapes_backend.engine(None, None).index(load_image(path), GridConfig(whole=True))
    want = map_to_box(index.saliency(CONCEPT), 0.5)
    x0, y0 = index.crop.x0, index.crop.y0
    want = (want[0] + x0, want[1] + y0, want[2] + x0, want[3] + y0)
    got = top["box"]
    inter = max(0, min(got[2], want[2]) - max(got[0], want[0])) * max(0, min(got[3], want[3]) - max(got[1], want[1]))
    union = (got[2] - got[0]) * (got[3] - got[1]) + (want[2] - want[0]) * (want[3] - want[1]) - inter
    assert inter / union >= 0.8, (got, want)  # float16 windows may move a box edge by a few pixels
    w, h = Image.open(path).size
    assert 0 <= got[0] < got[2] <= w and 0 <= got[1] < got[3] <= h


def test_dataset_search_finds_planted_figures_better_than_chance(client, stored):
    _, files = stored
    right = total = 0
    shares = []  # per kind: the share of images holding it (what a random top 2 would hit)
    for kind in sorted({k for _, s in files.values() for k in s.synsets}):
        holders = {sha for sha, (_, s) in files.items() if kind in s.synsets}
        if not 2 <= len(holders) <= 6:
            continue
        hits = client.predict(kind, "", 2, api_name="/dataset_search")
        right += sum(h["sha256"] in holders for h in hits)
        total += len(hits)
        shares.append(len(holders) / len(files))
    assert total and right / total >= float(np.mean(shares)) + 0.15, (right, total, shares)


def test_dataset_search_by_phrase(client, stored):
    hits = client.predict("", "a circle", 3, api_name="/dataset_search")
    assert len(hits) == 3 and {h["sha256"] for h in hits} <= set(stored[1])
    assert [h["score"] for h in hits] == sorted((h["score"] for h in hits), reverse=True)


@pytest.mark.parametrize("concept, text, k, message", [
    ("", "", 5, "give a concept or a text"),
    (CONCEPT, "a circle", 5, "give a concept or a text"),
    (CONCEPT, "", 0, "from 1 to 100"),
    (CONCEPT, "", 101, "from 1 to 100"),
    ("x" * 1_000_000, "", 5, "the limit is 200"),
    ("", "y" * 1_000_000, 5, "the limit is 200"),
    ("no_such_thing.n.01", "", 5, "no_such_thing"),
])
def test_dataset_search_refuses_bad_requests_with_a_message(client, concept, text, k, message):
    with pytest.raises(Exception, match=message):
        client.predict(concept, text, k, api_name="/dataset_search")


# ---- the tab's handlers -------------------------------------------------------------------------
def test_show_then_open_a_hit_draws_it_from_the_store(shapes_backend, stored, monkeypatch):
    from convis.app.dataset import DatasetView
    from convis.app.session import Session

    store, files = stored
    view, session = DatasetView(shapes_backend, store), Session()
    assert "Pick a concept" in last(view.show(5, session, quiet))[2]
    session.synset = CONCEPT
    steps = list(view.show(8, session, quiet))  # the gallery fills 4 hits at a time (STREAM)
    assert [len(g) for _, g, _, _ in steps] == [4, 8] and "so far" in steps[0][2]
    assert [c for _, c in steps[0][1]] == [c for _, c in steps[1][1]][:4], "the first hits stay as they were"
    _, gallery, status, switch = last(view.show(5, session, quiet))
    assert len(gallery) == 5 == len(session.hits) and switch["visible"] is False
    names = [store.row(s).path.split("data" + os.sep, 1)[1] for s in session.hits]
    assert [c.split(" ")[1] for _, c in gallery] == names, "captions name the files, relative to the dataset"
    for picture, _ in gallery:
        assert picture.dtype == np.uint8 and min(picture.shape[:2]) == 224 and picture.shape[2] == 3
    forwards, engine = [], shapes_backend.engine(None, None)
    original = engine.clip.model.encode_image
    monkeypatch.setattr(engine.clip.model, "encode_image", lambda x, *a, **k: forwards.append(len(x)) or original(x, *a, **k))
    target, opened, real_open = os.path.abspath(store.row(session.hits[1]).path), [], builtins.open

    def counting_open(file, *args, **kwargs):  # PIL opens with builtins.open, Path.read_bytes with io.open
        if isinstance(file, (str, os.PathLike)) and os.path.abspath(file) == target:
            opened.append(file)
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", counting_open)
    monkeypatch.setattr(io, "open", counting_open)
    out = view.open(session, gr.SelectData(None, {"index": 1, "value": None, "selected": True}), quiet)
    monkeypatch.undo()
    assert not forwards, "opening a hit runs no image forward: its windows come from the store"
    assert len(opened) == 1, f"the hit's file is read once (checked, indexed and shown), not {len(opened)} times"
    assert "opened from the dataset store" in out[4] and out[2] == "Whole picture"
    entry = session.entry
    assert entry.key[0] == session.hits[1] and entry.name == names[1]
    direct = engine.index(load_image(store.row(session.hits[1]).path), GridConfig(whole=True))
    got, want = entry.index.saliency(CONCEPT), direct.saliency(CONCEPT)
    assert np.corrcoef(got.ravel(), want.ravel())[0, 1] >= 0.999, "the map a fresh upload would show"


def test_another_model_is_named_and_switch_is_offered(toy_backend, stored):
    from convis.app.dataset import DatasetView
    from convis.app.session import Session

    view, session = DatasetView(toy_backend, stored[0]), Session(synset="cat.n.01")
    _, gallery, status, switch = last(view.show(5, session, quiet))
    assert gallery == [] and switch["visible"] is True
    assert "indexed with `synthetic-shapes`" in status and "test-tiny" in status
    assert view.target() == (MODEL, MODEL)


def test_a_hit_whose_file_is_gone_is_refused_and_the_session_kept(shapes_backend, tmp_path):
    from convis.app.dataset import DatasetView
    from convis.app.session import Session

    store, files = make_store(shapes_backend.engine(None, None), tmp_path, n=2, seed=9)
    view, session = DatasetView(shapes_backend, store), Session(synset=CONCEPT)
    _, gallery, _, _ = last(view.show(2, session, quiet))
    gone = store.row(session.hits[0]).path
    os.remove(gone)
    _, gallery, _, _ = last(view.show(2, session, quiet))  # the map alone, on white, from the store
    assert len(gallery) == 2 and (gallery[0][0] > 0).any()
    out = view.open(session, gr.SelectData(None, {"index": 0, "value": None, "selected": True}), quiet)
    assert "gone or changed" in out[4] and session.entry is None
    assert str(tmp_path) not in out[4], "no server path in the message"


# ---- Chromium: the whole flow --------------------------------------------------------------------
@pytest.mark.browser
def test_browser_pick_a_concept_open_a_hit_and_share_its_link(server, stored, shapes_backend, client):
    from urllib.parse import parse_qs, urlparse

    from _browser import ARGS, ARTIFACTS, CHROMIUM, map_src, sync_api

    if not os.path.exists(CHROMIUM):
        pytest.skip(f"needs Debian chromium at {CHROMIUM}")
    top = client.predict(CONCEPT, "", 1, api_name="/dataset_search")[0]
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        context = browser.new_context(viewport={"width": 1366, "height": 900})
        page = context.new_page()
        page.set_default_timeout(30_000)
        page.goto(server)
        page.wait_for_selector("#cv-tree li[role=treeitem]")
        page.get_by_role("tab", name="Dataset").click()
        page.wait_for_function("() => document.querySelector('#cv-ds-status').innerText.includes('Pick a concept')")
        page.locator("#cv-search input").fill(CONCEPT)
        page.locator("#cv-search input").press("Enter")  # the tree selects it; the open gallery follows
        page.wait_for_function("() => document.querySelector('#cv-ds-status').innerText.includes("
                               "'The 8 images of 8 that show')")  # the gallery filled 4 at a time
        assert page.locator("#cv-ds-gallery img").count() == 8
        page.screenshot(path=str(ARTIFACTS / "browser-dataset-1-gallery.png"), full_page=True)

        page.locator("#cv-ds-gallery img").first.click()  # the best hit, opened in Explore
        page.wait_for_function("() => document.querySelector('#cv-status').innerText.includes("
                               "'opened from the dataset store')")
        assert page.get_by_role("tab", name="Explore").get_attribute("aria-selected") == "true"
        assert top["file"] in page.locator("#cv-status").inner_text()
        page.wait_for_function("() => { const i = document.querySelector('#cv-map img'); return i && i.complete }")
        src = map_src(page)
        page.locator("#cv-copy-link").click()
        page.wait_for_function("() => document.querySelector('#cv-link textarea, #cv-link input').value"
                               ".startsWith('http')")
        link = page.locator("#cv-link textarea, #cv-link input").first.input_value()
        query = parse_qs(urlparse(link).query)
        assert query["image"] == [top["sha256"]] and query["concept"] == [CONCEPT], link
        page.screenshot(path=str(ARTIFACTS / "browser-dataset-2-opened.png"), full_page=True)

        shapes_backend._memory.clear()  # the server forgets every index: the store must answer the link
        other = context.new_page()
        other.set_default_timeout(30_000)
        other.goto(link)
        other.wait_for_function("() => { const e = document.querySelector('#cv-status');"
                                " return e && e.innerText.includes('Opened from a link') }")
        other.wait_for_function("s => { const i = document.querySelector('#cv-map img');"
                                " return i && i.complete && i.getAttribute('src') === s }", arg=src)
        assert other.locator(".toast-body.error").count() == 0
        assert "indexed from the dataset store" in other.locator("#cv-status").inner_text(), "it says who answered"
        other.screenshot(path=str(ARTIFACTS / "browser-dataset-3-link.png"), full_page=True)
        browser.close()


def test_dataset_search_is_an_mcp_tool_with_the_api_answer(shapes_backend, stored, client):
    """With --mcp and a store, agents get /dataset_search as a tool; its answer is the API's."""
    import ast
    import asyncio

    mcp = pytest.importorskip("mcp", reason="needs the mcp package (requirements-dev.txt)")
    httpx = pytest.importorskip("httpx")
    from mcp.client.streamable_http import streamable_http_client

    async def ask(url: str):
        async with httpx.AsyncClient(timeout=httpx.Timeout(60, read=120), trust_env=False) as http:
            async with streamable_http_client(f"{url}/gradio_api/mcp/", http_client=http) as (read, write, _):
                async with mcp.ClientSession(read, write) as s:
                    await s.initialize()
                    tools = {t.name for t in (await s.list_tools()).tools}
                    return tools, await s.call_tool("dataset_search", {"concept": CONCEPT, "k": 5})

    with serve(shapes_backend, store=stored[0], mcp=True) as url:
        tools, result = asyncio.run(ask(url))
    assert "dataset_search" in tools and not result.isError
    answer = ast.literal_eval("".join(c.text for c in result.content if c.type == "text"))  # Gradio sends the repr
    assert answer == client.predict(CONCEPT, "", 5, api_name="/dataset_search")
