"""Which synset to query: vocabularies, class-name mapping files, WordNet ids, fallbacks.

A class whose synset is not in the vocabulary is either skipped or queried through its
nearest WordNet hypernym that is (``fallback="ancestor"``); either way the run reports it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from convis.eval.datasets import DataError, DataNotFoundError
from convis.concepts.hierarchy import Hierarchy

DATA = Path(__file__).resolve().parent / "data"
MAPPINGS = {"voc": DATA / "voc_synsets.tsv", "coco": DATA / "coco_synsets.tsv"}
FALLBACKS = ("skip", "ancestor")
_WNID = re.compile(r"^n(\d{8})$")


def load_mapping(spec: str) -> dict[str, str]:
    """Class name -> synset name from "voc", "coco" or a TSV file (`class<TAB>synset`, # comments)."""
    path = MAPPINGS.get(spec, Path(spec))
    if not path.is_file():
        raise DataNotFoundError(f"mapping {spec!r} not found; use voc, coco or a TSV file (class<TAB>synset)")
    out = {}
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.strip() and not line.startswith("#"):
            parts = line.split("\t")
            if len(parts) != 2:
                raise DataError(f"{path}:{n}: expected 'class<TAB>synset', got {line!r}")
            out[parts[0].strip()] = parts[1].strip()
    return out


def to_synset_name(key: str) -> str | None:
    """A synset name from a synset name or a WordNet noun id ("n01530575"); None if WordNet lacks it."""
    from nltk.corpus.reader.wordnet import WordNetError

    from convis.concepts.wordnet import wordnet_reader

    wn = wordnet_reader()
    try:
        m = _WNID.match(key)
        return wn.synset_from_pos_and_offset("n", int(m.group(1))).name() if m else wn.synset(key).name()
    except (WordNetError, ValueError):
        return None


def nearest_in_vocabulary(name: str, hierarchy: Hierarchy) -> str | None:
    """The synset itself if in the vocabulary, else its closest hypernym that is (breadth-first)."""
    if name in hierarchy:
        return name
    from convis.concepts.wordnet import wordnet_reader

    frontier, seen = [wordnet_reader().synset(name)], set()
    while frontier:
        found = sorted(s.name() for s in frontier if s.name() in hierarchy)
        if found:
            return found[0]
        seen.update(frontier)
        frontier = [h for s in frontier for h in s.hypernyms() if h not in seen]
    return None


@dataclass
class Resolution:
    """Class -> queried synset, and what was skipped or replaced, for the run's report."""

    queries: dict[str, str] = field(default_factory=dict)
    unknown: list[str] = field(default_factory=list)  # no such synset in WordNet
    missing: list[str] = field(default_factory=list)  # synset exists, not in the vocabulary
    replaced: dict[str, str] = field(default_factory=dict)  # class -> ancestor used instead

    def notes(self) -> list[str]:
        """Human-readable lines for the CLI."""
        out = []
        if self.unknown:
            out.append(f"{len(self.unknown)} class(es) map to no WordNet synset: {', '.join(self.unknown)}")
        if self.missing:
            out.append(f"{len(self.missing)} class(es) not in the vocabulary, skipped: "
                       f"{', '.join(self.missing)} "
                       "(use --fallback ancestor or a larger --vocabulary, e.g. nouns)")
        if self.replaced:
            pairs = ", ".join(f"{c} -> {s}" for c, s in self.replaced.items())
            out.append(f"{len(self.replaced)} class(es) queried through a hypernym: {pairs}")
        return out

    def to_dict(self) -> dict:
        return {"queries": self.queries, "unknown": self.unknown, "missing": self.missing,
                "replaced": self.replaced}


def resolve_classes(classes: Iterable[str], hierarchy: Hierarchy, mapping: dict[str, str] | None = None,
                    fallback: str = "skip") -> Resolution:
    """Map dataset classes to synsets of the vocabulary.

    Args:
        classes: class names (looked up in `mapping`) or, without a mapping, synset names/WordNet ids.
        hierarchy: the vocabulary queried.
        mapping: class name -> synset name; classes missing from it are reported as unknown.
        fallback: "skip" or "ancestor" for classes whose synset is not in the vocabulary.
    """
    if fallback not in FALLBACKS:
        raise DataError(f"unknown fallback {fallback!r}; use {' or '.join(FALLBACKS)}")
    res = Resolution()
    for c in sorted(set(classes)):
        key = mapping.get(c) if mapping is not None else c
        name = to_synset_name(key) if key else None
        if name is None:
            res.unknown.append(c)
        elif name in hierarchy:
            res.queries[c] = name
        elif fallback == "ancestor" and (up := nearest_in_vocabulary(name, hierarchy)):
            res.queries[c] = res.replaced[c] = up
        else:
            res.missing.append(c)
    return res
