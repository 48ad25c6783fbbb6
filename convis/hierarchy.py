"""The concept set T as a DAG: names, glosses, lemmas, parents inside T, subtrees, search.

Pure: no nltk and no file I/O. `convis.wordnet` builds it; `toy_hierarchy` builds small ones for tests.
"""

from __future__ import annotations

import bisect
import difflib
import functools
import itertools
import json
import re
from collections.abc import Sequence

import numpy as np

Key = int | str  # a node index, or anything `resolve` accepts
_OFFSET = re.compile(r"^n?0*(\d{1,8})(-n)?$")
_SENSE = re.compile(r"^(.+)\.([a-z])\.(\d+)$")


class UnknownConceptError(KeyError, ValueError):
    """A query matched no concept of the hierarchy; the message suggests close names."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


def _norm(text: str) -> str:
    return text.strip().lower().replace(" ", "_")


def _one_edit(word: str) -> set[str]:
    """Every string one delete, swap, replace or insert away from `word` (Norvig's speller)."""
    letters = "abcdefghijklmnopqrstuvwxyz_-"
    cuts = [(word[:i], word[i:]) for i in range(len(word) + 1)]
    deletes = {a + b[1:] for a, b in cuts if b}
    swaps = {a + b[1] + b[0] + b[2:] for a, b in cuts if len(b) > 1}
    replaces = {a + c + b[1:] for a, b in cuts if b for c in letters}
    return deletes | swaps | replaces | {a + c + b for a, b in cuts for c in letters}


def _reach(start: int, edges: Sequence[Sequence[int]]) -> set[int]:
    """`start` and every node reachable from it along `edges` (each visited once in a DAG)."""
    seen, stack = {start}, [start]
    while stack:
        for j in edges[stack.pop()]:
            if j not in seen:
                seen.add(j)
                stack.append(j)
    return seen


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
        kids: list[list[int]] = [[] for _ in range(n)]
        for i, ps in enumerate(self.parent_index):
            for p in ps:
                kids[p].append(i)
        self.child_index = tuple(tuple(k) for k in kids)
        self._topo = self._toposort()
        self._subtrees: dict[int, np.ndarray] = {}

    def _toposort(self) -> np.ndarray:
        pending = [len(k) for k in self.child_index]
        stack = [i for i, c in enumerate(pending) if c == 0]
        out: list[int] = []
        while stack:
            i = stack.pop()
            out.append(i)
            for p in self.parent_index[i]:
                pending[p] -= 1
                if pending[p] == 0:
                    stack.append(p)
        if len(out) != len(self.ids):
            raise ValueError("the parent relation has a cycle")
        return np.array(out, dtype=np.int64)

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

    def name(self, key: Key) -> str:
        """Synset name of a node."""
        return self.ids[self.index(key)]

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
        depth = np.zeros(len(self), dtype=np.int64)
        for i in self._topo[::-1]:  # parents first
            ps = self.parent_index[i]
            depth[i] = 1 + min(depth[p] for p in ps) if ps else 0
        return depth

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
            arr = np.array(sorted(_reach(i, self.child_index)), dtype=np.int64)
            arr.flags.writeable = False
            self._subtrees[i] = arr
        return self._subtrees[i]

    @functools.cached_property
    def _sizes(self) -> np.ndarray:
        sizes = np.zeros(len(self), dtype=np.int64)
        for i in range(len(self)):
            # i counts once in each of its ancestors: the cost is the total ancestor count, not T^2.
            sizes[list(_reach(i, self.parent_index))] += 1
        sizes.flags.writeable = False
        return sizes

    def subtree_sizes(self) -> np.ndarray:
        """(T,) int64, read-only: |hypo*(s)| for every node (a node with two routes up counts once)."""
        return self._sizes

    @functools.cached_property
    def _lemma_table(self) -> tuple[dict[str, list[int]], list[str], dict[str, int], dict[int, int]]:
        """Lemma -> ranked nodes, sorted lemma keys, lowercase name -> node, offset -> node."""
        by_lemma: dict[str, list[tuple[tuple, int]]] = {}
        for i, (name, lems) in enumerate(zip(self.ids, self._lemmas)):
            m = _SENSE.match(name)
            head, sense = (m.group(1).lower(), int(m.group(3))) if m else (name.lower(), 0)
            for pos, lem in enumerate(lems):
                key = lem.lower()
                # Rank: synsets named after the word first (dog.n.01), then by lemma position, sense.
                by_lemma.setdefault(key, []).append(((head != key, pos, sense, name), i))
        table = {k: [i for _, i in sorted(v)] for k, v in by_lemma.items()}
        lower = {n.lower(): i for i, n in enumerate(self.ids)}
        offsets = {int(o): i for i, o in enumerate(self.offsets)}
        return table, sorted(table), lower, offsets

    def _exact(self, query: str) -> list[int]:
        table, _, lower, offsets = self._lemma_table
        hits = []
        if (i := self._pos.get(query.strip(), lower.get(_norm(query)))) is not None:
            hits.append(i)
        if (m := _OFFSET.match(query.strip().lower())) and int(m.group(1)) in offsets:
            hits.append(offsets[int(m.group(1))])
        return hits + table.get(_norm(query), [])

    def resolve(self, query: str | int) -> str:
        """Synset name for a name ("dog.n.01"), an offset ("n02084071", 2084071) or a lemma ("dog").

        Raises:
            UnknownConceptError: nothing matches; the message lists close names.
        """
        hits = self._exact(str(query))
        if hits:
            return self.ids[hits[0]]
        raise UnknownConceptError(self._unknown_message(str(query)))

    def _unknown_message(self, query: str) -> str:
        table, keys, _, _ = self._lemma_table
        m = _SENSE.match(_norm(query))
        word = m.group(1) if m else _norm(query)
        # Typos one edit away first: swaps ("dgo" -> "dog"), then same first letter, then common words.
        close = sorted((k for k in _one_edit(word) if k in table and k != word),
                       key=lambda k: (sorted(k) != sorted(word), k[:1] != word[:1], len(k) != len(word) - 1,
                                       -len(table[k]), k))
        if len(close) < 3:
            # Length filter first: difflib over every lemma of 82k synsets would take seconds.
            pool = [k for k in keys if abs(len(k) - len(word)) <= 2]
            close += [k for k in difflib.get_close_matches(word, pool, n=3, cutoff=0.6) if k not in close]
        names = list(dict.fromkeys(self.ids[i] for k in close[:3] for i in table[k][:2]))[:4]
        what = "synset" if m else "concept"
        msg = f"unknown {what} {query!r} in vocabulary {self.vocabulary!r} ({len(self):,} concepts)"
        if names:
            return msg + "; did you mean " + ", ".join(repr(n) for n in names) + "?"
        return msg + "; try Hierarchy.search() or another vocabulary"

    def search(self, text: str, limit: int = 20) -> list[str]:
        """Ranked names: exact name/offset/lemma, then lemma-prefix, then lemma-substring matches."""
        q = _norm(text)
        if not q or limit <= 0:
            return []
        table, keys, _, _ = self._lemma_table
        out = dict.fromkeys(self._exact(text))
        lo, hi = bisect.bisect_left(keys, q), bisect.bisect_left(keys, q + "\uffff")
        # Shorter lemmas first: "dog" before "dogcart"; the cap bounds one-letter queries.
        for k in sorted(keys[lo:min(hi, lo + 4000)], key=len):
            if len(out) >= limit:
                break
            out.update(dict.fromkeys(table[k]))
        if len(out) < limit:
            blob, starts = self._lemma_blob
            for m in re.finditer(re.escape(q), blob):
                if len(out) >= limit:
                    break
                k = keys[bisect.bisect_right(starts, m.start()) - 1]
                out.update(dict.fromkeys(table[k]))
        return [self.ids[i] for i in list(out)[:limit]]

    @functools.cached_property
    def _lemma_blob(self) -> tuple[str, list[int]]:
        """All lemma keys in one string (substring search runs in C) and where each key starts."""
        keys = self._lemma_table[1]
        return "\n".join(keys), [0, *itertools.accumulate(len(k) + 1 for k in keys)][:-1]

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
