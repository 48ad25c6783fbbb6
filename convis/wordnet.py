"""WordNet access (the only nltk import) and the concept vocabularies built from it.

WordNet is resolved offline first: nltk data if present, else a copy made earlier in the cache,
else the Debian `wordnet-base` + `wordnet-sense-index` files copied into the cache, else a download
when the network is allowed.
"""

from __future__ import annotations

import functools
import glob
import gzip
import hashlib
import logging
import os
import re
import shutil
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from convis.hierarchy import Hierarchy

_log = logging.getLogger(__name__)

VOCABULARIES = ("physical", "wordlist:PATH", "nouns")

# Debian drops `lexnames` (README.Debian); nltk needs it. Order = lexicographer file number.
_LEXNAMES = (
    "adj.all adj.pert adv.all noun.Tops noun.act noun.animal noun.artifact noun.attribute noun.body "
    "noun.cognition noun.communication noun.event noun.feeling noun.food noun.group noun.location "
    "noun.motive noun.object noun.person noun.phenomenon noun.plant noun.possession noun.process "
    "noun.quantity noun.relation noun.shape noun.state noun.substance noun.time verb.body verb.change "
    "verb.cognition verb.communication verb.competition verb.consumption verb.contact verb.creation "
    "verb.emotion verb.motion verb.perception verb.possession verb.social verb.stative verb.weather "
    "adj.ppl"
).split()
_CATEGORY = {"noun": 1, "verb": 2, "adj": 3, "adv": 4}


class WordNetUnavailableError(RuntimeError):
    """WordNet 3.0 could not be found or fetched."""


def cache_root() -> Path:
    """The convis cache folder: `$CONVIS_CACHE` or `~/.cache/convis`."""
    return Path(os.environ.get("CONVIS_CACHE") or "~/.cache/convis").expanduser()


def _offline() -> bool:
    return any(os.environ.get(k, "") not in ("", "0") for k in ("HF_HUB_OFFLINE", "CONVIS_OFFLINE"))


def _install_debian(src: Path, nltk_data: Path) -> bool:
    """Copy Debian WordNet files into an nltk data tree (nltk 3.10 refuses symlinks and /tmp)."""
    if not ((src / "data.noun").is_file() and (src / "index.sense").is_file()):
        return False
    dst = nltk_data / "corpora" / "wordnet"
    if not (dst / "lexnames").is_file():
        dst.mkdir(parents=True, exist_ok=True)
        for f in src.iterdir():
            if f.is_file() and not f.name.startswith("."):
                shutil.copyfile(f, dst / f.name)
        lines = [f"{i:02d}\t{n}\t{_CATEGORY[n.split('.')[0]]}\n" for i, n in enumerate(_LEXNAMES)]
        # Written last: its presence marks a complete copy.
        (dst / "lexnames").write_text("".join(lines))
        _log.info("copied WordNet from %s into %s", src, dst)
    return True


def _find_nltk_wordnet() -> Any | None:
    import nltk

    try:
        return nltk.data.find("corpora/wordnet")
    except LookupError:
        return None


@functools.cache
def wordnet_reader() -> Any:
    """The nltk WordNet reader, resolved offline first (see the module docstring).

    Raises:
        WordNetUnavailableError: no route worked; the message names the fixes.
    """
    import nltk
    from nltk.corpus.reader.wordnet import WordNetCorpusReader

    root, nltk_data = _find_nltk_wordnet(), cache_root() / "nltk_data"
    debian = Path(os.environ.get("CONVIS_WORDNET_DIR") or "/usr/share/wordnet")
    wn_dir = nltk_data / "corpora" / "wordnet"
    routes = (  # each returns True when it left a WordNet under nltk_data
        lambda: (wn_dir / "lexnames").is_file() or wn_dir.with_suffix(".zip").is_file(),  # earlier run
        lambda: _install_debian(debian, nltk_data),
        lambda: not _offline() and _download(nltk_data),
    )
    for route in routes:
        if root is None and route():
            if str(nltk_data) not in nltk.data.path:
                nltk.data.path.insert(0, str(nltk_data))
            root = _find_nltk_wordnet()
    if root is None:
        raise WordNetUnavailableError(
            "WordNet 3.0 not found. Fix: `apt-get install wordnet-base wordnet-sense-index` "
            "(or set CONVIS_WORDNET_DIR to a folder with data.noun and index.sense), "
            "or `python -m nltk.downloader wordnet` when online."
        )
    with warnings.catch_warnings():
        # No OMW (multilingual) data is needed; nltk warns about it on every construction.
        warnings.filterwarnings("ignore", message=".*multilingual functions.*")
        reader = WordNetCorpusReader(root, None)
    _log.info("WordNet %s from %s", reader.get_version(), root)
    return reader


