"""The reference's variants held to it: gamma n = 91, the stochastic scale switch; and the
"what CLIP sees" list without single-child ancestor chains.

Expected values are worked out by hand from the reference's rules (convis-method.md section 4).
"""

import numpy as np
import pytest
from _planted import BANK, HIER, RED, SPEC, colour_encoder, planted

from convis import saliency as sal
from convis.concepts.chains import collapse_chains
from convis.config import GridConfig, StochasticConfig
from convis.concepts.hierarchy import toy_hierarchy
from convis.index.build import index_image


@pytest.mark.parametrize(("iterations", "reset", "first"), [
    (600, 100, 300),  # default: 300 + 300
    (500, 100, 300),  # reset at j = 299 is the first with j >= 249: 300 + 200, not 250 + 250
    (400, 100, 200),  # j = 199 >= 199: 200 + 200
    (300, 100, 200),  # j = 199 >= 149 (j = 99 is not): 200 + 100
    (40, 20, 20),  # j = 19 >= 19: 20 + 20
])
def test_stochastic_scale_switches_at_the_references_reset(iterations, reset, first):
    sides = sal.scale_schedule(StochasticConfig(iterations=iterations, reset_every=reset))
    assert (sides[:first] == 128).all() and (sides[first:] == 64).all() and len(sides) == iterations


def test_the_sampler_uses_the_schedule():
    sizes = []

    def score_box(box):
        sizes.append(box[2] - box[0])
        assert box[3] - box[1] == sizes[-1]
        return 0.5

    sal.stochastic_map(score_box, StochasticConfig(iterations=500, seed=2))
    assert sizes.count(128) == 300 and sizes.count(64) == 200 and sizes[299] == 128 and sizes[300] == 64


def test_gamma_n_defaults_to_the_papers_91():
    assert GridConfig().gamma_n == 91 and StochasticConfig().gamma_n == 91


def test_gamma_map_of_a_leaf_uses_n_91_not_its_subtree_size():
    img = planted((224, 224), {RED: (60, 60, 140, 140)})
    index = index_image(img, colour_encoder, BANK, HIER, SPEC, GridConfig(score="gamma"))
    leaf = HIER.index("stone.n.01")
    scores = index.window_scores("stone.n.01")
    ranks = index.ranks[:, leaf]
    assert (ranks > 0).any()  # with n = |hypo*| = 1 every one of these would score -1
    expected = [2.0 * np.exp(-5.0 * r / 91.0) - 1.0 for r in ranks.tolist()]  # all ranks < 8 < 91
    np.testing.assert_allclose(scores, expected, rtol=1e-12)
    legacy = index_image(img, colour_encoder, BANK, HIER, SPEC, GridConfig(score="gamma", gamma_n=None))
    assert set(np.unique(legacy.window_scores("stone.n.01"))) <= {-1.0, 1.0}


# ---- chains -------------------------------------------------------------------------------------
# entity -> animal -> {cat, dog}; cat -> domestic_cat (only child) -> tabby (only child);
# dog -> {puppy, hound}; animal also has a single-child chain bird -> parrot.
CHAIN = toy_hierarchy({
    "animal.n.01": ["entity.n.01"], "cat.n.01": ["animal.n.01"], "domestic_cat.n.01": ["cat.n.01"],
    "tabby.n.01": ["domestic_cat.n.01"], "dog.n.01": ["animal.n.01"], "puppy.n.01": ["dog.n.01"],
    "hound.n.01": ["dog.n.01"], "bird.n.01": ["animal.n.01"], "parrot.n.01": ["bird.n.01"],
})


def _scores(**by_name):
    s = np.zeros(len(CHAIN))
    for name, v in by_name.items():
        s[CHAIN.index(f"{name}.n.01")] = v
    return s


def test_a_single_child_chain_is_shown_once_as_its_most_specific_concept():
    scores = _scores(cat=5.0, domestic_cat=4.9, tabby=4.8, dog=3.0, puppy=2.0, bird=1.5, parrot=1.4, animal=1.0)
    top = collapse_chains(CHAIN, scores, 4)
    assert top == [
        ("tabby.n.01", 5.0, ("domestic_cat.n.01", "cat.n.01", "animal.n.01")),  # "tabby <- domestic cat <- cat"
        ("dog.n.01", 3.0, ("animal.n.01",)),  # two children: not a chain
        ("puppy.n.01", 2.0, ("dog.n.01",)),
        ("parrot.n.01", 1.5, ("bird.n.01", "animal.n.01")),
    ]


def test_index_top_concepts_keeps_its_pairs_and_offers_the_collapsed_list():
    index = index_image(planted((224, 224), {RED: (30, 30, 190, 190)}), colour_encoder, BANK, HIER, SPEC)
    pairs = index.top_concepts(3)
    assert all(len(p) == 2 for p in pairs)
    triples = index.top_concepts(len(HIER), collapse_chains=True)
    assert all(len(t) == 3 for t in triples)
    names = [t[0] for t in triples]
    assert len(names) == len(set(names)) and "red_thing.n.01" in names
    # Only entity has a single child (thing): it folds into thing, every other concept appears once.
    assert sorted(names) == sorted(set(HIER.ids) - {"entity.n.01"})
    assert dict((n, c) for n, _, c in triples)["thing.n.01"] == ("entity.n.01",)
