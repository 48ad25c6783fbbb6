"""WordNet vocabularies against the figures of the paper and of our default vocabulary.

nltk 3.10 refuses corpus paths under world-writable /tmp (pytest's tmp_path), so the cache folders
of these tests live in the repository's .pytest_cache.
"""

import gzip
import os
import shutil
from pathlib import Path

import pytest

import convis.concepts.wordnet as cw
from convis.concepts.hierarchy import Hierarchy
from convis.concepts.wordnet import WordNetUnavailableError, build_hierarchy, load_hierarchy, wordnet_reader

TEST_CACHE = Path(os.environ["CONVIS_CACHE"]) / "wordnet-test"  # inside the run's fresh cache (conftest)
WORDLIST = Path(__file__).resolve().parents[2] / "shared" / "data" / "physical_objects.txt"
DEBIAN = Path("/usr/share/wordnet")


@pytest.fixture(scope="module")
def wn():
    try:
        return wordnet_reader()
    except WordNetUnavailableError as exc:
        pytest.skip(f"WordNet 3.0 not available: {exc}")


@pytest.fixture
def fresh_resolution(monkeypatch):
    """Forget the resolved reader and hide every nltk data folder; restore both afterwards."""
    import nltk

    monkeypatch.setattr(nltk.data, "path", [])
    wordnet_reader.cache_clear()
    yield
    wordnet_reader.cache_clear()


@pytest.fixture
def physical(wn) -> Hierarchy:
    return build_hierarchy("physical")


@pytest.mark.wordnet
def test_physical_vocabulary_counts(physical):
    assert len(physical) == 7156
    assert len(physical.subtree("bird.n.01")) == 56
    assert len(physical.subtree("animal.n.01")) == 308
    assert physical.roots == ["entity.n.01"]
    assert physical.vocabulary == "physical" and physical.wordnet_version == "3.0"
    dog = physical.index("dog.n.01")
    assert physical.offsets[dog] == 2084071
    assert physical.gloss(dog).startswith("a member of the genus Canis")
    assert "domestic_dog" in physical.lemmas(dog)


@pytest.mark.wordnet
@pytest.mark.skipif(not WORDLIST.is_file(), reason=f"the paper's word list is not at {WORDLIST}")
def test_wordlist_vocabulary_reproduces_the_paper(wn):
    h = build_hierarchy(f"wordlist:{WORDLIST}")
    assert len(h) == 7080
    assert len(h.leaves) == 3914
    sizes = {"bird.n.01": 91, "building.n.01": 72, "animal.n.01": 485, "food.n.02": 257,
             "fruit.n.01": 88, "feline.n.01": 19, "dog.n.01": 7, "object.n.01": 3974}
    assert {n: len(h.subtree(n)) for n in sizes} == sizes
    assert h.subtree_sizes()[h.index("object.n.01")] == 3974
    assert h.vocabulary.startswith("wordlist:physical_objects.txt@") and len(h.vocabulary.split("@")[1]) == 10


@pytest.mark.wordnet
@pytest.mark.slow
def test_nouns_vocabulary_has_every_noun_synset(wn):
    h = load_hierarchy("nouns", TEST_CACHE)  # about 12 s the first time, then cached on disk
    assert len(h) == 82115
    assert h.roots == ["entity.n.01"]
    assert "paris.n.01" in h.ids and h.parents("paris.n.01") == ["national_capital.n.01"]  # an instance


@pytest.mark.wordnet
@pytest.mark.skipif(not (DEBIAN / "index.sense").is_file(), reason="Debian wordnet-sense-index not installed")
def test_debian_files_resolve_into_a_fresh_cache(fresh_resolution, monkeypatch):
    cache = TEST_CACHE / "debian-route"
    shutil.rmtree(cache, ignore_errors=True)
    monkeypatch.setenv("CONVIS_CACHE", str(cache))
    monkeypatch.setenv("CONVIS_OFFLINE", "1")
    monkeypatch.delenv("CONVIS_WORDNET_DIR", raising=False)
    reader = wordnet_reader()
    copied = cache / "nltk_data" / "corpora" / "wordnet"
    assert (copied / "data.noun").is_file() and not (copied / "data.noun").is_symlink()
    assert len((copied / "lexnames").read_text().splitlines()) == 45
    assert reader.get_version() == "3.0"
    assert reader.synset("dog.n.01").offset() == 2084071
    # The lexnames order matters: each synset's lexicographer file comes from it.
    assert reader.synset("dog.n.01").lexname() == "noun.animal"
    assert reader.synset("run.v.01").lexname() == "verb.motion"
    assert reader.synset("good.a.01").lexname() == "adj.all"


