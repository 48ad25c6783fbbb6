"""convis.eval.methods: the named map makers share one window pass and agree with the engine."""

import numpy as np
import pytest
import torch
from PIL import Image

from convis.bank import load_bank
from convis.config import GridConfig
from convis.engine import Engine
from convis.eval.methods import METHODS, MapMaker, centre_prior, parse_methods, patch_embeddings
from convis.hierarchy import toy_hierarchy
from convis.index import build_index

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
    assert parse_methods("convis, raw") == ["convis", "raw"]
    assert parse_methods("all") == ["convis", "stochastic", "raw", "dense", "centre"]  # not the slow extras
    assert parse_methods("convis-int8,convis-progressive") == ["convis-int8", "convis-progressive"]
    assert set(METHODS) >= {"convis-int8", "convis-progressive"}
    assert parse_methods(["dense", "dense"]) == ["dense"]
    with pytest.raises(ValueError, match="unknown method"):
        parse_methods("convis,gradcam")


def test_centre_prior_peaks_in_the_middle():
    m = centre_prior(64)
    assert m.shape == (64, 64) and m.max() == 1.0 and m.min() == 0.0
    assert np.unravel_index(np.argmax(m), m.shape) in {(31, 31), (31, 32), (32, 31), (32, 32)}
    assert np.allclose(m, m.T) and np.allclose(m, m[::-1])


def test_convis_map_is_the_engine_index(engine, image):
    maker = MapMaker(engine, ["convis", "raw", "dense", "centre"], GridConfig(seed=3))
    maps, crop = maker(image, ["bird.n.01", "car.n.01"], size=0)
    index = build_index(image, engine.clip, engine.bank, engine.hierarchy, GridConfig(seed=3))
    np.testing.assert_array_equal(maps["convis"], index.saliency_many(["bird.n.01", "car.n.01"], size=0))
    assert crop == index.crop
    for name, m in maps.items():
        assert m.shape == (2, 224, 224), name
        assert m.dtype == np.float32 and m.min() >= 0.0 and m.max() <= 1.0, name
    assert set(maker.seconds) == {"convis", "raw", "dense", "centre"}


def test_raw_map_is_window_cosine_accumulated(engine, image):
    maker = MapMaker(engine, ["raw"], GridConfig())
    index, sims = maker.window_pass(image)
    assert sims.shape == (len(index.boxes), len(engine.hierarchy))
    # The raw map of a leaf ranks pixels by the mean cosine of the windows covering them.
    leaf = engine.hierarchy.index("car.n.01")
    from convis.saliency import accumulate

    sums, counts = accumulate(sims[:, leaf].numpy()[None], index.boxes, 480)
    mean = (sums[0] / np.maximum(counts, 1))[128:352, 128:352]
    raw = maker(image, ["car.n.01"], size=0)[0]["raw"][0]
    expected = (mean - mean.min()) / (mean.max() - mean.min())
    np.testing.assert_allclose(raw, expected, atol=1e-5)


def test_map_sizes(engine, image):
    maker = MapMaker(engine, ["convis", "centre"])
    maps, crop = maker(image, ["dog.n.01"], size=None)
    assert crop.side == 90 and maps["convis"].shape == (1, 90, 90)
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
