""""What CLIP sees" without ancestor chains: single-child ancestors fold into their descendant.

A concept with exactly one child in T has a subtree that is that child's plus itself, so it
scores almost like the child and a ranked list repeats the chain ("cat", "domestic cat", ...).
Here every chain of single-child links is shown once, as its most specific concept, with the
folded ancestors as context.
"""

from __future__ import annotations

import numpy as np

from convis.concepts.hierarchy import Hierarchy

Entry = tuple[str, float, tuple[str, ...]]  # (synset, score, context ancestors nearest first)


def chain_bottom(hierarchy: Hierarchy, i: int) -> int:
    """The most specific node reached from node i by following only-child links down."""
    kids = hierarchy.child_index
    while len(kids[i]) == 1:
        i = kids[i][0]
    return i


def chain_context(hierarchy: Hierarchy, i: int) -> tuple[str, ...]:
    """Names above node i: its single-child ancestors (folded into it), then one plain parent."""
    out = []
    while True:
        parents = hierarchy.parent_index[i]
        folded = [p for p in parents if len(hierarchy.child_index[p]) == 1]
        if folded:
            i = folded[0]
            out.append(hierarchy.ids[i])
            continue
        if parents:
            out.append(hierarchy.ids[parents[0]])
        return tuple(out)


def collapse_chains(hierarchy: Hierarchy, scores: np.ndarray, k: int) -> list[Entry]:
    """The k best chains, each as (most specific concept, chain's best score, context).

    Args:
        hierarchy: the concept set T.
        scores: (T,) one score per concept, higher = shown more.
        k: how many entries.

    Returns:
        Up to k entries, best first. The score is the best of the chain's members (the one that
        earned the place); context is, nearest first, the folded ancestors and then the parent
        above the chain, so a caller can print "tabby <- domestic cat <- cat".
    """
    out: list[Entry] = []
    seen: set[int] = set()
    for i in np.argsort(-np.asarray(scores), kind="stable"):
        if len(out) >= k:
            break
        bottom = chain_bottom(hierarchy, int(i))
        if bottom in seen:
            continue
        seen.add(bottom)
        out.append((hierarchy.ids[bottom], float(scores[i]), chain_context(hierarchy, bottom)))
    return out
