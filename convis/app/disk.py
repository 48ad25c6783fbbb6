"""The app's files on disk, bounded by size: what this app put in Gradio's cache folder (uploads,
the API's and the gallery's pictures) and its export sets, kept inside that folder.

Gradio ages its files by time only (`delete_cache`: an hour); a flood of uploads or exports within
the hour has no bound there. `CacheBudget.trim` deletes the oldest of *this app's* files first
until they fit the budget, as Gradio's own clean-up does: the files its Blocks made
(`temp_file_sets`), never another app's in a shared folder, never an example (`keep_in_cache`),
and not a file younger than `young_s` (an upload waiting for the model, a picture being sent).
Age is the time a file came into the cache (ctime): a copy keeps its source's mtime. It runs
before each export and upload, and every `every_s` seconds in a background thread (for files no
handler of ours sees arrive: API uploads, pictures). A deleted upload is met with "upload it
again" (`convis.app.uploads.read_upload`).
"""

from __future__ import annotations

import atexit
import logging
import os
import shutil
import tempfile
import threading
import time
import weakref
from collections.abc import Iterable
from pathlib import Path
from typing import Any

_log = logging.getLogger(__name__)
_EXPORT_ROOT: list[Path] = []  # one private folder per process, made on the first export


def upload_folder() -> Path:
    """Gradio's cache folder ($GRADIO_TEMP_DIR, else <tmp>/gradio), made if missing."""
    from gradio.utils import get_upload_folder

    folder = Path(get_upload_folder())
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def export_root() -> Path:
    """This process's folder of export sets, inside Gradio's cache: handed out without a copy, and
    within the disk budget. Private (0700), removed at exit."""
    if not _EXPORT_ROOT:
        root = Path(tempfile.mkdtemp(prefix="convis-exports-", dir=upload_folder()))
        atexit.register(shutil.rmtree, root, True)
        _EXPORT_ROOT.append(root)
    return _EXPORT_ROOT[0]


def trim_files(files: Iterable[tuple[str | Path, float]], max_bytes: int, keep: Iterable[str] = (),
               gone: set[str] | None = None) -> int:
    """Delete the oldest of `files` (by ctime) until the rest hold at most `max_bytes`.

    Args:
        files: (path, seconds it is kept at least) pairs; a path given twice counts once.
        max_bytes: what the files may hold.
        keep: paths never deleted (they count all the same).
        gone: if given, receives the paths deleted or already missing (to drop from the caller's records).

    Returns:
        The bytes deleted.
    """
    now, keep, seen, entries = time.time(), set(map(str, keep)), set(), []
    for path, young_s in files:
        if (path := str(path)) in seen:
            continue
        seen.add(path)
        try:
            st = os.lstat(path)  # a link counts as itself and only the link would be deleted
        except OSError:  # deleted meanwhile (Gradio's own clean-up, a closed tab)
            if gone is not None:
                gone.add(path)
            continue
        entries.append((st.st_ctime, st.st_size, path, path not in keep and now - st.st_ctime >= young_s))
    total, freed = sum(e[1] for e in entries), 0
    for _, size, path, deletable in sorted(entries):
        if total - freed <= max_bytes:
            break
        if deletable:
            try:
                os.unlink(path)
                freed += size
                if gone is not None:
                    gone.add(path)
            except OSError:
                continue
    if freed:
        _log.info("deleted %.1f MiB of the app's oldest files (budget %.0f MiB)", freed / 2**20, max_bytes / 2**20)
    return freed


def app_files(demo: Any, young_s: float) -> tuple[list[tuple[str, float]], set[str]]:
    """(files `demo` put in the cache with their minimum age, the paths it keeps): Gradio's own record."""
    for _ in range(3):  # Gradio's threads add to these sets as we read them: read again
        try:
            files = [(f, young_s) for s in list(demo.temp_file_sets) for f in list(s)]
            keep = {str(p) for block in list(demo.blocks.values()) for p in getattr(block, "keep_in_cache", ())}
            return files, keep
        except RuntimeError:
            continue
    return [], set()


def export_files() -> list[tuple[str, float]]:
    """The export sets' files: deletable at once (a set is the newest file when made, and a tab's
    sets are bounded besides)."""
    if not _EXPORT_ROOT:
        return []
    return [(os.path.join(root, n), 0.0) for root, _, names in os.walk(_EXPORT_ROOT[0]) for n in names]


class CacheBudget:
    """A byte budget over the files of the attached Blocks and the export sets. Thread-safe.

    Args:
        max_bytes: what those files may hold.
        every_s: seconds between background trims (from `attach`).
        young_s: a file younger than this is never deleted (exports excepted).
        exports: count this process's export sets too (one folder for all its budgets).
    """

    def __init__(self, max_bytes: int, every_s: float = 10.0, young_s: float = 60.0, exports: bool = True) -> None:
        self.max_bytes, self.every_s, self.young_s, self.exports = max_bytes, every_s, young_s, exports
        self._demos: weakref.WeakSet = weakref.WeakSet()
        self._lock, self._timer = threading.Lock(), None

    def attach(self, demo: Any) -> None:
        """Count `demo`'s files from now on, and start the background trim (once per budget)."""
        self._demos.add(demo)
        with self._lock:
            if self._timer is None:
                self._timer = threading.Thread(target=self._loop, daemon=True, name="convis-cache-budget")
                self._timer.start()

    def trim(self) -> int:
        """Bring the files within budget now (a trim already running makes this one return 0)."""
        if not self._lock.acquire(blocking=False):
            return 0
        try:
            files, keep, gone, demos = export_files() if self.exports else [], set(), set(), list(self._demos)
            for demo in demos:
                more, kept = app_files(demo, self.young_s)
                files += more
                keep |= kept
            freed = trim_files(files, self.max_bytes, keep, gone)
            # Gradio's hourly clean-up keeps a path it finds missing in its set: drop ours, or the
            # sets (and this scan) would grow with every file the app ever made.
            for demo in demos:
                for made in list(demo.temp_file_sets):
                    made.difference_update(gone)
            return freed
        finally:
            self._lock.release()

    def _loop(self) -> None:
        while True:
            time.sleep(self.every_s)
            try:
                self.trim()
            except Exception:  # noqa: BLE001 - the timer must outlive one bad round; the log keeps the bug
                _log.exception("the cache budget's trim failed; trying again in %.0f s", self.every_s)
