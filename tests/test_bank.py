"""convis.clip.text and convis.clip.bank: length-bucketed text forward equals the padded one; the disk cache."""

import pytest
import torch

from convis.clip import bank as bank_mod
from convis.clip import text as text_mod
from convis.clip.bank import Bank, bank_key, bank_texts, load_bank
from convis.clip.text import encode_texts_bucketed, encode_texts_padded
from convis.concepts.hierarchy import toy_hierarchy

PLANET = ("(astronomy) any of the nine large celestial bodies in the solar system that revolve around the "
          "sun and shine by reflected light; Mercury, Venus, Earth, Mars, Jupiter, Saturn, Uranus, Neptune, "
          "and Pluto in order of their proximity to the sun; viewed from the constellation Hercules, all the "
          "planets rotate around the sun in a counterclockwise direction")
GLOSSES = [
    "a member of the genus Canis (probably descended from the common wolf) that has been domesticated",
    "feline mammal usually having thick soft fur and no ability to roar",
    "warm-blooded egg-laying vertebrates characterized by feathers and forelimbs modified as wings",
    "a structure that has a roof and walls and stands more or less permanently in one place",
    "the ripened reproductive body of a seed plant",
    "any substance that can be metabolized by an animal to give energy and build tissue",
    "a motor vehicle with four wheels",
    "a seat for one person, with a support for the back",
    "a tall perennial woody plant having a main trunk and branches forming a distinct elevated crown",
    "an arrangement of parts or elements",
    "a living thing that has (or can develop) the ability to act or function independently",
    "the whole amount",
    "something owned; any tangible or intangible possession that is owned by someone",
    "a piece of furniture having a smooth flat top that is usually supported by one or more vertical legs",
    "a small vessel for travel on water",
    "a container for holding liquids while drinking",
    "that which is perceived or known or inferred to have its own distinct existence (living or nonliving)",
    "fleshy fruit of a tropical plant",
    "ink",
    "(botany) a living organism lacking the power of locomotion",
] + [PLANET, PLANET + "; " + PLANET]  # the second one is longer than 77 tokens: truncated, end token kept


@pytest.fixture(autouse=True)
def _fresh_memory_cache():
    bank_mod._BANKS.clear()  # each test sees the disk cache it sets up, not a bank from an earlier test
    yield
    bank_mod._BANKS.clear()


def _texts() -> list[str]:
    """~60 gloss-like texts of varied lengths, from 1 word to over the context length."""
    out = list(GLOSSES)
    for i, g in enumerate(GLOSSES[:19]):
        out.append(" ".join(g.split()[: 2 + i]))  # prefixes: many distinct lengths
        out.append(f"{g}; also {GLOSSES[(i + 5) % 19]}")
    return out


def test_lengths_cover_short_and_context_length(tiny_clip):
    tokens = tiny_clip.tokenizer(_texts())
    lengths = tokens.shape[1] - (tokens != 0).flip(1).int().argmax(1)
    assert len(_texts()) >= 58 and lengths.min() <= 4 and lengths.max() == 77
    assert len(set(lengths.tolist())) > 20
    assert (tokens[lengths == 77, -1] == tokens.max()).all()  # truncated rows still end with the end token


def test_bucketed_equals_padded(tiny_clip):
    texts = _texts()
    fast = encode_texts_bucketed(texts, tiny_clip, batch_size=8)
    ref = encode_texts_padded(texts, tiny_clip, batch_size=64)
    assert fast.shape == ref.shape == (len(texts), 32) and fast.dtype == torch.float32
    assert (fast - ref).abs().max().item() < 1e-5
    torch.testing.assert_close(fast.norm(dim=-1), torch.ones(len(texts)))


def test_bucketed_keeps_order(tiny_clip):
    texts = _texts()
    full = encode_texts_bucketed(texts, tiny_clip, batch_size=7)
    perm = torch.randperm(len(texts), generator=torch.Generator().manual_seed(0)).tolist()
    shuffled = encode_texts_bucketed([texts[i] for i in perm], tiny_clip, batch_size=7)
    torch.testing.assert_close(shuffled, full[perm], rtol=0, atol=1e-6)
    single = encode_texts_bucketed([texts[3]], tiny_clip)
    torch.testing.assert_close(single[0], full[3], rtol=0, atol=1e-5)


def test_a_tower_that_differs_falls_back_to_padded(tiny_clip, monkeypatch):
    """The check is behavioural: a cut-padding path that gives other embeddings is not used."""
    real = text_mod.encode_text_truncated
    monkeypatch.setattr(text_mod, "_AGREES", text_mod.weakref.WeakKeyDictionary())  # forget the verdict
    monkeypatch.setattr(text_mod, "encode_text_truncated", lambda model, text: real(model, text) + 0.1)
    texts = _texts()[:10]
    torch.testing.assert_close(encode_texts_bucketed(texts, tiny_clip), encode_texts_padded(texts, tiny_clip))
    assert text_mod._AGREES[tiny_clip.model] is False


