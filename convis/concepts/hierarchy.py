"""The concept set T as a DAG: names, glosses, lemmas, parents inside T, subtrees, search.

Pure: no nltk and no file I/O. `convis.concepts.wordnet` builds it; `toy_hierarchy` builds small ones for tests.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence

import numpy as np

from convis.concepts import dag as _dag
from convis.concepts.lookup import Lookup, is_sense_name
from convis.errors import UserError

Key = int | str  # a node index, or anything `resolve` accepts


class UnknownConceptError(UserError, KeyError, ValueError):
    """A query matched no concept of the hierarchy; the message suggests close names."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


class Hierarchy:
    """Concepts T with their hypernym DAG restricted to T, nodes sorted by synset name.

    Attributes (read-only by convention; tuples and read-only arrays):
        ids: synset names; position = node index. Row i of every field is `ids[i]`.
        offsets: (T,) int64 WordNet noun offsets.  glosses: WordNet definitions.
        parent_index: per node, its parents inside T (first = main hypernym, used by `path_to_root`).
        child_index: per node, its children inside T, ascending (= sorted by name).
        vocabulary, wordnet_version: where T came from (they key caches).
    """

    def __init__(self, ids: Sequence[str], offsets: Sequence[int], glosses: Sequence[str],
                 lemmas: Sequence[Sequence[str]], parents: Sequence[Sequence[int]],
                 vocabulary: str = "", wordnet_version: str = "") -> None:
        n = len(ids)
        if not n == len(offsets) == len(glosses) == len(lemmas) == len(parents):
            raise ValueError("ids, offsets, glosses, lemmas and parents must have the same length")
        order = sorted(range(n), key=ids.__getitem__)
        new = {old: i for i, old in enumerate(order)}
        self.ids = tuple(ids[o] for o in order)
        self.offsets = np.array([offsets[o] for o in order], dtype=np.int64)
        self.offsets.flags.writeable = False
        self.glosses = tuple(glosses[o] for o in order)
        self._lemmas = tuple(tuple(lemmas[o]) for o in order)
        # Parent order is kept: the first parent defines `path_to_root`.
        self.parent_index = tuple(tuple(dict.fromkeys(new[p] for p in parents[o])) for o in order)
        self.vocabulary, self.wordnet_version = vocabulary, wordnet_version
        self._pos = {name: i for i, name in enumerate(self.ids)}
        if len(self._pos) != n:
            raise ValueError("duplicate synset names")
        self.child_index = _dag.invert(self.parent_index)
        self._topo = _dag.toposort(self.parent_index, self.child_index)
        self._subtrees: dict[int, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self.ids)

    def __repr__(self) -> str:
        return f"Hierarchy({self.vocabulary!r}, {len(self):,} concepts, WordNet {self.wordnet_version})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Hierarchy) and self.to_dict() == other.to_dict()

    __hash__ = None  # type: ignore[assignment]  # mutable caches inside; equality is by value

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and key in self._pos

    def index(self, key: Key) -> int:
        """Node index of a name, offset or lemma (see `resolve`); ints are range-checked."""
        if isinstance(key, (int, np.integer)):
            if not 0 <= key < len(self.ids):
                raise IndexError(f"node index {key} out of range for {len(self):,} concepts")
            return int(key)
        i = self._pos.get(key)
        return self._pos[self.resolve(key)] if i is None else i

    def gloss(self, key: Key) -> str:
        """WordNet definition of a node."""
        return self.glosses[self.index(key)]

    def lemmas(self, key: Key) -> tuple[str, ...]:
        """Lemma names of a node (underscores as in WordNet)."""
        return self._lemmas[self.index(key)]

    def parents(self, key: Key) -> list[str]:
        """Names of the node's parents inside T."""
        return [self.ids[p] for p in self.parent_index[self.index(key)]]

    def children(self, key: Key) -> list[str]:
        """Names of the node's children inside T, sorted."""
        return [self.ids[c] for c in self.child_index[self.index(key)]]

    @property
    def roots(self) -> list[str]:
        """Nodes without parents in T."""
        return [n for n, p in zip(self.ids, self.parent_index) if not p]

    @property
    def leaves(self) -> list[str]:
        """Nodes without children in T."""
        return [n for n, c in zip(self.ids, self.child_index) if not c]

    def topological_order(self) -> np.ndarray:
        """All node indices, every child before each of its parents."""
        return self._topo.copy()

    @functools.cached_property
    def _depths(self) -> np.ndarray:
        return _dag.depths(self._topo, self.parent_index)

    def depth(self, key: Key) -> int:
        """Length of the shortest path to a root (roots have 0)."""
        return int(self._depths[self.index(key)])

    def path_to_root(self, key: Key) -> list[str]:
        """Names from a root down to the node, following first parents."""
        i, path = self.index(key), []
        while True:
            path.append(self.ids[i])
            if not self.parent_index[i]:
                return path[::-1]
            i = self.parent_index[i][0]

    def subtree(self, key: Key) -> np.ndarray:
        """Sorted indices of the node and all its descendants in T (hypo*), read-only, cached."""
        i = self.index(key)
        if i not in self._subtrees:
            arr = np.array(sorted(_dag.reach(i, self.child_index)), dtype=np.int64)
            arr.flags.writeable = False
            self._subtrees[i] = arr
        return self._subtrees[i]

    @functools.cached_property
    def _sizes(self) -> np.ndarray:
        return _dag.subtree_sizes(self.parent_index)

    def subtree_sizes(self) -> np.ndarray:
        """(T,) int64, read-only: |hypo*(s)| for every node (a node with two routes up counts once)."""
        return self._sizes

    @functools.cached_property
    def _lookup(self) -> Lookup:
        # Built on the first query: loading a cached vocabulary should not pay for the lemma table.
        return Lookup(self.ids, self._lemmas, self.offsets, self._pos)

    def resolve(self, query: str | int) -> str:
        """Synset name for a name ("dog.n.01"), an offset ("n02084071", 2084071) or a lemma ("dog").

        Raises:
            UnknownConceptError: nothing matches; the message lists close names.
        """
        query = str(query)
        hits = self._lookup.exact(query)
        if hits:
            return self.ids[hits[0]]
        names = [self.ids[i] for i in self._lookup.suggest(query)]
        what = "synset" if is_sense_name(query) else "concept"
        msg = f"unknown {what} {query!r} in vocabulary {self.vocabulary!r} ({len(self):,} concepts)"
        if names:
            raise UnknownConceptError(msg + "; did you mean " + ", ".join(repr(n) for n in names) + "?")
        raise UnknownConceptError(msg + "; try Hierarchy.search() or another vocabulary")

    def search(self, text: str, limit: int = 20) -> list[str]:
        """Ranked names: exact name/offset/lemma, then lemma-prefix, then lemma-substring matches."""
        return [self.ids[i] for i in self._lookup.search(text, limit)]

    def to_dict(self) -> dict:
        """Plain, JSON-ready dict (lemmas joined by spaces: WordNet lemma names have none)."""
        return {"format": 1, "vocabulary": self.vocabulary, "wordnet_version": self.wordnet_version,
                "ids": list(self.ids), "offsets": self.offsets.tolist(), "glosses": list(self.glosses),
                "lemmas": [" ".join(lems) for lems in self._lemmas],
                "parents": [list(p) for p in self.parent_index]}

    @classmethod
    def from_dict(cls, d: dict) -> Hierarchy:
        """Inverse of `to_dict`."""
        if d.get("format") != 1:
            raise ValueError(f"unsupported hierarchy format {d.get('format')!r}")
        return cls(d["ids"], d["offsets"], d["glosses"], [tuple(x.split()) for x in d["lemmas"]],
                   d["parents"], d["vocabulary"], d["wordnet_version"])

    def to_json(self) -> str:
        """Compact JSON string."""
        return json.dumps(self.to_dict(), separators=(",", ":"), ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str | bytes) -> Hierarchy:
        """Inverse of `to_json`."""
        return cls.from_dict(json.loads(text))


def toy_hierarchy(spec: dict[str, list[str]], glosses: dict[str, str] | None = None,
                  vocabulary: str = "toy") -> Hierarchy:
    """A small hierarchy for tests: `{"animal.n.01": ["entity.n.01"], ...}` (name -> parent names).

    Parents missing from `spec` become roots. Lemmas come from the name ("hot_dog.n.01" ->
    "hot_dog"), offsets are 1000 + position in sorted order, glosses default to "a <lemma>".
    """
    spec = {**{p: [] for ps in spec.values() for p in ps}, **spec}
    ids = sorted(spec)
    pos = {n: i for i, n in enumerate(ids)}
    heads = [n.split(".")[0] for n in ids]
    glosses = glosses or {}
    return Hierarchy(ids, [1000 + i for i in range(len(ids))],
                     [glosses.get(n, f"a {h.replace('_', ' ')}") for n, h in zip(ids, heads)],
                     [(h,) for h in heads], [[pos[p] for p in spec[n]] for n in ids], vocabulary, "toy")
