"""The fast path equals the literal Algorithm 1 of the paper (`tests/literal.py`, written without
`convis.windows` or `convis.saliency`; only the CLIP model is shared)."""

import numpy as np
import pytest
import torch
from PIL import Image

from convis.clip.bank import load_bank
from convis.config import GridConfig, StochasticConfig
from convis.engine import Engine
from convis.concepts.hierarchy import toy_hierarchy
from convis.index.build import build_index
from convis.clip.models import load_model
from literal import hypo_star, literal_algorithm_1, literal_windows

GLOSSES = {
    "entity.n.01": "that which is perceived or known or inferred to have its own distinct existence",
    "organism.n.01": "a living thing that has (or can develop) the ability to act or function independently",
    "animal.n.01": "a living organism characterized by voluntary movement",
    "bird.n.01": "warm-blooded egg-laying vertebrates characterized by feathers and forelimbs modified as wings",
    "parrot.n.01": "usually brightly colored zygodactyl tropical birds with short hooked beaks",
    "owl.n.01": "nocturnal bird of prey with hawk-like beak and claws and large head with front-facing eyes",
    "dog.n.01": "a member of the genus Canis that has been domesticated by man since prehistoric times",
    "cat.n.01": "feline mammal usually having thick soft fur and no ability to roar",
    "pet.n.01": "a domesticated animal kept for companionship or amusement",
    "plant.n.02": "(botany) a living organism lacking the power of locomotion",
    "tree.n.01": "a tall perennial woody plant having a main trunk and branches",
    "flower.n.01": "a plant cultivated for its blooms or blossoms",
    "artifact.n.01": "a man-made object taken as a whole",
    "vehicle.n.01": "a conveyance that transports people or objects",
    "car.n.01": "a motor vehicle with four wheels; usually propelled by an internal combustion engine",
    "bicycle.n.01": "a wheeled vehicle that has two wheels and is moved by foot pedals",
    "cup.n.01": "a small open container usually used for drinking; usually has a handle",
    "food.n.02": "any solid substance (as opposed to liquid) that is used as a source of nourishment",
    "coffee.n.01": "a beverage consisting of an infusion of ground coffee beans",
    "bread.n.01": "food made from dough of flour or meal and usually raised with yeast or baking powder",
}
SPEC = {
    "organism.n.01": ["entity.n.01"], "animal.n.01": ["organism.n.01"], "bird.n.01": ["animal.n.01"],
    "parrot.n.01": ["bird.n.01"], "owl.n.01": ["bird.n.01"], "dog.n.01": ["animal.n.01", "pet.n.01"],
    "cat.n.01": ["animal.n.01", "pet.n.01"], "pet.n.01": ["entity.n.01"], "plant.n.02": ["organism.n.01"],
    "tree.n.01": ["plant.n.02"], "flower.n.01": ["plant.n.02"], "artifact.n.01": ["entity.n.01"],
    "vehicle.n.01": ["artifact.n.01"], "car.n.01": ["vehicle.n.01"], "bicycle.n.01": ["vehicle.n.01"],
    "cup.n.01": ["artifact.n.01"], "food.n.02": ["entity.n.01"], "coffee.n.01": ["food.n.02"],
    "bread.n.01": ["food.n.02"],
}


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    clip = load_model("test-tiny", device="cpu")
    hier = toy_hierarchy(SPEC, GLOSSES, vocabulary="faithful-toy")
    return Engine(clip, hier, load_bank(clip, hier, cache_dir=tmp_path_factory.mktemp("banks")))


@pytest.fixture(scope="module")
def image():
    rng = np.random.default_rng(7)
    pixels = rng.integers(0, 256, (180, 260, 3), dtype=np.uint8)
    pixels[40:120, 100:200] = (200, 40, 30)
    return Image.fromarray(pixels)


@pytest.fixture(scope="module")
def windows(engine, image):
    return literal_windows(image, engine.clip, seed=3)


@pytest.mark.slow
@pytest.mark.parametrize(("concept", "score"), [("bird.n.01", "rank"), ("animal.n.01", "rank"), ("organism.n.01", "gamma")])
def test_fast_path_equals_literal_algorithm_1(engine, image, windows, concept, score):
    subtree = [engine.hierarchy.ids.index(n) for n in hypo_star(SPEC, concept)]
    reference = literal_algorithm_1(windows, engine.bank.embeddings.numpy(), subtree, score)
    index = engine.index(image, GridConfig(seed=3, score=score))
    fast = index.saliency(concept, size=0)
    assert fast.shape == reference.shape == (224, 224)
    assert reference.max() == pytest.approx(1.0)
    # PIL's uint8 rounding of each window swaps near-tied ranks of this random model: measured
    # Pearson >= 0.998 and max |diff| <= 0.072 (0.0 with float PIL). A wrong window kernel
    # (bilinear, or bicubic without antialiasing) gives Pearson <= 0.96 and max |diff| >= 0.2.
    pearson = np.corrcoef(fast.ravel(), reference.ravel())[0, 1]
    assert pearson >= 0.995, f"Pearson {pearson:.5f}"
    assert np.abs(fast - reference).max() <= 0.1


def test_resize_matrix_is_pil_bicubic():
    """The batched window resize is PIL's bicubic filter (antialiased when shrinking)."""
    from convis.windows import _resize_matrix

    rng = np.random.default_rng(0)
    for src, dst in [(128, 64), (64, 224), (128, 224), (100, 37), (64, 64)]:
        x = rng.random((src, src)).astype(np.float32)
        r = _resize_matrix(src, dst).numpy()
        pil = np.asarray(Image.fromarray(x, mode="F").resize((dst, dst), Image.Resampling.BICUBIC))
        assert np.abs(r @ x @ r.T - pil).max() < 1e-5, (src, dst)


def test_saliency_at_crop_size_matches_native_map_resized(engine, image):
    index = engine.index(image)
    native = index.saliency("bird.n.01", size=0)
    full = index.saliency("bird.n.01")
    assert full.shape == (180, 180) and index.crop.box == (40, 0, 220, 180)
    small = torch.nn.functional.interpolate(torch.from_numpy(full)[None, None], size=(224, 224), mode="area")
    assert np.abs(small[0, 0].numpy() - native).mean() < 0.05


def test_build_index_is_deterministic_and_batch_size_free(engine, image):
    a = build_index(image, engine.clip, engine.bank, engine.hierarchy, batch_size=1)
    b = build_index(image, engine.clip, engine.bank, engine.hierarchy, batch_size=7)
    assert a.model_id == "test-tiny/none"
    assert np.array_equal(a.ranks, b.ranks)


def test_stochastic_variant_is_seeded(engine, image):
    index = engine.index(image)
    cfg = StochasticConfig(iterations=40, reset_every=20, seed=5)
    a = engine.stochastic(index, "bird.n.01", cfg)
    b = engine.stochastic(index, "bird.n.01", cfg)
    c = engine.stochastic(index, "bird.n.01", StochasticConfig(iterations=40, reset_every=20, seed=6))
    assert a.shape == (224, 224) and np.array_equal(a, b)
    assert not np.array_equal(a, c)
    assert 0.0 <= a.min() and a.max() <= 1.0
