"""Find WordNet 3.0 for nltk without a network when possible, and open it.

WordNet is resolved offline first: nltk data if present, else a copy made earlier in the cache,
else the Debian `wordnet-base` + `wordnet-sense-index` files copied into the cache, else a download
when the network is allowed. Private to `convis.concepts.wordnet`, which re-exports the public names; with it,
the only module that imports nltk, and only inside functions.
"""

from __future__ import annotations

import atexit
import functools
import logging
import os
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any

from convis.config import cache_root, offline
from convis.errors import UserError

_log = logging.getLogger(__name__)

# Debian drops `lexnames` (README.Debian); nltk needs it. Order = lexicographer file number.
_LEXNAMES = (
    "adj.all adj.pert adv.all noun.Tops noun.act noun.animal noun.artifact noun.attribute noun.body "
    "noun.cognition noun.communication noun.event noun.feeling noun.food noun.group noun.location "
    "noun.motive noun.object noun.person noun.phenomenon noun.plant noun.possession noun.process "
    "noun.quantity noun.relation noun.shape noun.state noun.substance noun.time verb.body verb.change "
    "verb.cognition verb.communication verb.competition verb.consumption verb.contact verb.creation "
    "verb.emotion verb.motion verb.perception verb.possession verb.social verb.stative verb.weather "
    "adj.ppl"
).split()
_CATEGORY = {"noun": 1, "verb": 2, "adj": 3, "adv": 4}


class WordNetUnavailableError(UserError, RuntimeError):
    """WordNet 3.0 could not be found or fetched."""


def _install_debian(src: Path, nltk_data: Path) -> bool:
    """Copy Debian WordNet files into an nltk data tree (nltk 3.10 refuses symlinks and /tmp)."""
    if not ((src / "data.noun").is_file() and (src / "index.sense").is_file()):
        return False
    dst = nltk_data / "corpora" / "wordnet"
    if not (dst / "lexnames").is_file():
        dst.mkdir(parents=True, exist_ok=True)
        for f in src.iterdir():
            if f.is_file() and not f.name.startswith("."):
                shutil.copyfile(f, dst / f.name)
        lines = [f"{i:02d}\t{n}\t{_CATEGORY[n.split('.')[0]]}\n" for i, n in enumerate(_LEXNAMES)]
        # Written last: its presence marks a complete copy.
        (dst / "lexnames").write_text("".join(lines))
        _log.info("copied WordNet from %s into %s", src, dst)
    return True


def _copy_debian(src: Path, nltk_data: Path) -> Path | None:
    """The folder holding a copy of Debian's WordNet: the cache, or, when the cache cannot be
    written (read-only, full), a private temporary folder for this process, with a warning."""
    try:
        return nltk_data if _install_debian(src, nltk_data) else None
    except OSError as e:
        spare = Path(tempfile.mkdtemp(prefix="convis-nltk-"))
        atexit.register(shutil.rmtree, spare, True)
        _log.warning("could not copy WordNet into the cache %s (%s); using a copy in %s for this process",
                     nltk_data, e, spare)
        return spare if _install_debian(src, spare) else None


def _find_nltk_wordnet() -> Any | None:
    import nltk

    try:
        return nltk.data.find("corpora/wordnet")
    except LookupError:
        return None


@functools.cache
def wordnet_reader() -> Any:
    """The nltk WordNet reader, resolved offline first (see the module docstring).

    Raises:
        WordNetUnavailableError: no route worked; the message names the fixes.
    """
    import nltk
    from nltk.corpus.reader.wordnet import WordNetCorpusReader

    root, nltk_data = _find_nltk_wordnet(), cache_root() / "nltk_data"
    debian = Path(os.environ.get("CONVIS_WORDNET_DIR") or "/usr/share/wordnet")
    wn_dir = nltk_data / "corpora" / "wordnet"
    routes = (  # each returns the nltk data folder it left a WordNet in, or None
        lambda: nltk_data if (wn_dir / "lexnames").is_file() or wn_dir.with_suffix(".zip").is_file() else None,
        lambda: _copy_debian(debian, nltk_data),
        lambda: nltk_data if not offline() and _download(nltk_data) else None,
    )
    for route in routes:
        if root is None and (folder := route()) is not None:
            if str(folder) not in nltk.data.path:
                nltk.data.path.insert(0, str(folder))
            root = _find_nltk_wordnet()
    if root is None:
        raise WordNetUnavailableError(
            "WordNet 3.0 not found. Fix: `apt-get install wordnet-base wordnet-sense-index` "
            "(or set CONVIS_WORDNET_DIR to a folder with data.noun and index.sense), "
            "or `python -m nltk.downloader wordnet` when online."
        )
    with warnings.catch_warnings():
        # No OMW (multilingual) data is needed; nltk warns about it on every construction.
        warnings.filterwarnings("ignore", message=".*multilingual functions.*")
        reader = WordNetCorpusReader(root, None)
    _log.info("WordNet %s from %s", reader.get_version(), root)
    return reader


def _download(nltk_data: Path) -> bool:
    import nltk

    _log.info("downloading WordNet into %s", nltk_data)
    try:
        return bool(nltk.download("wordnet", download_dir=str(nltk_data), quiet=True))
    except Exception as exc:  # noqa: BLE001 - any network failure means "not available"
        _log.warning("WordNet download failed: %s", exc)
        return False
