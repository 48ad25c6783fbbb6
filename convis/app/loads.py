"""Loads that never stall each other: a lock per key, and failures remembered with a back-off.

One process-wide lock around every load made one tab's model or vocabulary switch stall every
other tab; here only callers of the same key wait, and a key whose load failed (no weights, no
WordNet) answers at once with the remembered message until its back-off ends.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from convis.app.limits import public
from convis.clip.models import ModelLoadError
from convis.concepts.wordnet import WordNetUnavailableError
from convis.errors import UserError

RETRY_S, MAX_RETRY_S = 30.0, 600.0  # back-off after a failed load: first delay, ceiling
# Failures worth remembering: missing weights or WordNet. Anything else is a bug and propagates each time.
REMEMBERED = (ModelLoadError, WordNetUnavailableError, OSError)


class LoadFailed(ModelLoadError):
    """A load that failed a moment ago; not retried before its back-off ends."""


class KeyedLoads:
    """Per-key locks plus a memory of recent failures. Thread-safe.

    Args:
        retry_s: first back-off after a failure; it doubles on each further failure.
        max_retry_s: ceiling of the back-off.
        clock: monotonic seconds (injectable for tests).
    """

    def __init__(self, retry_s: float = RETRY_S, max_retry_s: float = MAX_RETRY_S, clock=time.monotonic) -> None:
        self.retry_s, self.max_retry_s, self._clock = retry_s, max_retry_s, clock
        self._locks: dict[tuple, threading.Lock] = {}
        self._guard = threading.Lock()
        self._failed: dict[tuple, tuple[str, float, float]] = {}  # key -> (message, retry at, delay)

    @contextmanager
    def loading(self, key: tuple) -> Iterator[None]:
        """Hold `key`'s lock for a load; raise `LoadFailed` while a remembered failure's back-off runs."""
        with self._guard:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            failed = self._failed.get(key)
            if failed is not None and self._clock() < failed[1]:
                wait = failed[1] - self._clock()
                raise LoadFailed(f"{failed[0]} (failed {failed[2] - wait:.0f} s ago; the server tries again "
                                 f"in {wait:.0f} s)")
            try:
                yield
            except LoadFailed:
                raise  # an inner key's remembered failure: already counted there
            except REMEMBERED as exc:
                delay = min(self.max_retry_s, 2 * failed[2]) if failed else self.retry_s
                self._failed[key] = (public(str(exc)), self._clock() + delay, delay)
                if isinstance(exc, UserError):
                    raise
                # An OSError (disk full, read-only cache) gets the same clean message as later callers.
                raise LoadFailed(public(str(exc))) from exc
            self._failed.pop(key, None)
