"""Free-text maps and the raw ablation from the index's kept window embeddings.

A planted-concept fake encoder (tests/_planted.py) decides where a phrase must be hot; the
phrase's rank per window is checked against counts made by hand.
"""

import numpy as np
import pytest
import torch
from _planted import BANK, GREEN, HIER, RED, SPEC, colour_encoder, mean_in, mean_out, planted, unit

from convis.index import cosine
from convis.clip.bank import load_bank
from convis.config import GridConfig, StochasticConfig
from convis.engine import Engine
from convis.concepts.hierarchy import toy_hierarchy
from convis.index.build import index_image

RED_BOX, GREEN_BOX = (20, 70, 90, 140), (140, 70, 210, 140)
RED_CAR = unit(0.9, 0.1, 0.35)  # "a red sports car": near red_thing, but not any concept of T


@pytest.fixture(scope="module")
def index():
    img = planted((224, 224), {RED: RED_BOX, GREEN: GREEN_BOX})
    return index_image(img, colour_encoder, BANK, HIER, SPEC)


def test_index_keeps_each_windows_embedding_in_half_precision(index):
    assert index.embeddings.shape == (730, 3) and index.embeddings.dtype == torch.float16
    assert index.embeddings.device.type == "cpu"
    assert index.embeddings.element_size() * index.embeddings.numel() == 730 * 3 * 2
    assert torch.allclose(index.embeddings.float().norm(dim=1), torch.ones(730), atol=2e-3)


def test_phrase_map_is_hot_where_the_planted_phrase_is_and_cold_elsewhere(index):
    m = index.text_saliency(RED_CAR, BANK, size=0)
    assert m.shape == (224, 224) and m.dtype == np.float32
    y, x = np.unravel_index(np.argmax(m), m.shape)
    assert RED_BOX[0] <= x < RED_BOX[2] and RED_BOX[1] <= y < RED_BOX[3]
    assert mean_in(m, RED_BOX) > 0.5
    # Coldest on the other colour; the grey rest sits between (it prefers fewer concepts to red).
    assert mean_in(m, GREEN_BOX) < 0.05 and mean_out(m, RED_BOX, margin=40) < 0.3
    green = index.text_saliency(unit(0.1, 0.9, 0.35), BANK, size=0)  # the other planted phrase
    assert mean_in(green, GREEN_BOX) > 0.5 and mean_in(green, RED_BOX) < 0.05


def test_phrase_rank_counts_the_concepts_a_window_prefers():
    # Windows along x, y, z; concepts at hand-picked directions; the phrase between them.
    windows = torch.eye(3, dtype=torch.float16)
    bank = torch.nn.functional.normalize(torch.tensor([[1.0, 0.0, 0.0], [0.8, 0.6, 0.0], [0.0, 0.6, 0.8],
                                                       [0.0, 0.0, 1.0]]), dim=1)
    phrase = unit(0.6, 0.0, 0.8)
    # Window x: cosines 1, 0.8, 0, 0 vs phrase 0.6 -> 2 preferred. Window y: 0, 0.6, 0.6, 0 vs 0
    # -> 2. Window z: 0, 0, 0.8, 1 vs 0.8 -> 1 (0.8 ties, ties are not preferred).
    assert cosine.phrase_ranks(windows, bank, phrase[None]).tolist() == [[2, 2, 1]]


def test_a_phrase_equal_to_a_leafs_embedding_ranks_like_the_leaf(index):
    leaf = HIER.index("stone.n.01")  # a leaf with no mirror image in the bank (red and green tie on grey)
    ranks = cosine.phrase_ranks(index.embeddings, BANK, BANK[leaf][None])[0]
    sims = index.embeddings.float() @ BANK.T  # near ties may flip under half precision
    gaps = (sims - sims[:, leaf : leaf + 1]).abs()
    gaps[:, leaf] = 1.0
    clear = (gaps > 3e-3).all(dim=1).numpy()  # half precision moves a cosine by under 1e-3
    assert clear.mean() > 0.9
    assert np.array_equal(ranks[clear], index.ranks[clear, leaf])


def test_raw_scores_are_the_best_cosine_over_the_subtree():
    windows = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    bank = torch.tensor([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0]])
    out = cosine.raw_scores(windows, bank, [np.array([0, 1]), np.array([2])])
    np.testing.assert_allclose(out, [[1.0, 0.8], [0.0, 1.0]], atol=1e-6)


def test_raw_map_is_hot_on_the_planted_colour(index):
    m = index.raw_saliency_many(["red_thing.n.01"], BANK, size=0)[0]
    assert mean_in(m, RED_BOX) > 0.5 and mean_in(m, GREEN_BOX) < 0.2


def test_raw_text_scores_are_the_cosine_to_the_phrase():
    windows = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]])
    phrases = torch.tensor([[0.6, 0.8], [1.0, 0.0]])
    # Hand computation: dot products of unit rows.
    np.testing.assert_allclose(cosine.text_scores(windows, phrases), [[0.6, 0.8, 1.0], [1.0, 0.0, 0.6]],
                               atol=1e-6)
    with pytest.raises(ValueError, match="embedding sizes differ"):
        cosine.text_scores(windows, torch.ones(1, 3))


