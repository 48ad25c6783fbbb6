"""Unit tests of the harness's pieces, with expected values worked out by hand or by another path."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from convis.clip.bank import load_bank
from convis.engine import Engine
from convis.eval.faithfulness import perturbation_series
from convis.concepts.hierarchy import toy_hierarchy

TOY = {"animal.n.01": ["entity.n.01"], "bird.n.01": ["animal.n.01"], "parrot.n.01": ["bird.n.01"],
       "owl.n.01": ["bird.n.01"], "hot_dog.n.01": ["entity.n.01"], "dog.n.01": ["animal.n.01"]}


def test_perturbation_series_by_hand():
    pixels = np.arange(12, dtype=np.float32).reshape(2, 2, 3)  # pixel p holds 3p, 3p+1, 3p+2
    start = np.full((2, 2, 3), -1.0, dtype=np.float32)
    saliency = np.array([[0.1, 0.9], [0.5, 0.3]])  # order: (0,1), (1,0), (1,1), (0,0)
    series = perturbation_series(pixels, saliency, 2, start)
    assert series.shape == (3, 2, 2, 3) and series.dtype == np.float32
    np.testing.assert_array_equal(series[0], pixels)
    step1 = pixels.copy()
    step1[0, 1] = step1[1, 0] = -1.0  # the two most salient pixels
    np.testing.assert_array_equal(series[1], step1)
    np.testing.assert_array_equal(series[2], start)


def test_perturbation_series_breaks_ties_in_raster_order():
    pixels = np.zeros((2, 2, 3), dtype=np.float32)
    series = perturbation_series(pixels, np.zeros((2, 2)), 4, np.ones((2, 2, 3), dtype=np.float32))
    changed = series[:, :, :, 0].reshape(5, 4)  # (steps + 1, pixels in raster order)
    np.testing.assert_array_equal(changed, np.tril(np.ones((5, 4)), -1))


def test_ood_concept_scores_by_hand(tiny_clip):
    from convis.eval.ood import concept_scores

    hier = toy_hierarchy(TOY)
    engine = Engine(tiny_clip, hier, load_bank(tiny_clip, hier))
    emb = F.normalize(torch.randn(5, engine.bank.embeddings.shape[1], generator=torch.Generator().manual_seed(1)),
                      dim=-1)
    got = concept_scores(engine, emb, "animal.n.01")
    t = {n: engine.bank.embeddings[hier.index(n)] for n in hier.ids}
    naive = emb @ t["animal.n.01"]
    leaves = torch.stack([emb @ t[n] for n in ("dog.n.01", "owl.n.01", "parrot.n.01")]).amax(0)
    words = ["animal", "bird", "dog", "owl", "parrot"]  # hot_dog is not under animal
    lemma_emb = tiny_clip.encode_text(tiny_clip.tokenizer(words))  # the plain padded path
    lemmas = (emb @ lemma_emb.T).amax(1)
    np.testing.assert_allclose(got["naive"], naive.numpy(), atol=1e-5)
    np.testing.assert_allclose(got["hierarchy"], leaves.numpy(), atol=1e-5)
    np.testing.assert_allclose(got["lemmas"], lemmas.numpy(), atol=1e-5)


@pytest.mark.wordnet
def test_nearest_in_vocabulary_climbs_wordnet():
    from convis.eval.concepts import nearest_in_vocabulary

    hier = toy_hierarchy({"animal.n.01": [], "bird.n.01": ["animal.n.01"], "dog.n.01": ["animal.n.01"]})
    assert nearest_in_vocabulary("dog.n.01", hier) == "dog.n.01"
    assert nearest_in_vocabulary("parrot.n.01", hier) == "bird.n.01"  # parrot -> psittacine -> bird
    assert nearest_in_vocabulary("car.n.01", hier) is None  # no animal above a car


@pytest.mark.wordnet
def test_resolve_classes_reports_every_case():
    from convis.eval.concepts import resolve_classes

    hier = toy_hierarchy({"animal.n.01": [], "bird.n.01": ["animal.n.01"], "dog.n.01": ["animal.n.01"]})
    classes = ["n01503061", "parrot.n.01", "car.n.01", "no_such_thing"]  # n01503061 = bird.n.01
    up = resolve_classes(classes, hier, fallback="ancestor")
    assert up.queries == {"n01503061": "bird.n.01", "parrot.n.01": "bird.n.01"}
    assert up.replaced == {"parrot.n.01": "bird.n.01"}
    assert up.missing == ["car.n.01"] and up.unknown == ["no_such_thing"]
    skip = resolve_classes(classes, hier)
    assert skip.queries == {"n01503061": "bird.n.01"} and skip.missing == ["car.n.01", "parrot.n.01"]
    mapped = resolve_classes(["birdie", "cat"], hier, mapping={"birdie": "bird.n.01"})
    assert mapped.queries == {"birdie": "bird.n.01"} and mapped.unknown == ["cat"]