def test_unavailable_wordnet_names_both_fixes(fresh_resolution, monkeypatch):
    empty = TEST_CACHE / "empty"
    shutil.rmtree(empty, ignore_errors=True)
    (empty / "wordnet").mkdir(parents=True)
    monkeypatch.setenv("CONVIS_CACHE", str(empty / "cache"))
    monkeypatch.setenv("CONVIS_WORDNET_DIR", str(empty / "wordnet"))
    monkeypatch.setenv("CONVIS_OFFLINE", "1")
    with pytest.raises(WordNetUnavailableError) as err:
        wordnet_reader()
    assert "apt-get install wordnet-base wordnet-sense-index" in str(err.value)
    assert "python -m nltk.downloader wordnet" in str(err.value)


@pytest.mark.wordnet
def test_disk_cache_round_trip_skips_nltk(wn, monkeypatch):
    cache = TEST_CACHE / "disk-cache"
    shutil.rmtree(cache, ignore_errors=True)
    words = cache / "words.txt"
    cache.mkdir(parents=True)
    words.write_text("dog\ncat\n")
    monkeypatch.setattr(cw, "wordnet_reader", lambda: wn)  # skip re-resolving (3 s)
    first = load_hierarchy(f"wordlist:{words}", cache)
    assert load_hierarchy(f"wordlist:{words}", cache) is first  # in-process cache
    files = list((cache / "hierarchy").glob("wordlist-words.txt-*-wn3.0.json.gz"))
    assert len(files) == 1
    assert Hierarchy.from_json(gzip.decompress(files[0].read_bytes())) == first

    def no_nltk():
        raise AssertionError("a cached hierarchy must load without nltk")

    cw._LOADED.clear()
    monkeypatch.setattr(cw, "wordnet_reader", no_nltk)
    again = load_hierarchy(f"wordlist:{words}", cache)
    assert again == first and again is not first
    assert len(again.subtree("dog.n.01")) == 1 + len(again.children("dog.n.01"))

    # New content, new key: the stale file is not reused.
    words.write_text("dog\ncat\nbird\n")
    monkeypatch.setattr(cw, "wordnet_reader", lambda: wn)
    bigger = load_hierarchy(f"wordlist:{words}", cache)
    assert bigger.vocabulary != first.vocabulary and len(bigger) > len(first)


@pytest.mark.wordnet
@pytest.mark.parametrize("damage", ["truncated", "old format", "not gzip"])
def test_a_damaged_hierarchy_cache_is_rebuilt_with_a_warning(wn, monkeypatch, caplog, damage):
    """The bank's policy for the hierarchy too: an unreadable cache file is built again, not a crash."""
    cache = TEST_CACHE / "damaged"
    shutil.rmtree(cache, ignore_errors=True)
    words = cache / "words.txt"
    cache.mkdir(parents=True)
    words.write_text("dog\ncat\n")
    monkeypatch.setattr(cw, "wordnet_reader", lambda: wn)
    cw._LOADED.clear()
    first = load_hierarchy(f"wordlist:{words}", cache)
    (file,) = (cache / "hierarchy").glob("*.json.gz")
    good = gzip.decompress(file.read_bytes())
    file.write_bytes({"truncated": gzip.compress(good)[:200],
                      "old format": gzip.compress(good.replace(b'"format":1', b'"format":0')),
                      "not gzip": b"{}"}[damage])
    cw._LOADED.clear()
    again = load_hierarchy(f"wordlist:{words}", cache)
    assert again == first and "ignoring unreadable hierarchy cache" in caplog.text
    assert Hierarchy.from_json(gzip.decompress(file.read_bytes())) == first, "the file was written anew"