def test_raw_phrase_map_is_hot_on_the_planted_colour_and_drops_the_rank(index):
    m = index.raw_text_saliency_many(RED_CAR, size=0)[0]
    assert m.shape == (224, 224) and m.max() == 1.0
    assert mean_in(m, RED_BOX) > 0.5 and mean_in(m, GREEN_BOX) < 0.2
    # No rank: a phrase equal to a concept's embedding gets that concept's raw map (a leaf: its own row).
    leaf = index.raw_saliency_many(["red_thing.n.01"], BANK, size=0)[0]
    same = index.raw_text_saliency_many(BANK[HIER.index("red_thing.n.01")], size=0)[0]
    np.testing.assert_allclose(same, leaf, atol=1e-6)


def test_an_index_without_embeddings_says_how_to_fix_it(index):
    import dataclasses

    bare = dataclasses.replace(index, embeddings=None)
    with pytest.raises(ValueError, match="rebuild"):
        bare.text_saliency(RED_CAR, BANK)


# ---- the engine's text side, with the seeded tiny CLIP ----------------------------------------
TOY = {"animal.n.01": ["entity.n.01"], "bird.n.01": ["animal.n.01"], "parrot.n.01": ["bird.n.01"],
       "dog.n.01": ["animal.n.01"], "car.n.01": ["entity.n.01"], "cup.n.01": ["entity.n.01"]}


@pytest.fixture(scope="module")
def engine(tiny_clip, tmp_path_factory):
    hier = toy_hierarchy(TOY, vocabulary="phrase-toy")
    return Engine(tiny_clip, hier, load_bank(tiny_clip, hier, cache_dir=tmp_path_factory.mktemp("banks")))


def test_a_phrase_is_encoded_once_however_often_it_is_drawn(engine, monkeypatch):
    import convis.engine

    calls = []
    real = convis.engine.encode_texts_bucketed
    monkeypatch.setattr(convis.engine, "encode_texts_bucketed",
                        lambda texts, clip: calls.append(texts) or real(texts, clip))
    first = engine.encode_text("a  small red   bird")
    again = engine.encode_text("a small red bird")  # the same words: the same phrase
    other = engine.encode_text("a large blue car")
    assert calls == [["a small red bird"], ["a large blue car"]]
    assert torch.equal(first, again) and not torch.equal(first, other)


def test_encode_text_is_the_banks_text_forward(engine):
    i = engine.hierarchy.index("parrot.n.01")
    emb = engine.encode_text(engine.hierarchy.gloss(i))
    assert emb.shape == (engine.bank.embeddings.shape[1],)
    assert torch.allclose(emb, engine.bank.embeddings[i], atol=1e-5)
    name, cos = engine.nearest_concepts(engine.hierarchy.gloss(i), k=3)[0]
    assert name == "parrot.n.01" and cos == pytest.approx(1.0, abs=1e-5)
    assert len(engine.nearest_concepts("a red sports car", k=3)) == 3


def test_one_phrase_limit_and_one_empty_phrase_message_for_library_and_app(engine):
    from convis.app import limits, maps
    from convis.errors import UserError

    at_limit = "a" * 198 + "  b"  # 201 typed, 200 once the whitespace is collapsed: accepted
    assert torch.isfinite(engine.encode_text(at_limit)).all()
    with pytest.raises(UserError, match="201 characters long; the limit is 200"):
        engine.encode_text("c" * 201)  # refused, not silently cut (it was cut at 1,000 before)
    assert limits.MAX_TEXT == 200, "the app bounds concept names, queries and phrases by the same limit"
    with pytest.raises(UserError) as library:
        engine.encode_text("   ")
    with pytest.raises(UserError) as app:
        maps.clean_phrase(" \t ")
    assert str(library.value) == str(app.value) == "the phrase is empty; type a few words, e.g. 'a red sports car'"


def test_engine_text_and_raw_maps_and_stochastic_progress(engine):
    rng = np.random.default_rng(0)
    from PIL import Image

    img = Image.fromarray(rng.integers(0, 256, (90, 120, 3), dtype=np.uint8))
    index = engine.index(img)
    text = engine.text_saliency(index, "a red sports car")
    assert text.shape == (90, 90) and 0.0 <= text.min() and text.max() <= 1.0  # may be flat: random model
    raw = engine.raw_saliency(index, "bird.n.01", size=0)
    assert raw.shape == (224, 224) and raw.max() == 1.0
    raw_text = engine.raw_text_saliency(index, "a red sports car", size=0)
    assert raw_text.shape == (224, 224) and raw_text.max() == 1.0
    # The phrase's raw map from its own text forward, computed by hand from the kept embeddings.
    cos = index.embeddings.float() @ engine.encode_text("a red sports car").float()
    hand = index._maps(cos.double().numpy()[None], True, 0)[0]
    np.testing.assert_allclose(raw_text, hand, atol=1e-6)
    seen = []
    cfg = StochasticConfig(iterations=30, reset_every=10, seed=1)
    engine.stochastic(index, "bird.n.01", cfg, progress=lambda d, t: seen.append((d, t)))
    assert seen == [(d, 30) for d in range(1, 31)]

    def cancel(done, total):
        if done == 5:
            raise KeyboardInterrupt

    calls = []
    with pytest.raises(KeyboardInterrupt):
        engine.stochastic(index, "bird.n.01", cfg, progress=lambda d, t: (calls.append(d), cancel(d, t)))
    assert calls == [1, 2, 3, 4, 5]


def test_gamma_phrase_maps_use_the_leaf_rule(index):
    gamma = index_image(planted((224, 224), {RED: RED_BOX}), colour_encoder, BANK, HIER, SPEC,
                        GridConfig(score="gamma"))
    m = gamma.text_saliency(RED_CAR, BANK, size=0)
    assert mean_in(m, RED_BOX) > 0.5 and mean_out(m, RED_BOX, margin=40) < 0.05
