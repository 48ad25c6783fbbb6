"""Hierarchy on hand-made DAGs: no nltk, no files."""

import numpy as np
import pytest

from convis.concepts.hierarchy import Hierarchy, UnknownConceptError, toy_hierarchy

# entity -> animal -> {dog, cat}; entity -> artifact -> toy; "toy_dog" has two parents (dog and toy).
SPEC = {
    "entity.n.01": [],
    "animal.n.01": ["entity.n.01"],
    "artifact.n.01": ["entity.n.01"],
    "dog.n.01": ["animal.n.01"],
    "cat.n.01": ["animal.n.01"],
    "toy.n.01": ["artifact.n.01"],
    "toy_dog.n.01": ["dog.n.01", "toy.n.01"],
    "hot_dog.n.01": ["artifact.n.01"],
    "dogcart.n.01": ["artifact.n.01"],
}


@pytest.fixture
def hier() -> Hierarchy:
    return toy_hierarchy(SPEC, {"dog.n.01": "a domesticated canid"})


def names(h: Hierarchy, idx: np.ndarray) -> set[str]:
    return {h.ids[i] for i in idx}


def test_nodes_are_sorted_and_indexed(hier):
    assert list(hier.ids) == sorted(SPEC)
    assert len(hier) == len(SPEC)
    assert all(hier.index(n) == i for i, n in enumerate(hier.ids))
    assert hier.gloss("dog.n.01") == "a domesticated canid"
    assert hier.gloss("hot_dog.n.01") == "a hot dog"
    assert hier.lemmas("hot_dog.n.01") == ("hot_dog",)


def test_parents_children_roots_leaves(hier):
    assert hier.parents("toy_dog.n.01") == ["dog.n.01", "toy.n.01"]
    assert hier.children("artifact.n.01") == ["dogcart.n.01", "hot_dog.n.01", "toy.n.01"]
    assert hier.roots == ["entity.n.01"]
    assert set(hier.leaves) == {"cat.n.01", "toy_dog.n.01", "hot_dog.n.01", "dogcart.n.01"}


def test_subtree_in_a_dag_counts_a_two_parent_node_once(hier):
    sub = hier.subtree("entity.n.01")
    assert len(sub) == len(SPEC)  # toy_dog is reached through animal and through artifact
    assert np.all(np.diff(sub) > 0)
    assert names(hier, hier.subtree("dog.n.01")) == {"dog.n.01", "toy_dog.n.01"}
    assert names(hier, hier.subtree("artifact.n.01")) == {
        "artifact.n.01", "toy.n.01", "toy_dog.n.01", "hot_dog.n.01", "dogcart.n.01"}
    assert names(hier, hier.subtree("cat.n.01")) == {"cat.n.01"}


def test_subtree_is_cached_and_read_only(hier):
    sub = hier.subtree("animal.n.01")
    assert hier.subtree("animal.n.01") is sub
    with pytest.raises(ValueError):
        sub[0] = 5


def test_subtree_sizes_match_subtree(hier):
    sizes = hier.subtree_sizes()
    assert sizes.shape == (len(hier),)
    assert [int(s) for s in sizes] == [len(hier.subtree(i)) for i in range(len(hier))]
    assert sizes[hier.index("entity.n.01")] == 9


def test_depth_is_the_shortest_path_to_a_root(hier):
    assert hier.depth("entity.n.01") == 0
    assert hier.depth("dog.n.01") == 2
    assert hier.depth("toy_dog.n.01") == 3
    # A shortcut edge makes the shortest route win: entity -> toy_dog directly.
    h = toy_hierarchy({**SPEC, "toy_dog.n.01": ["dog.n.01", "entity.n.01"]})
    assert h.depth("toy_dog.n.01") == 1


