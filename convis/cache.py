"""One small bounded LRU for the in-process caches (models, concept banks, hierarchies, engines).

Thread-safe for single operations. It does not serialise loads: callers that must not load the
same key twice hold their own per-key lock (see `convis.app.backend`).
"""

from __future__ import annotations

import functools
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class LRU(Generic[K, V]):
    """A mapping that keeps its `maxsize` most recently used items.

    Args:
        maxsize: items kept (at least 1).
        on_evict: called with (key, value) for every item pushed out by a newer one or `pop`ped
            by `evict` (not by `clear`), outside the lock.
    """

    def __init__(self, maxsize: int, on_evict: Callable[[K, V], None] | None = None) -> None:
        if maxsize < 1:
            raise ValueError(f"maxsize must be at least 1, got {maxsize}")
        self.maxsize, self._on_evict = maxsize, on_evict
        self._items: OrderedDict[K, V] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: K, default: V | None = None) -> V | None:
        """The value of `key` (now the most recent), or `default`."""
        with self._lock:
            if key not in self._items:
                return default
            self._items.move_to_end(key)
            return self._items[key]

    def __getitem__(self, key: K) -> V:
        with self._lock:
            self._items.move_to_end(key)  # KeyError if absent, like a dict
            return self._items[key]

    def __setitem__(self, key: K, value: V) -> None:
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            dropped = [self._items.popitem(last=False) for _ in range(len(self._items) - self.maxsize)]
        for k, v in dropped:
            if self._on_evict is not None:
                self._on_evict(k, v)

    def evict(self, key: K) -> V | None:
        """Remove `key` (calling `on_evict`); its value, or None if absent."""
        with self._lock:
            value = self._items.pop(key, None)
        if value is not None and self._on_evict is not None:
            self._on_evict(key, value)
        return value

    def __contains__(self, key: object) -> bool:
        with self._lock:
            return key in self._items

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[K]:
        with self._lock:
            return iter(list(self._items))

    def values(self) -> list[V]:
        """A snapshot of the values, least recently used first."""
        with self._lock:
            return list(self._items.values())

    def clear(self) -> None:
        """Forget everything (no `on_evict` calls)."""
        with self._lock:
            self._items.clear()


def memoize(cache: LRU) -> Callable[[Callable[..., V]], Callable[..., V]]:
    """Like `functools.lru_cache` over a given `LRU` (positional arguments only), so its owner can
    evict single entries; the wrapper keeps `cache_clear()` and exposes `.cache`."""

    def wrap(fn: Callable[..., V]) -> Callable[..., V]:
        @functools.wraps(fn)
        def cached(*args: Hashable) -> V:
            hit = cache.get(args, _MISSING)
            if hit is not _MISSING:
                return hit  # type: ignore[return-value]
            value = fn(*args)
            cache[args] = value
            return value

        cached.cache = cache  # type: ignore[attr-defined]
        cached.cache_clear = cache.clear  # type: ignore[attr-defined]
        return cached

    return wrap


_MISSING = object()
