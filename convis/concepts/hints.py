"""Help for names that are in WordNet but not in the concept set T.

`tabby.n.01` is a WordNet noun, but the "physical" vocabulary does not hold it; its nearest
hypernym that T holds is `domestic_cat.n.01`. Saying so (and offering the word as free text)
helps more than spelling suggestions, which come after. Uses the WordNet door (`convis.concepts.wordnet`).
"""

from __future__ import annotations

import functools
from typing import Any

from convis.concepts.hierarchy import Hierarchy, UnknownConceptError
from convis.concepts.wordnet import WordNetUnavailableError, wordnet_reader


@functools.cache
def _reader_or_none() -> Any | None:
    """WordNet, or None for good: hints are optional, and the app asks on every search keystroke, so a
    missing WordNet must not be looked for (or downloaded) again each time."""
    try:
        return wordnet_reader()
    except WordNetUnavailableError:
        return None


def _wordnet_synset(name: str, hierarchy: Hierarchy, wn: Any) -> Any | None:
    """The WordNet noun synset a query names ("tabby.n.01", "tabby", "hot dog": its first sense)."""
    from nltk.corpus.reader.wordnet import WordNetError

    query = name.strip().lower().replace(" ", "_")
    if not query:
        return None
    try:
        if query.count(".") >= 2:
            s = wn.synset(query)
            return s if s.pos() == "n" else None
        senses = wn.synsets(query, pos="n")
    except (WordNetError, ValueError):
        return None
    # A word with a sense in T resolves there already: no hint (dog -> dog.n.01, not dog.n.03).
    return None if any(s.name() in hierarchy for s in senses) else next(iter(senses), None)


def nearest_hypernym_in(synset: Any, hierarchy: Hierarchy) -> str | None:
    """The closest ancestor of a WordNet synset (hypernyms and instance hypernyms, breadth first)
    that the hierarchy holds; None if none does."""
    level, seen = [synset], {synset}
    while level:
        nxt = []
        for s in level:
            for h in s.hypernyms() + s.instance_hypernyms():
                if h.name() in hierarchy:
                    return h.name()
                if h not in seen:
                    seen.add(h)
                    nxt.append(h)
        level = nxt
    return None


def suggest_in_vocabulary(name: str, hierarchy: Hierarchy) -> str | None:
    """For a name in WordNet but not in T, the nearest hypernym that T holds.

    Args:
        name: a synset name ("tabby.n.01") or a word ("tabby").
        hierarchy: the concept set T.

    Returns:
        A synset name of T ("domestic_cat.n.01" for "tabby.n.01" in "physical"), or None when the
        name is in T, is not a WordNet noun, or WordNet is not available.
    """
    hint = wordnet_hint(name, hierarchy)
    return hint[1] if hint else None


def wordnet_hint(name: str, hierarchy: Hierarchy) -> tuple[str, str] | None:
    """(WordNet synset the name means, its nearest hypernym in T), or None; see `suggest_in_vocabulary`."""
    wn = _reader_or_none()
    if wn is None:
        return None
    synset = _wordnet_synset(name, hierarchy, wn)
    if synset is None or synset.name() in hierarchy:
        return None
    near = nearest_hypernym_in(synset, hierarchy)
    return (synset.name(), near) if near else None


def resolve_concept(hierarchy: Hierarchy, query: str) -> str:
    """`Hierarchy.resolve`, with a WordNet hint when the name is in WordNet but not in T.

    Raises:
        UnknownConceptError: nothing in T matches. For a WordNet noun outside T the message says
            so, names its nearest hypernym in T and the free-text phrase to map instead, then the
            spelling suggestions. The error carries `hypernym` and `phrase` (None when not found).
    """
    try:
        return hierarchy.resolve(query)
    except UnknownConceptError as err:
        hint = wordnet_hint(str(query), hierarchy)
        if hint is None:
            err.hypernym, err.phrase = None, None
            raise
        synset, near = hint
        phrase = synset.split(".")[0].replace("_", " ")
        wn_gloss = wordnet_reader().synset(synset).definition()
        msg = (f"{synset!r} ({wn_gloss}) is in WordNet but not in vocabulary {hierarchy.vocabulary!r}; its "
               f"nearest hypernym there is {near!r}, or map the word as free text ({phrase!r}). Otherwise: {err}")
        new = UnknownConceptError(msg)
        new.hypernym, new.phrase = near, phrase
        raise new from None
