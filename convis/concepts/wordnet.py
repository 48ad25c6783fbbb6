"""The concept vocabularies built from WordNet, and their disk cache.

This module and `convis.concepts.nltk_data` (which finds and opens the corpus, offline first) are the only
ones that use nltk, and only inside functions: `import convis` stays fast and needs no corpus.
"""

from __future__ import annotations

import functools
import glob
import gzip
import hashlib
import inspect
import logging
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from convis.cache import LRU, read_cached, write_cached
from convis.concepts.nltk_data import WordNetUnavailableError, wordnet_reader
from convis.config import cache_root
from convis.errors import UserError
from convis.concepts.hierarchy import Hierarchy

_log = logging.getLogger(__name__)


class VocabularyError(UserError, ValueError):
    """An unknown vocabulary name, or a list file with an entry WordNet cannot place."""


class VocabularyFileError(UserError, FileNotFoundError):
    """A wordlist:PATH or synsets:PATH file that does not exist."""

# Re-exported: callers import the reader, its error and the cache root from here.
__all__ = ["LISTS", "WordNetUnavailableError", "build_hierarchy", "load_hierarchy", "register_vocabulary", "vocabularies",
           "wordnet_reader"]

# Named synset lists, registered by their users (the evaluation registers its synthetic world's).
LISTS: dict[str, Path] = {}


def register_vocabulary(name: str, synset_list: Path) -> None:
    """Offer a synset list file (see `read_synset_list`) as the vocabulary `name`."""
    LISTS[name] = Path(synset_list)


def vocabularies() -> tuple[str, ...]:
    """The vocabulary names `load_hierarchy` takes (PATH = a file of yours)."""
    return ("physical", "wordlist:PATH", "synsets:PATH", "nouns", *LISTS)


def _semcor_counts(wn: Any) -> dict[str, int]:
    """Sense key -> SemCor count, read once: nltk's `Lemma.count()` bisects the file per call (20 s)."""
    with wn.open("cntlist.rev") as fh:
        return {key: int(rest.rsplit(" ", 1)[-1]) for key, _, rest in (ln.partition(" ") for ln in fh)}


def _closure(start: list[Any], step: Callable[[Any], list[Any]]) -> set[Any]:
    """`start` and everything reachable from it by repeated `step`."""
    seen, stack = set(start), list(start)
    while stack:
        for x in step(stack.pop()):
            if x not in seen:
                seen.add(x)
                stack.append(x)
    return seen


def _physical(wn: Any) -> dict[Any, list[Any]]:
    """Hyponyms of physical_entity.n.01 seen in SemCor (count >= 1), closed under hypernyms."""
    counts = _semcor_counts(wn)
    # hyponyms() only: instances (proper nouns) stay out. The root has count 0 either way.
    pool = _closure([wn.synset("physical_entity.n.01")], lambda s: s.hyponyms())
    kept = [s for s in pool if sum(counts.get(lem.key(), 0) for lem in s.lemmas()) >= 1]
    nodes = _closure(kept, lambda s: s.hypernyms())
    _log.info("physical: %d synsets seen in SemCor, %d after hypernym closure", len(kept), len(nodes))
    return {s: [h for h in s.hypernyms() if h in nodes] for s in nodes}


def _wordlist(wn: Any, words: list[str]) -> dict[Any, list[Any]]:
    """The paper's rule: every noun sense of every word, every hypernyms() path up to entity.n.01.

    Words go to `wn.synsets` as written (it lowercases and applies morphy; a space is not an
    underscore, so "dune buggy" finds nothing): this reproduces the paper's |T| = 7,080.
    """
    reaches: dict[Any, bool] = {}  # synset -> has a hypernyms()-only path to entity.n.01
    parents: dict[Any, list[Any]] = {}

    def climb(s: Any) -> bool:  # recursion depth <= WordNet depth (~20)
        if s not in reaches:
            hs = [h for h in s.hypernyms() if climb(h)]
            # Instance-only synsets have no hypernyms(): they drop out with their edges.
            reaches[s] = bool(hs) or s.name() == "entity.n.01"
            if reaches[s]:
                parents[s] = hs
        return reaches[s]

    for word in words:
        for s in wn.synsets(word, pos="n"):
            climb(s)
    return parents


def _nouns(wn: Any) -> dict[Any, list[Any]]:
    """Every noun synset; instances hang under their classes."""
    return {s: s.hypernyms() + s.instance_hypernyms() for s in wn.all_synsets("n")}


@functools.cache
def _rule_hash(*rules: Callable[..., Any]) -> str:
    """Hash of the code that builds a vocabulary: a changed build rule misses the old disk cache."""
    code = "".join(inspect.getsource(f) for f in (*rules, build_hierarchy, _closure))
    return hashlib.sha1(code.encode()).hexdigest()[:8]


def _resolve_vocabulary(vocabulary: str) -> tuple[str, Path | None, str]:
    """(stored name, list file or None, cache key). The cache key holds a hash of the build rule
    and lists also a hash of their content, so an edited rule or list is rebuilt:
    "physical~r<rule>", "wordlist:<basename>@<sha1[:10]>~r<rule>"."""
    if vocabulary in ("physical", "nouns"):
        rules = (_physical, _semcor_counts) if vocabulary == "physical" else (_nouns,)
        return vocabulary, None, f"{vocabulary}~r{_rule_hash(*rules)}"
    if vocabulary in LISTS:
        path = LISTS[vocabulary]
        name = f"{vocabulary}@{hashlib.sha1(path.read_bytes()).hexdigest()[:10]}"
        return vocabulary, path, f"{name}~r{_rule_hash(_synsets, read_synset_list)}"
    kind, sep, rest = vocabulary.partition(":")
    if not sep or kind not in ("wordlist", "synsets"):
        choices = ", ".join(map(repr, vocabularies()))
        raise VocabularyError(f"unknown vocabulary {vocabulary!r}; choose one of {choices}")
    path = Path(rest).expanduser()
    if not path.is_file():
        what = "one noun per line" if kind == "wordlist" else "one synset name (dog.n.01) per line, # comments"
        raise VocabularyFileError(f"{kind} file {str(path)!r} (vocabulary {vocabulary!r}) does not exist; "
                                f"give a UTF-8 text file with {what}")
    name = f"{kind}:{path.name}@{hashlib.sha1(path.read_bytes()).hexdigest()[:10]}"
    rules = (_wordlist,) if kind == "wordlist" else (_synsets, read_synset_list)
    return name, path, f"{name}~r{_rule_hash(*rules)}"