def _download(nltk_data: Path) -> bool:
    import nltk

    _log.info("downloading WordNet into %s", nltk_data)
    try:
        return bool(nltk.download("wordnet", download_dir=str(nltk_data), quiet=True))
    except Exception as exc:  # noqa: BLE001 - any network failure means "not available"
        _log.warning("WordNet download failed: %s", exc)
        return False


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


def _resolve_vocabulary(vocabulary: str) -> tuple[str, Path | None]:
    """(stored name, word-list path or None); a word list is named "wordlist:<basename>@<sha1[:10]>"."""
    if vocabulary in ("physical", "nouns"):
        return vocabulary, None
    if not vocabulary.startswith("wordlist:"):
        choices = ", ".join(map(repr, VOCABULARIES))
        raise ValueError(f"unknown vocabulary {vocabulary!r}; choose one of {choices}")
    path = Path(vocabulary.split(":", 1)[1]).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"word list {str(path)!r} (vocabulary {vocabulary!r}) does not exist; "
                                "give a UTF-8 text file with one noun per line")
    # The content hash keys the caches, so an edited list is rebuilt.
    return f"wordlist:{path.name}@{hashlib.sha1(path.read_bytes()).hexdigest()[:10]}", path


def build_hierarchy(vocabulary: str = "physical") -> Hierarchy:
    """Build a vocabulary from WordNet (slow: seconds; use `load_hierarchy` for the cached one).

    Args:
        vocabulary: "physical" (default), "nouns" (all 82,115 noun synsets) or "wordlist:PATH".
    """
    name, path = _resolve_vocabulary(vocabulary)
    wn = wordnet_reader()
    if path is not None:
        words = [w.strip() for w in path.read_text(encoding="utf-8-sig").splitlines() if w.strip()]
        parents = _wordlist(wn, words)
        if not parents:
            raise ValueError(f"no word of {str(path)!r} is a WordNet noun with a path to entity.n.01")
    else:
        parents = (_physical if name == "physical" else _nouns)(wn)
    nodes = list(parents)
    pos = {s: i for i, s in enumerate(nodes)}
    return Hierarchy([s.name() for s in nodes], [s.offset() for s in nodes],
                     [s.definition() for s in nodes], [tuple(s.lemma_names()) for s in nodes],
                     [[pos[p] for p in parents[s]] for s in nodes], name, wn.get_version())


_LOADED: dict[tuple[str, str], Hierarchy] = {}  # in-process cache: (stored name, cache dir)


def load_hierarchy(vocabulary: str = "physical", cache_dir: Path | None = None) -> Hierarchy:
    """The vocabulary's hierarchy, from memory, else from `<cache>/hierarchy/`, else built.

    A disk hit does not touch nltk. Word lists are keyed by a hash of their content.

    Args:
        vocabulary: see `build_hierarchy`.
        cache_dir: convis cache root; defaults to `cache_root()`.
    """
    name = _resolve_vocabulary(vocabulary)[0]
    folder = Path(cache_dir or cache_root()).expanduser() / "hierarchy"
    key = (name, str(folder))
    if key in _LOADED:
        return _LOADED[key]
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "-", name)
    # The WordNet version is only known after loading nltk, so match it with a glob.
    found = sorted(folder.glob(f"{glob.escape(safe)}-wn*.json.gz"), key=lambda p: p.stat().st_mtime)
    if found:
        with gzip.open(found[-1], "rb") as fh:
            hier = Hierarchy.from_json(fh.read())
        _log.info("loaded %r from %s", hier, found[-1])
    else:
        hier = build_hierarchy(vocabulary)
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / f"{safe}-wn{hier.wordnet_version}.json.gz"
        tmp = target.with_suffix(f".{os.getpid()}.tmp")
        with gzip.open(tmp, "wb", compresslevel=6) as fh:
            fh.write(hier.to_json().encode("utf-8"))
        os.replace(tmp, target)  # atomic: a concurrent reader never sees half a file
        _log.info("built %r, cached at %s", hier, target)
    _LOADED[key] = hier
    return hier