def test_the_check_runs_once_per_model(tiny_clip, monkeypatch):
    monkeypatch.setattr(text_mod, "_AGREES", text_mod.weakref.WeakKeyDictionary())
    assert text_mod._truncation_agrees(tiny_clip) is True  # open_clip's causal CLIP: the fast path
    monkeypatch.setattr(text_mod, "encode_text_truncated", None)  # a second check would fail
    assert text_mod._truncation_agrees(tiny_clip) is True


def test_progress_reaches_total(tiny_clip):
    calls = []
    encode_texts_bucketed(_texts(), tiny_clip, batch_size=16, progress=lambda d, t: calls.append((d, t)))
    n = len(_texts())
    assert calls[-1] == (n, n) and len(calls) == -(-n // 16)
    assert [d for d, _ in calls] == sorted(d for d, _ in calls)


def _hier():
    spec = {"animal.n.01": ["organism.n.01"], "dog.n.01": ["animal.n.01"], "hot_dog.n.01": ["food.n.01"],
            "food.n.01": ["entity.n.01"], "organism.n.01": ["entity.n.01"]}
    glosses = {"dog.n.01": GLOSSES[0], "hot_dog.n.01": "a smooth-textured sausage of minced beef or pork",
               "entity.n.01": GLOSSES[16], "food.n.01": GLOSSES[5], "organism.n.01": GLOSSES[10]}
    return toy_hierarchy(spec, glosses)


def test_bank_texts_definitions_and_lemmas():
    h = _hier()
    defs, lemmas = bank_texts(h, "definitions"), bank_texts(h, "lemmas")
    assert defs == [h.gloss(i) for i in range(len(h))]
    assert lemmas[h.index("hot_dog.n.01")] == "hot dog"
    assert defs != lemmas
    with pytest.raises(ValueError, match="definitions"):
        bank_texts(h, "names")


def test_load_bank_rows_and_disk_round_trip(tiny_clip, tmp_path, monkeypatch):
    h = _hier()
    calls = []
    first = load_bank(tiny_clip, h, cache_dir=tmp_path, progress=lambda d, t: calls.append((d, t)))
    assert isinstance(first, Bank) and first.embeddings.shape == (len(h), 32)
    assert (first.model_id, first.seek, first.vocabulary) == ("test-tiny/none", "definitions", "toy")
    assert calls[-1] == (len(h), len(h))
    i = h.index("dog.n.01")
    ref = encode_texts_padded([GLOSSES[0]], tiny_clip)[0]
    torch.testing.assert_close(first.embeddings[i], ref, atol=1e-5, rtol=0)
    files = list((tmp_path / "banks").glob("*.safetensors"))
    assert len(files) == 1

    from safetensors import safe_open

    with safe_open(files[0], "pt") as f:
        meta = f.metadata()
    assert meta["model_id"] == "test-tiny/none" and meta["seek"] == "definitions"

    bank_mod._BANKS.clear()  # force the disk path

    def boom(*args, **kwargs):
        raise AssertionError("re-encoded despite the disk cache")

    monkeypatch.setattr(bank_mod, "encode_texts_bucketed", boom)
    calls.clear()
    second = load_bank(tiny_clip, h, cache_dir=tmp_path, progress=lambda d, t: calls.append((d, t)))
    torch.testing.assert_close(second.embeddings, first.embeddings, rtol=0, atol=0)
    assert calls == [(len(h), len(h))]
    assert load_bank(tiny_clip, h, cache_dir=tmp_path) is second  # in-process cache


def test_lemmas_bank_differs(tiny_clip, tmp_path):
    h = _hier()
    d = load_bank(tiny_clip, h, "definitions", cache_dir=tmp_path)
    lem = load_bank(tiny_clip, h, "lemmas", cache_dir=tmp_path)
    assert lem.seek == "lemmas" and not torch.allclose(d.embeddings, lem.embeddings)
    assert len(list((tmp_path / "banks").glob("*.safetensors"))) == 2


def test_cache_key_depends_on_every_input():
    base = ("ViT-B-32/openai", "physical", "3.0", "definitions", ["a", "b"])
    keys = {bank_key(*base)[0],
            bank_key("ViT-B-16/openai", *base[1:])[0],
            bank_key(*base[:3], "lemmas", base[4])[0],
            bank_key(base[0], "nouns", *base[2:])[0],
            bank_key(*base[:2], "3.1", *base[3:])[0],
            bank_key(*base[:4], ["a", "c"])[0]}
    assert len(keys) == 6
    assert bank_key(*base) == bank_key(*base)


def test_corrupt_cache_file_is_recomputed(tiny_clip, tmp_path):
    h = _hier()
    key, _ = bank_key(tiny_clip.model_id, h.vocabulary, h.wordnet_version, "definitions", bank_texts(h))
    (tmp_path / "banks").mkdir()
    (tmp_path / "banks" / f"{key}.safetensors").write_bytes(b"not a safetensors file")
    bank_mod._BANKS.clear()
    b = load_bank(tiny_clip, h, cache_dir=tmp_path)
    torch.testing.assert_close(b.embeddings.norm(dim=-1), torch.ones(len(h)))


def test_empty_input_is_an_error(tiny_clip):
    with pytest.raises(ValueError, match="no texts"):
        encode_texts_bucketed([], tiny_clip)