def read_synset_list(path: Path) -> list[str]:
    """Synset names of a list file: one per line, `#` starts a comment, blank lines skipped."""
    lines = (ln.split("#")[0].strip() for ln in path.read_text(encoding="utf-8-sig").splitlines())
    return [ln for ln in lines if ln]


def _synsets(wn: Any, path: Path) -> dict[Any, list[Any]]:
    """The listed synsets closed under hypernyms() (instances have none: they are refused)."""
    from nltk.corpus.reader.wordnet import WordNetError

    start = []
    for name in read_synset_list(path):
        try:
            s = wn.synset(name)
        except (WordNetError, ValueError):
            lemma = name.split(".")[0]
            near = [x.name() for x in wn.synsets(lemma, pos="n")][:3]
            hint = f"; did you mean {' or '.join(map(repr, near))}?" if near else ""
            raise VocabularyError(f"{path.name}: unknown synset {name!r}{hint}") from None
        if s.pos() != "n" or not (s.hypernyms() or s.name() == "entity.n.01"):
            raise VocabularyError(f"{path.name}: {name!r} is not a noun class under entity.n.01 (an instance "
                             "or another part of speech); list its class instead")
        start.append(s)
    parents: dict[Any, list[Any]] = {}  # filled depth-first: the same order on every run
    stack = start[::-1]
    while stack:
        s = stack.pop()
        if s not in parents:
            parents[s] = s.hypernyms()
            stack.extend(parents[s])
    return parents


def build_hierarchy(vocabulary: str = "physical") -> Hierarchy:
    """Build a vocabulary from WordNet (slow: seconds; use `load_hierarchy` for the cached one).

    Args:
        vocabulary: "physical" (default), "nouns" (all 82,115 noun synsets), "wordlist:PATH" (the
            paper's rule: every noun sense of every word, with its hypernyms), "synsets:PATH" (the
            listed synsets with their hypernyms) or a registered list (`register_vocabulary`).
    """
    name, path, _ = _resolve_vocabulary(vocabulary)
    wn = wordnet_reader()
    if path is None:
        parents = (_physical if name == "physical" else _nouns)(wn)
    elif name.startswith("wordlist:"):
        words = [w.strip() for w in path.read_text(encoding="utf-8-sig").splitlines() if w.strip()]
        parents = _wordlist(wn, words)
        if not parents:
            raise VocabularyError(f"no word of {str(path)!r} is a WordNet noun with a path to entity.n.01")
    else:  # synsets:PATH or a built-in list
        parents = _synsets(wn, path)
    nodes = list(parents)
    pos = {s: i for i, s in enumerate(nodes)}
    return Hierarchy([s.name() for s in nodes], [s.offset() for s in nodes],
                     [s.definition() for s in nodes], [tuple(s.lemma_names()) for s in nodes],
                     [[pos[p] for p in parents[s]] for s in nodes], name, wn.get_version())


_LOADED: LRU[tuple[str, str], Hierarchy] = LRU(max_items=4)  # in-process cache: (cache key, cache dir)


def load_hierarchy(vocabulary: str = "physical", cache_dir: Path | None = None) -> Hierarchy:
    """The vocabulary's hierarchy, from memory, else from `<cache>/hierarchy/`, else built.

    A disk hit does not touch nltk. List files are keyed by a hash of their content. The disk
    cache follows the bank's policy: an unreadable or old-format file is rebuilt (with a warning),
    and a cache that cannot be written serves from memory (with a warning).

    Args:
        vocabulary: see `build_hierarchy`.
        cache_dir: convis cache root; defaults to `cache_root()`.
    """
    cache_key = _resolve_vocabulary(vocabulary)[2]
    folder = Path(cache_dir or cache_root()).expanduser() / "hierarchy"
    key = (cache_key, str(folder))
    if key in _LOADED:
        return _LOADED[key]
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "-", cache_key)
    # The WordNet version is only known after loading nltk, so match it with a glob.
    found = sorted(folder.glob(f"{glob.escape(safe)}-wn*.json.gz"), key=lambda p: p.stat().st_mtime)
    hier = read_cached(found[-1], _read_gz, "hierarchy") if found else None
    if hier is None:
        hier = build_hierarchy(vocabulary)
        target = folder / f"{safe}-wn{hier.wordnet_version}.json.gz"
        if write_cached(target, lambda tmp: _write_gz(hier, tmp), "hierarchy"):
            _log.info("built %r, cached at %s", hier, target)
    _LOADED[key] = hier
    return hier


def _read_gz(path: Path) -> Hierarchy:
    with gzip.open(path, "rb") as fh:
        return Hierarchy.from_json(fh.read())


def _write_gz(hier: Hierarchy, path: Path) -> None:
    with gzip.open(path, "wb", compresslevel=6) as fh:
        fh.write(hier.to_json().encode("utf-8"))
