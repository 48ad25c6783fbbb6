"""Walks over a DAG stored as per-node index lists (parents or children): pure, no names.

Private to `convis.concepts.hierarchy`, which keeps the names and caches the results.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

Edges = Sequence[Sequence[int]]  # edges[i]: the nodes i points to


def reach(start: int, edges: Edges) -> set[int]:
    """`start` and every node reachable from it along `edges` (each visited once in a DAG)."""
    seen, stack = {start}, [start]
    while stack:
        for j in edges[stack.pop()]:
            if j not in seen:
                seen.add(j)
                stack.append(j)
    return seen


def invert(edges: Edges) -> tuple[tuple[int, ...], ...]:
    """The reversed edges; each list ascending, because sources are visited in order."""
    out: list[list[int]] = [[] for _ in edges]
    for i, targets in enumerate(edges):
        for j in targets:
            out[j].append(i)
    return tuple(tuple(x) for x in out)


def toposort(parents: Edges, children: Edges) -> np.ndarray:
    """(T,) int64: every child before each of its parents.

    Raises:
        ValueError: the parent relation has a cycle.
    """
    pending = [len(k) for k in children]
    stack = [i for i, c in enumerate(pending) if c == 0]
    out: list[int] = []
    while stack:
        i = stack.pop()
        out.append(i)
        for p in parents[i]:
            pending[p] -= 1
            if pending[p] == 0:
                stack.append(p)
    if len(out) != len(parents):
        raise ValueError("the parent relation has a cycle")
    return np.array(out, dtype=np.int64)


def depths(order: np.ndarray, parents: Edges) -> np.ndarray:
    """(T,) int64 shortest distance to a root; `order` is `toposort`'s (children first)."""
    depth = np.zeros(len(parents), dtype=np.int64)
    for i in order[::-1]:  # parents first
        ps = parents[i]
        depth[i] = 1 + min(depth[p] for p in ps) if ps else 0
    return depth


def subtree_sizes(parents: Edges) -> np.ndarray:
    """(T,) int64, read-only: per node, how many nodes reach it (itself included)."""
    sizes = np.zeros(len(parents), dtype=np.int64)
    for i in range(len(parents)):
        # i counts once in each of its ancestors: the cost is the total ancestor count, not T^2.
        sizes[list(reach(i, parents))] += 1
    sizes.flags.writeable = False
    return sizes