@pytest.mark.wordnet
def test_an_unwritable_cache_serves_wordnet_and_hierarchies_from_memory(fresh_resolution, monkeypatch, caplog):
    """A cache that cannot be written (read-only, full) costs warnings, not the service. The test
    runs as any user: a cache below a plain file cannot be created, even by root, as on a read-only disk."""
    blocker = TEST_CACHE / "blocker"
    shutil.rmtree(blocker, ignore_errors=True)
    blocker.parent.mkdir(parents=True, exist_ok=True)
    blocker.write_text("a file where the cache folder should be")
    cache = blocker / "cache"
    monkeypatch.setenv("CONVIS_CACHE", str(cache))
    monkeypatch.setenv("CONVIS_OFFLINE", "1")
    monkeypatch.delenv("CONVIS_WORDNET_DIR", raising=False)
    if not (DEBIAN / "data.noun").is_file():
        pytest.skip("needs the Debian WordNet files")
    reader = wordnet_reader()
    assert reader.synset("dog.n.01").offset() == 2084071
    assert "could not copy WordNet into the cache" in caplog.text
    words = TEST_CACHE / "unwritable-words.txt"
    words.write_text("dog\ncat\n")
    h = load_hierarchy(f"wordlist:{words}", cache)
    assert "dog.n.01" in h and "kept in memory only" in caplog.text


def test_unknown_vocabulary_lists_the_choices():
    with pytest.raises(ValueError, match="'physical', 'wordlist:PATH', 'synsets:PATH', 'nouns'"):
        load_hierarchy("animals")


def test_missing_wordlist_file_is_a_clear_error():
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_hierarchy(f"wordlist:{TEST_CACHE / 'no-such-list.txt'}")


@pytest.mark.wordnet
def test_synset_list_is_closed_under_hypernyms(wn, tmp_path):
    listed = TEST_CACHE / "synsets-ok.txt"
    listed.parent.mkdir(parents=True, exist_ok=True)
    listed.write_text("# two dogs and a cat\ndog.n.01\ncorgi.n.01  # a breed\n\ncat.n.01\n")
    h = build_hierarchy(f"synsets:{listed}")
    assert h.vocabulary.startswith("synsets:synsets-ok.txt@") and h.roots == ["entity.n.01"]
    assert {"dog.n.01", "corgi.n.01", "cat.n.01", "canine.n.02", "animal.n.01"} <= set(h.ids)
    assert "poodle.n.01" not in h.ids  # only what is listed, plus its hypernyms
    assert "corgi.n.01" in {h.ids[i] for i in h.subtree("dog.n.01")}
    assert build_hierarchy(f"synsets:{listed}").to_json() == h.to_json()  # same order every run


@pytest.mark.wordnet
def test_synset_list_errors_name_the_fix(wn):
    bad = TEST_CACHE / "synsets-bad.txt"
    bad.parent.mkdir(parents=True, exist_ok=True)
    bad.write_text("dog.n.01\ndgo.n.01\n")
    with pytest.raises(ValueError, match=r"unknown synset 'dgo.n.01'"):
        build_hierarchy(f"synsets:{bad}")
    bad.write_text("cat.n.99\n")
    with pytest.raises(ValueError, match=r"did you mean 'cat.n.01'"):
        build_hierarchy(f"synsets:{bad}")
    bad.write_text("einstein.n.01\n")  # an instance: no hypernyms(), no class path to entity
    with pytest.raises(ValueError, match="instance"):
        build_hierarchy(f"synsets:{bad}")
    with pytest.raises(FileNotFoundError, match="one synset name"):
        load_hierarchy(f"synsets:{TEST_CACHE / 'no-such-list.txt'}")


@pytest.mark.wordnet
def test_registered_synthetic_vocabulary(wn):
    import convis.eval  # noqa: F401 - registers "synthetic-shapes"

    h = load_hierarchy("synthetic-shapes", TEST_CACHE)
    assert h.vocabulary == "synthetic-shapes" and len(h) == 54
    assert {"circle.n.01", "polygon.n.01", "noise.n.03"} <= set(h.ids)


def test_disk_cache_is_keyed_by_the_build_rule(monkeypatch):
    """A changed rule for "physical" or "nouns" must miss the file the old rule wrote."""
    key = cw._resolve_vocabulary("physical")[2]
    assert key.startswith("physical~r") and key != cw._resolve_vocabulary("nouns")[2]

    def another_rule(wn):  # a different build rule under the same vocabulary name
        return {}

    monkeypatch.setattr(cw, "_physical", another_rule)
    assert cw._resolve_vocabulary("physical")[2] != key
