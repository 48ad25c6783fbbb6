"""convis.eval.mapmaker / methods: the registered map makers share one window pass and match Algorithm 1."""

import numpy as np
import pytest
import torch
from PIL import Image

from convis.clip.bank import load_bank
from convis.config import GridConfig
from convis.engine import Engine
from convis.eval.mapmaker import MapMaker
from convis.eval.registry import METHODS, parse_methods, register_method
from convis.eval.methods import centre_prior, patch_embeddings
from convis.concepts.hierarchy import toy_hierarchy
from literal import hypo_star, literal_algorithm_1, literal_windows, window_mean

TOY = {"animal.n.01": ["entity.n.01"], "bird.n.01": ["animal.n.01"], "parrot.n.01": ["bird.n.01"],
       "owl.n.01": ["bird.n.01"], "dog.n.01": ["animal.n.01"], "car.n.01": ["entity.n.01"]}


@pytest.fixture(scope="module")
def engine(tiny_clip):
    hier = toy_hierarchy(TOY)
    return Engine(tiny_clip, hier, load_bank(tiny_clip, hier))


@pytest.fixture(scope="module")
def image():
    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 256, (90, 120, 3), dtype=np.uint8))


def test_parse_methods():
    assert parse_methods("grid, raw") == ["grid", "raw"]
    assert parse_methods("all") == ["grid", "stochastic", "raw", "dense", "centre"]  # not the slow extras
    assert parse_methods("grid-int8,grid-progressive") == ["grid-int8", "grid-progressive"]
    assert set(METHODS) >= {"grid-int8", "grid-progressive"}
    assert parse_methods(["dense", "dense"]) == ["dense"]
    with pytest.raises(ValueError, match="unknown method"):
        parse_methods("grid,gradcam")
    with pytest.raises(ValueError, match="'convis' is now 'grid'"):  # the old name says the new one
        parse_methods("convis,raw")


def test_centre_prior_peaks_in_the_middle():
    m = centre_prior(64)
    assert m.shape == (64, 64) and m.max() == 1.0 and m.min() == 0.0
    assert np.unravel_index(np.argmax(m), m.shape) in {(31, 31), (31, 32), (32, 31), (32, 32)}
    assert np.allclose(m, m.T) and np.allclose(m, m[::-1])


def test_convis_map_is_algorithm_1(engine, image):
    maker = MapMaker(engine, ["grid", "raw", "dense", "centre"], GridConfig(seed=3))
    maps, crop = maker(image, ["dog.n.01", "owl.n.01"], size=0)
    windows = literal_windows(image, engine.clip, seed=3)  # written without convis.windows
    for j, concept in enumerate(["dog.n.01", "owl.n.01"]):
        subtree = [engine.hierarchy.ids.index(n) for n in hypo_star(TOY, concept)]
        reference = literal_algorithm_1(windows, engine.bank.embeddings.numpy(), subtree)
        # Tolerance: PIL's uint8 rounding of each window (see test_faithful.py).
        assert np.corrcoef(maps["grid"][j].ravel(), reference.ravel())[0, 1] >= 0.995, concept
    assert crop.box == (15, 0, 105, 90)  # the centre square of a 120 x 90 image
    for name, m in maps.items():
        assert m.shape == (2, 224, 224), name
        assert m.dtype == np.float32 and m.min() >= 0.0 and m.max() <= 1.0, name
    assert set(maker.seconds) == {"grid", "raw", "dense", "centre"}


def test_raw_map_is_window_cosine_accumulated(engine, image):
    maker = MapMaker(engine, ["raw"], GridConfig())
    # The raw map of a leaf ranks pixels by the mean cosine of the windows covering them.
    boxes, emb = literal_windows(image, engine.clip, seed=0)
    leaf = engine.bank.embeddings.numpy()[engine.hierarchy.index("car.n.01")]
    mean = window_mean(boxes, emb @ leaf)
    expected = (mean - mean.min()) / (mean.max() - mean.min())
    raw = maker(image, ["car.n.01"], size=0)[0]["raw"][0]
    assert np.abs(raw - expected).max() <= 0.05  # uint8 rounding of the literal windows
    assert np.corrcoef(raw.ravel(), expected.ravel())[0, 1] >= 0.999


def test_map_sizes(engine, image):
    maker = MapMaker(engine, ["grid", "centre"])
    maps, crop = maker(image, ["dog.n.01"], size=None)
    assert crop.side == 90 and maps["grid"].shape == (1, 90, 90)
    assert maker(image, ["dog.n.01"], size=50)[0]["centre"].shape == (1, 50, 50)


def test_patch_embeddings_are_the_pooled_path(engine):
    clip = engine.clip
    x = torch.randn(2, 3, clip.image_size, clip.image_size)
    with torch.inference_mode():
        tokens = patch_embeddings(clip.model, x)
    side = clip.image_size // clip.model.visual.patch_size[0]
    assert tokens.shape == (2, side, side, clip.model.visual.proj.shape[1])
    assert torch.allclose(tokens.norm(dim=-1), torch.ones(2, side, side), atol=1e-5)


def test_dense_needs_a_vit(engine):
    class NoProj(torch.nn.Module):
        visual = torch.nn.Identity()

    with pytest.raises(ValueError, match="VisionTransformer"):
        patch_embeddings(NoProj(), torch.zeros(1, 3, 8, 8))


def test_a_new_method_is_one_registration(engine, image, monkeypatch):
    monkeypatch.setitem(METHODS, "flat", None)  # removed again after the test
    register_method("flat")(lambda job: np.zeros((len(job.concepts), job.side, job.side), np.float32))
    maker = MapMaker(engine, "grid,flat")
    maps, _ = maker(image, ["dog.n.01"], size=32)
    assert maps["flat"].shape == (1, 32, 32) and not maps["flat"].any()
    assert "flat" in parse_methods("all")


def test_each_method_is_charged_what_it_costs(engine, image, monkeypatch):
    """A windowed method pays for the window pass it needs; a cheap method is not charged for it."""
    import time as clock

    passes = []
    real = MapMaker.window_pass

    def slow_pass(self, img, source=None):
        passes.append(1)
        clock.sleep(0.2)  # the window pass, made clearly the dominant cost
        return real(self, img)

    monkeypatch.setattr(MapMaker, "window_pass", slow_pass)
    maker = MapMaker(engine, ["centre", "raw", "grid"])
    maker(image, ["dog.n.01"])
    assert len(passes) == 1  # shared
    assert maker.seconds["raw"] >= 0.2 and maker.seconds["grid"] >= 0.2  # each needs it alone
    assert maker.seconds["centre"] < 0.2