def test_path_to_root_follows_first_parents(hier):
    assert hier.path_to_root("toy_dog.n.01") == ["entity.n.01", "animal.n.01", "dog.n.01", "toy_dog.n.01"]
    h = toy_hierarchy({**SPEC, "toy_dog.n.01": ["toy.n.01", "dog.n.01"]})
    assert h.path_to_root("toy_dog.n.01") == ["entity.n.01", "artifact.n.01", "toy.n.01", "toy_dog.n.01"]


def test_topological_order_puts_children_before_parents(hier):
    order = hier.topological_order()
    assert sorted(order.tolist()) == list(range(len(hier)))
    where = {int(node): k for k, node in enumerate(order)}
    for child, parents in enumerate(hier.parent_index):
        for p in parents:
            assert where[child] < where[p]


def test_cycle_is_rejected():
    with pytest.raises(ValueError, match="cycle"):
        toy_hierarchy({"a.n.01": ["b.n.01"], "b.n.01": ["a.n.01"]})


def test_resolve_by_name_offset_and_lemma(hier):
    dog_offset = int(hier.offsets[hier.index("dog.n.01")])
    assert hier.resolve("dog.n.01") == "dog.n.01"
    assert hier.resolve(f"n{dog_offset:08d}") == "dog.n.01"
    assert hier.resolve(f"{dog_offset:08d}") == "dog.n.01"
    assert hier.resolve(dog_offset) == "dog.n.01"
    assert hier.resolve("Dog") == "dog.n.01"
    assert hier.resolve("hot dog") == "hot_dog.n.01"  # a space stands for an underscore
    assert hier.index("hot dog") == hier.index("hot_dog.n.01")


def test_resolve_prefers_the_synset_named_after_the_word():
    h = Hierarchy(["frump.n.01", "dog.n.03", "dog.n.01"], [1, 2, 3], ["g1", "g2", "g3"],
                  [("frump", "dog"), ("dog",), ("dog", "domestic_dog")], [[], [], []])
    assert h.resolve("dog") == "dog.n.01"
    assert h.search("dog")[:3] == ["dog.n.01", "dog.n.03", "frump.n.01"]


def test_unknown_concept_names_the_fix(hier):
    with pytest.raises(UnknownConceptError) as err:
        hier.resolve("dgo.n.01")
    msg = str(err.value)
    assert msg.startswith("unknown synset 'dgo.n.01' in vocabulary 'toy' (9 concepts)")
    assert "did you mean 'dog.n.01'" in msg
    assert isinstance(err.value, KeyError) and isinstance(err.value, ValueError)
    with pytest.raises(UnknownConceptError, match="did you mean 'cat.n.01'"):
        hier.index("catt")


def test_search_ranks_exact_then_prefix_then_substring(hier):
    assert hier.search("dog") == ["dog.n.01", "dogcart.n.01", "hot_dog.n.01", "toy_dog.n.01"]
    assert hier.search("dog", limit=2) == ["dog.n.01", "dogcart.n.01"]
    assert hier.search("dog.n.01")[0] == "dog.n.01"
    assert hier.search("ani") == ["animal.n.01"]
    assert hier.search("zebra") == []
    assert hier.search("   ") == []


def test_json_round_trip_is_equal(hier):
    back = Hierarchy.from_json(hier.to_json())
    assert back == hier
    assert back.ids == hier.ids and back.parent_index == hier.parent_index
    assert back.lemmas("toy_dog.n.01") == ("toy_dog",)
    assert back.vocabulary == "toy" and back.wordnet_version == "toy"
    assert toy_hierarchy({**SPEC, "cat.n.01": ["entity.n.01"]}) != hier


def test_construction_order_does_not_matter():
    a = Hierarchy(["b.n.01", "a.n.01"], [2, 1], ["gb", "ga"], [("b",), ("a",)], [[1], []])
    b = Hierarchy(["a.n.01", "b.n.01"], [1, 2], ["ga", "gb"], [("a",), ("b",)], [[], [0]])
    assert a == b and a.ids == ("a.n.01", "b.n.01") and a.parents("b.n.01") == ["a.n.01"]
