"""Where CLIP weights come from: open_clip's registry, the Hugging Face cache, the network, local files.

Private to `convis.clip.models`, which turns these answers into fast, actionable errors before any
slow download or state-dict load starts.
"""

from __future__ import annotations

import contextlib
import difflib
import functools
import hashlib
import os
import socket
import threading
from pathlib import Path
from types import ModuleType
from typing import Iterator
from urllib.parse import urlparse

from convis.errors import UserError

CHECKPOINT_SUFFIXES = (".pt", ".bin", ".pth", ".safetensors")
SCHEMAS = ("hf-hub:", "local-dir:")  # names that carry their own weights; they take no tag


class ModelChoiceError(UserError, ValueError):
    """An unknown model name, weights tag or precision; the message lists the valid ones."""


class CheckpointNotFoundError(UserError, FileNotFoundError):
    """A checkpoint file named as the weights does not exist."""


_CONFIG_DIRS = [Path(__file__).resolve().parent / "model_configs"]  # test-tiny; users add theirs


@functools.cache
def open_clip() -> ModuleType:
    """Import open_clip lazily (a slow import) and register the config folders once."""
    import open_clip

    for folder in _CONFIG_DIRS:
        open_clip.add_model_config(folder)
    return open_clip


def add_config_dir(folder: Path) -> None:
    """Register a folder of open_clip model configs (now if open_clip is loaded, else at its import)."""
    if folder not in _CONFIG_DIRS:
        _CONFIG_DIRS.append(folder)
        if open_clip.cache_info().currsize:
            open_clip().add_model_config(folder)


def classify(name: str, pretrained: str, is_default: bool = False) -> str:
    """Check the request before any heavy work: 'hub', 'dir', 'none', 'tag' or 'file'.

    `is_default` says `pretrained` is the model's own default file, which the error then names.
    """
    oc = open_clip()
    if name.startswith(SCHEMAS):  # open_clip checks local-dir: folders itself
        return "hub" if name.startswith("hf-hub:") else "dir"
    if name not in oc.list_models():
        close = difflib.get_close_matches(name, oc.list_models(), n=1, cutoff=0.5)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        raise ModelChoiceError(f"unknown model '{name}'{hint} "
                         "(see convis.list_models() or open_clip.list_models())")
    if pretrained == "none":
        return "none"
    if oc.get_pretrained_cfg(name, pretrained):
        return "tag"
    path = Path(pretrained).expanduser()
    if path.suffix.lower() in CHECKPOINT_SUFFIXES or os.sep in pretrained or path.exists():
        if not path.is_file():
            why = " (the default weights of this model)" if is_default else ""
            raise CheckpointNotFoundError(f"checkpoint file not found: {path}{why}")
        return "file"
    tags = ", ".join(oc.list_pretrained_tags_by_model(name)) or "none (use a checkpoint file or 'none')"
    raise ModelChoiceError(f"unknown pretrained tag '{pretrained}' for {name}; valid tags: {tags}")


def weights_cached(name: str, pretrained: str, kind: str) -> tuple[bool, str]:
    """(all weight files already in the local cache?, host they would come from)."""
    from huggingface_hub import constants, try_to_load_from_cache

    host = urlparse(constants.ENDPOINT).hostname or "huggingface.co"
    if kind == "hub":
        repo = name.removeprefix("hf-hub:")
        groups = [(repo, ("open_clip_config.json",)),
                  (repo, ("open_clip_model.safetensors", "open_clip_pytorch_model.bin"))]
    else:
        cfg = open_clip().get_pretrained_cfg(name, pretrained)
        if cfg.get("file"):
            return True, host
        if not cfg.get("hf_hub"):  # URL-only tags go to ~/.cache/clip
            url = cfg["url"]
            target = Path("~/.cache/clip").expanduser() / os.path.basename(url)
            return target.is_file(), urlparse(url).hostname or host
        repo, file = os.path.split(cfg["hf_hub"])
        file = file or "open_clip_pytorch_model.bin"  # a trailing "/" means open_clip's default name
        # open_clip tries a safetensors twin first, then the named file
        bin_name = "open_clip_pytorch_model.bin"
        safe = "open_clip_model.safetensors" if file == bin_name else file[:-4] + ".safetensors"
        groups = [(repo, (safe, file))]
    ok = all(any(isinstance(try_to_load_from_cache(r, f), str) for f in files) for r, files in groups)
    return ok, host


def reachable(host: str, timeout: float = 3.0) -> bool:
    """TCP probe in a thread: getaddrinfo ignores socket timeouts and can hang without network."""
    ok: list[bool] = []

    def probe() -> None:
        with contextlib.suppress(OSError), socket.create_connection((host, 443), timeout=timeout):
            ok.append(True)

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout)
    return bool(ok)


@contextlib.contextmanager
def cache_only(on: bool) -> Iterator[None]:
    """Read cached hub files without the freshness round trip (which retries for ~46 s offline)."""
    from huggingface_hub import constants

    old, constants.HF_HUB_OFFLINE = constants.HF_HUB_OFFLINE, constants.HF_HUB_OFFLINE or on
    try:
        yield
    finally:
        constants.HF_HUB_OFFLINE = old


def fingerprint(path: str) -> str:
    """Size + first and last MiB: cheap, and changes when the weights do."""
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        head = f.read(1 << 20)
        f.seek(max(0, size - (1 << 20)))
        tail = f.read()
    return hashlib.sha1(str(size).encode() + head + tail).hexdigest()[:10]
