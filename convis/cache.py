"""The project's one bounded LRU (models, concept banks, hierarchies, engines, the app's indexes,
stochastic maps, a tab's keys), bounded by item count, by a total weight (bytes), or both; and the
one policy of the disk caches (banks, hierarchies): an unreadable file is rebuilt, an unwritable
folder serves from memory, each with a warning.

The LRU is thread-safe for single operations. It does not serialise loads: callers that must not
load the same key twice hold their own per-key lock (see `convis.app.backend`).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator
from pathlib import Path
from typing import Any, Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")
_log = logging.getLogger(__name__)


def read_cached(path: Path, read: Callable[[Path], V], what: str) -> V | None:
    """`read(path)` of a disk-cache file, or None when there is none or it cannot be read (truncated,
    foreign, an older format): the caller builds the value again and overwrites the file."""
    if not path.is_file():
        return None
    try:
        return read(path)
    except Exception as e:  # noqa: BLE001 - whatever is wrong with a cache file, building it again fixes it
        _log.warning("ignoring unreadable %s cache %s (%s); building it again", what, path, e)
        return None


def write_cached(path: Path, write: Callable[[Path], None], what: str) -> bool:
    """Write a disk-cache file atomically (`write` fills a temporary file, renamed into place: a
    concurrent reader never sees half a file). False, with a warning, when the folder cannot be
    written (read-only, full): the value then lives in memory only."""
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write(tmp)
        os.replace(tmp, path)
    except OSError as e:
        _log.warning("could not write %s cache %s (%s); it is kept in memory only", what, path, e)
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        return False
    return True


def nbytes(value: Any) -> int:
    """A value's `nbytes` (numpy arrays, the app's entries): the usual weight of a byte budget."""
    return int(value.nbytes)


class LRU(Generic[K, V]):
    """A mapping that keeps its most recently used items within `max_items` and `max_weight`.

    The newest item always stays, even when it alone weighs more than `max_weight`: a cache that
    refused it would make its caller compute it again on every use.

    Args:
        max_items: items kept (at least 1); None for no count bound.
        max_weight: total `weight` kept; None for no weight bound (then `weight` is not called).
        weight: an item's weight, read once when it is stored (e.g. `nbytes`).
        on_evict: called with (key, value) for every item pushed out by a newer one or removed by
            `evict` (not by `clear` or by storing a new value under its key), outside the lock.
    """

    def __init__(self, max_items: int | None = None, *, max_weight: int | None = None,
                 weight: Callable[[V], int] | None = None,
                 on_evict: Callable[[K, V], None] | None = None) -> None:
        if max_items is None and max_weight is None:
            raise ValueError("an LRU needs a bound: max_items, max_weight or both")
        if max_items is not None and max_items < 1:
            raise ValueError(f"max_items must be at least 1, got {max_items}")
        if max_weight is not None and weight is None:
            raise ValueError("max_weight needs a weight function (e.g. convis.cache.nbytes)")
        self.max_items, self.max_weight = max_items, max_weight
        self._weight, self._on_evict = weight, on_evict
        self._items: OrderedDict[K, tuple[V, int]] = OrderedDict()  # key -> (value, its weight)
        self._total = 0
        self._lock = threading.Lock()

    def __getstate__(self) -> dict:
        # The lock cannot be copied; a copy (e.g. gr.State's deepcopy per tab) gets its own.
        return {k: v for k, v in self.__dict__.items() if k != "_lock"}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def __eq__(self, other: object) -> bool:
        """Same bounds and the same items in the same order (a session compares by content)."""
        if not isinstance(other, LRU):
            return NotImplemented
        return (self.max_items, self.max_weight, list(self._items.items())) == (
            other.max_items, other.max_weight, list(other._items.items()))

    __hash__ = None  # mutable

    @property
    def weight(self) -> int:
        """Total weight held now (0 without a weight function)."""
        return self._total

    def get(self, key: K, default: V | None = None) -> V | None:
        """The value of `key` (now the most recent), or `default`."""
        with self._lock:
            if key not in self._items:
                return default
            self._items.move_to_end(key)
            return self._items[key][0]

    def peek(self, key: K, default: V | None = None) -> V | None:
        """The value of `key` without making it more recent, or `default`."""
        with self._lock:
            held = self._items.get(key)
        return default if held is None else held[0]

    def __getitem__(self, key: K) -> V:
        with self._lock:
            self._items.move_to_end(key)  # KeyError if absent, like a dict
            return self._items[key][0]

    def __setitem__(self, key: K, value: V) -> None:
        w = self._weight(value) if self._weight is not None else 0
        with self._lock:
            old = self._items.pop(key, None)
            self._total += w - (old[1] if old else 0)
            self._items[key] = (value, w)
            dropped = []
            while len(self._items) > 1 and self._over():
                k, (v, vw) = self._items.popitem(last=False)
                self._total -= vw
                dropped.append((k, v))
        for k, v in dropped:
            if self._on_evict is not None:
                self._on_evict(k, v)

    def _over(self) -> bool:
        return ((self.max_items is not None and len(self._items) > self.max_items)
                or (self.max_weight is not None and self._total > self.max_weight))

    def evict(self, key: K) -> V | None:
        """Remove `key` (calling `on_evict`); its value, or None if absent."""
        with self._lock:
            held = self._items.pop(key, None)
            if held is not None:
                self._total -= held[1]
        if held is not None and self._on_evict is not None:
            self._on_evict(key, held[0])
        return None if held is None else held[0]

    def __delitem__(self, key: K) -> None:
        with self._lock:
            self._total -= self._items.pop(key)[1]  # KeyError if absent, like a dict

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
            return [v for v, _ in self._items.values()]

    def items(self) -> list[tuple[K, V]]:
        """A snapshot of the (key, value) pairs, least recently used first."""
        with self._lock:
            return [(k, v) for k, (v, _) in self._items.items()]

    def clear(self) -> None:
        """Forget everything (no `on_evict` calls)."""
        with self._lock:
            self._items.clear()
            self._total = 0


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
