"""Name, offset and lemma lookup over a Hierarchy's nodes: exact hits, ranked search, "did you mean".

Private to `convis.concepts.hierarchy`: a `Hierarchy` builds one `Lookup` on its first query. Every query
costs bounded time and memory whatever its length: a query longer than the longest lemma cannot
be one edit from a lemma or inside one, so it gets no suggestions and no prefix or substring hits
(one-edit candidates grow with the square of the length: 16,000 characters took 12 GB).
"""

from __future__ import annotations

import bisect
import difflib
import functools
import itertools
import re
from collections.abc import Mapping, Sequence

_OFFSET = re.compile(r"^n?0*(\d{1,8})(-n)?$")
_SENSE = re.compile(r"^(.+)\.([a-z])\.(\d+)$")


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


class Lookup:
    """Lemma table of one hierarchy; answers are node indices.

    Args:
        ids: synset names in node order.  lemmas: per node, its lemma names.
        offsets: per node, its WordNet offset.  pos: synset name -> node index.
    """

    def __init__(self, ids: Sequence[str], lemmas: Sequence[Sequence[str]], offsets: Sequence[int],
                 pos: Mapping[str, int]) -> None:
        self._pos = pos
        by_lemma: dict[str, list[tuple[tuple, int]]] = {}
        for i, (name, lems) in enumerate(zip(ids, lemmas)):
            m = _SENSE.match(name)
            head, sense = (m.group(1).lower(), int(m.group(3))) if m else (name.lower(), 0)
            for rank, lem in enumerate(lems):
                key = lem.lower()
                # Rank: synsets named after the word first (dog.n.01), then by lemma position, sense.
                by_lemma.setdefault(key, []).append(((head != key, rank, sense, name), i))
        self._table = {k: [i for _, i in sorted(v)] for k, v in by_lemma.items()}
        self._keys = sorted(self._table)
        self._longest = max(map(len, self._keys), default=0)
        self._lower = {n.lower(): i for i, n in enumerate(ids)}
        self._offsets = {int(o): i for i, o in enumerate(offsets)}

    def exact(self, query: str) -> list[int]:
        """Nodes matching `query` as a name (any case), an offset ("n02084071") or a lemma, in rank order."""
        hits = []
        if (i := self._pos.get(query.strip(), self._lower.get(_norm(query)))) is not None:
            hits.append(i)
        if (m := _OFFSET.match(query.strip().lower())) and int(m.group(1)) in self._offsets:
            hits.append(self._offsets[int(m.group(1))])
        return hits + self._table.get(_norm(query), [])

    def suggest(self, query: str) -> list[int]:
        """Up to 4 nodes whose lemmas are close to `query` (a typo of a name or a lemma)."""
        table = self._table
        if len(query) > 2 * self._longest + 16:  # no lemma is near it; _norm would copy it
            return []
        m = _SENSE.match(_norm(query))
        word = m.group(1) if m else _norm(query)
        if len(word) > self._longest + 1:  # more than one edit from every lemma
            return []
        # Typos one edit away first: swaps ("dgo" -> "dog"), then same first letter, then common words.
        close = sorted((k for k in _one_edit(word) if k in table and k != word),
                       key=lambda k: (sorted(k) != sorted(word), k[:1] != word[:1], len(k) != len(word) - 1,
                                      -len(table[k]), k))
        if len(close) < 3:
            # Length filter first: difflib over every lemma of 82k synsets would take seconds.
            pool = [k for k in self._keys if abs(len(k) - len(word)) <= 2]
            close += [k for k in difflib.get_close_matches(word, pool, n=3, cutoff=0.6) if k not in close]
        return list(dict.fromkeys(i for k in close[:3] for i in table[k][:2]))[:4]

    def search(self, text: str, limit: int) -> list[int]:
        """Ranked nodes: exact name/offset/lemma, then lemma-prefix, then lemma-substring matches."""
        q = _norm(text)
        if not q or limit <= 0:
            return []
        table, keys = self._table, self._keys
        out = dict.fromkeys(self.exact(text))
        if len(q) > self._longest:  # no lemma starts with it or contains it
            return list(out)[:limit]
        lo, hi = bisect.bisect_left(keys, q), bisect.bisect_left(keys, q + "\uffff")
        # Shorter lemmas first: "dog" before "dogcart"; the cap bounds one-letter queries.
        for k in sorted(keys[lo:min(hi, lo + 4000)], key=len):
            if len(out) >= limit:
                break
            out.update(dict.fromkeys(table[k]))
        if len(out) < limit:
            blob, starts = self._blob
            for m in re.finditer(re.escape(q), blob):
                if len(out) >= limit:
                    break
                k = keys[bisect.bisect_right(starts, m.start()) - 1]
                out.update(dict.fromkeys(table[k]))
        return list(out)[:limit]

    @functools.cached_property
    def _blob(self) -> tuple[str, list[int]]:
        """All lemma keys in one string (substring search runs in C) and where each key starts."""
        return "\n".join(self._keys), [0, *itertools.accumulate(len(k) + 1 for k in self._keys)][:-1]


def is_sense_name(query: str) -> bool:
    """Whether `query` looks like a synset name ("dog.n.01") rather than a word."""
    return _SENSE.match(_norm(query)) is not None
