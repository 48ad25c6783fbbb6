"""The launched app driven through its named API endpoints with `gradio_client` (test-tiny, offline)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytestmark = pytest.mark.wordnet  # the app_server fixture serves the real "physical" vocabulary

gradio_client = pytest.importorskip("gradio_client")
CAT = str(Path(__file__).resolve().parents[1] / "assets" / "examples" / "cat.jpg")


def whole_shape(path: str, short: int = 512) -> tuple[int, int, int]:
    """The whole picture's view, by hand: short side 512, long side at most 768 (1.5 times)."""
    w, h = Image.open(path).size  # cat.jpg: 451 x 300 -> scale min(512/300, 768/451) -> 511 x 768
    scale = min(short / min(h, w), 1.5 * short / max(h, w))
    return round(h * scale), round(w * scale), 3


@pytest.fixture(scope="module")
def client(app_server):
    return gradio_client.Client(app_server, verbose=False)


def test_named_endpoints_are_published(client):
    api = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    assert {"/search", "/explain", "/explain_text", "/top_concepts"} <= set(api)
    assert set(api) == {"/search", "/explain", "/explain_text", "/top_concepts"}, "UI events are private"
    names = {k: [p["parameter_name"] for p in v["parameters"]] for k, v in api.items()}
    assert names["/explain"] == ["image", "synset", "style", "region", "method"]
    assert names["/explain_text"] == ["image", "text", "style", "region", "method"]
    assert names["/top_concepts"] == ["image", "k", "region"]
    defaults = {p["parameter_name"]: p.get("parameter_default") for p in api["/explain"]["parameters"]}
    assert defaults["region"] == "whole" and defaults["method"] == "grid", "the app's defaults"


def test_search(client):
    hits = client.predict("dog", 5, api_name="/search")
    assert hits[0]["synset"] == "dog.n.01" and hits[0]["offset"] == "n02084071"
    assert hits[0]["path"][0] == "entity.n.01" and len(hits) <= 5
    assert client.predict("n02084071", 1, api_name="/search")[0]["synset"] == "dog.n.01"


def test_explain_returns_a_map_picture(client):
    path = client.predict(gradio_client.handle_file(CAT), "animal.n.01", "overlay", api_name="/explain")
    picture = np.asarray(Image.open(path))
    assert picture.shape == whole_shape(CAT) == (511, 768, 3), "the whole picture by default, like the app"
    centre = client.predict(gradio_client.handle_file(CAT), "animal.n.01", "overlay", "centre", api_name="/explain")
    assert np.asarray(Image.open(centre)).shape == (512, 512, 3), "the paper's centre square on request"
    other = np.asarray(Image.open(client.predict(gradio_client.handle_file(CAT), "vehicle.n.01", "overlay",
                                                 api_name="/explain")))
    assert not np.array_equal(picture, other), "different concepts give different maps"


def test_explain_text_maps_a_phrase(client):
    path = client.predict(gradio_client.handle_file(CAT), "a red sports car", "overlay",
                          api_name="/explain_text")
    car = np.asarray(Image.open(path))
    assert car.shape == whole_shape(CAT)
    bike = np.asarray(Image.open(client.predict(gradio_client.handle_file(CAT), "a blue bicycle", "overlay",
                                                api_name="/explain_text")))
    assert not np.array_equal(car, bike), "different phrases give different maps"
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match="phrase is empty"):
        client.predict(gradio_client.handle_file(CAT), " ", "overlay", api_name="/explain_text")


@pytest.mark.parametrize("region, shape", [("whole", (511, 768, 3)), ("centre", (512, 512, 3))])
def test_explain_by_region_and_method(client, monkeypatch, region, shape):
    from convis.app import maps
    from convis.config import StochasticConfig

    # The app_server runs in this process: a short stochastic run keeps the test fast.
    monkeypatch.setattr(maps, "STOCHASTIC", StochasticConfig(iterations=30, reset_every=10))
    cat = gradio_client.handle_file(CAT)
    pictures = {m: np.asarray(Image.open(client.predict(cat, "animal.n.01", "map", region, m, api_name="/explain")))
                for m in ("grid", "raw", "stochastic", "gamma")}
    assert {p.shape for p in pictures.values()} == {shape}
    # "map" style: the colormap alone, so three maps of the same region differ only by method.
    assert not np.array_equal(pictures["grid"], pictures["raw"])
    assert not np.array_equal(pictures["grid"], pictures["stochastic"])


def test_phrase_maps_grid_and_raw(client):
    cat = gradio_client.handle_file(CAT)
    grid, raw = (np.asarray(Image.open(client.predict(cat, "a red sports car", "map", "centre", m,
                                                      api_name="/explain_text"))) for m in ("grid", "raw"))
    assert grid.shape == raw.shape == (512, 512, 3) and not np.array_equal(grid, raw)
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match="stochastic map is for concepts of T"):
        client.predict(cat, "a red sports car", "map", "centre", "stochastic", api_name="/explain_text")


def test_top_concepts_are_ranked(client):
    top = client.predict(gradio_client.handle_file(CAT), 5, api_name="/top_concepts")
    assert len(top) == 5 and all({"synset", "score", "gloss"} <= set(t) for t in top)
    assert [t["score"] for t in top] == sorted((t["score"] for t in top), reverse=True)


def test_errors_come_back_as_messages(client, tmp_path):
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match="did you mean 'dog.n.01'"):
        client.predict(gradio_client.handle_file(CAT), "dgo.n.01", "overlay", api_name="/explain")
    bad = tmp_path / "bad.jpg"
    bad.write_text("not an image")
    with pytest.raises(AppError, match="cannot identify image file"):
        client.predict(gradio_client.handle_file(str(bad)), 3, api_name="/top_concepts")
