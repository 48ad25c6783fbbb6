"""The app's files on disk, bounded by size: Gradio's cache folder (uploads, the API's pictures,
copies of downloads) with this process's export sets inside it.

Gradio ages that folder by time only (`delete_cache`: an hour); a flood of uploads or exports
within the hour has no bound there. `CacheBudget.trim` deletes the oldest files first until the
folder fits its budget; it runs before each export and upload, and every `every_s` seconds in a
background thread (for files no handler of ours sees arrive). A deleted upload is met with
"upload it again" (`convis.app.uploads.read_upload`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from pathlib import Path

_log = logging.getLogger(__name__)


def upload_folder() -> Path:
    """Gradio's cache folder ($GRADIO_TEMP_DIR, else <tmp>/gradio), made if missing."""
    from gradio.utils import get_upload_folder

    folder = Path(get_upload_folder())
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def trim_folder(folder: Path, max_bytes: int) -> int:
    """Delete the oldest files (by modification time) under `folder` until the rest hold at most
    `max_bytes`; remove the folders left empty. Returns the bytes deleted."""
    files = []
    for root, _, names in os.walk(folder):
        for name in names:
            path = Path(root) / name
            try:
                st = path.stat()
            except OSError:  # deleted meanwhile (Gradio's own clean-up, another trim)
                continue
            files.append((st.st_mtime, st.st_size, path))
    total, freed = sum(size for _, size, _ in files), 0
    for _, size, path in sorted(files):
        if total - freed <= max_bytes:
            break
        try:
            path.unlink()
            freed += size
        except OSError:
            continue
    if freed:
        old = time.time() - 60  # a folder made a moment ago is about to be filled (an upload, an export)
        for root, dirs, names in os.walk(folder, topdown=False):
            if root != str(folder) and not dirs and not names:
                with contextlib.suppress(OSError):
                    if os.stat(root).st_mtime < old:
                        os.rmdir(root)
        _log.info("deleted %.1f MiB of the oldest files in %s (budget %.0f MiB)", freed / 2**20, folder,
                  max_bytes / 2**20)
    return freed


class CacheBudget:
    """A byte budget over Gradio's cache folder. Thread-safe; the first `trim` starts the timer.

    Args:
        max_bytes: what the folder may hold.
        folder: the folder (default: Gradio's, `upload_folder()`).
        every_s: seconds between background trims.
    """

    def __init__(self, max_bytes: int, folder: Path | None = None, every_s: float = 10.0) -> None:
        self.max_bytes, self.every_s, self._folder = max_bytes, every_s, folder
        self._lock, self._timer = threading.Lock(), None

    @property
    def folder(self) -> Path:
        if self._folder is None:
            self._folder = upload_folder()
        return self._folder

    def trim(self) -> int:
        """Bring the folder within budget now (a trim already running makes this one return 0)."""
        if not self._lock.acquire(blocking=False):
            return 0
        try:
            if self._timer is None:
                self._timer = threading.Thread(target=self._loop, daemon=True, name="convis-cache-budget")
                self._timer.start()
            return trim_folder(self.folder, self.max_bytes)
        finally:
            self._lock.release()

    def _loop(self) -> None:
        stop = threading.Event()
        while not stop.wait(self.every_s):
            self.trim()
