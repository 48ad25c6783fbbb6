"""The one door to CLIP models: open_clip's factory, a small registry, fast offline errors."""

from __future__ import annotations

import contextlib
import difflib
import functools
import hashlib
import logging
import os
import socket
import threading
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Callable, Iterator
from urllib.parse import urlparse

import torch
import torch.nn.functional as F
from torch import Tensor, nn

_log = logging.getLogger(__name__)

_REPO_ROOT = Path(__file__).resolve().parents[1]
CHECKPOINT_SUFFIXES = (".pt", ".bin", ".pth", ".safetensors")
# Names whose weights are not an open_clip tag: used when the caller keeps the "openai" default.
DEFAULT_PRETRAINED: dict[str, str] = {
    "test-tiny": "none",
    "synthetic-shapes": str(_REPO_ROOT / "assets/models/synthetic-shapes.safetensors"),
}
_DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
_NONE = (None, "none", "")
_SCHEMAS = ("hf-hub:", "local-dir:")
_FIXES = ("Fixes: connect to the internet once so the weights are downloaded into the Hugging Face cache "
          "(~/.cache/huggingface); or pass a local checkpoint with --pretrained /path/to/file.safetensors; "
          "or use --model test-tiny to run offline (random weights).")


class ModelLoadError(RuntimeError):
    """Weights could not be fetched or read."""


@dataclass(frozen=True)
class ModelSpec:
    """One curated model: an open_clip architecture plus a weights tag."""

    name: str
    pretrained: str
    description: str


MODELS: dict[str, ModelSpec] = {f"{s.name}/{s.pretrained}": s for s in (
    ModelSpec("ViT-B-32", "openai", "OpenAI CLIP ViT-B/32, the paper's backbone (default)"),
    ModelSpec("ViT-B-16", "openai", "OpenAI CLIP ViT-B/16: finer patches, ~4x the image cost"),
    ModelSpec("ViT-L-14", "openai", "OpenAI CLIP ViT-L/14: 768-d, ~3x slower than B/16"),
    ModelSpec("ViT-B-32", "laion2b_s34b_b79k", "OpenCLIP ViT-B/32 trained on LAION-2B"),
    ModelSpec("ViT-B-16", "laion2b_s34b_b88k", "OpenCLIP ViT-B/16 trained on LAION-2B"),
    ModelSpec("ViT-L-14", "laion2b_s32b_b82k", "OpenCLIP ViT-L/14 trained on LAION-2B"),
    ModelSpec("test-tiny", "none", "tiny seeded random CLIP (32-d, 64 px) for tests and offline demos"),
)}


def list_models() -> list[str]:
    """Curated "arch/tag" names; the first is the default."""
    return list(MODELS)


def parse_model(spec: str) -> tuple[str, str | None]:
    """Split "arch/tag" into (arch, tag). A bare arch gets its default tag; hub/dir names keep their "/"."""
    if spec.startswith(_SCHEMAS):
        return spec, None
    name, sep, tag = spec.partition("/")
    return name, (tag if sep else DEFAULT_PRETRAINED.get(name, "openai"))


@dataclass(frozen=True, eq=False)
class Clip:
    """A loaded CLIP model with what callers need to feed it. Build it with `load_model`."""

    model: nn.Module
    tokenizer: Callable[..., Tensor]
    name: str
    pretrained: str  # tag, absolute checkpoint path, "none" (seeded random), "" for hf-hub:/local-dir:
    image_size: int  # S
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    device: torch.device
    dtype: torch.dtype
    context_length: int
    fingerprint: str = ""  # short hash of a local checkpoint file, so model_id changes with the weights

    @property
    def model_id(self) -> str:
        """Stable key for caches, e.g. "ViT-B-32/openai"."""
        if self.fingerprint:
            return f"{self.name}/{Path(self.pretrained).name}-{self.fingerprint}"
        return f"{self.name}/{self.pretrained}" if self.pretrained else self.name

    def encode_image(self, x: Tensor) -> Tensor:
        """(N, 3, S, S) normalised images -> (N, D) float32 unit rows."""
        with torch.inference_mode():
            return F.normalize(self.model.encode_image(x.to(self.device, self.dtype)).float(), dim=-1)

    def encode_text(self, tokens: Tensor) -> Tensor:
        """(N, L) token ids -> (N, D) float32 unit rows."""
        with torch.inference_mode():
            return F.normalize(self.model.encode_text(tokens.to(self.device)).float(), dim=-1)


@functools.cache
def _open_clip() -> ModuleType:
    """Import open_clip lazily (a slow import) and register our configs once."""
    import open_clip

    open_clip.add_model_config(Path(__file__).resolve().parent / "model_configs")
    return open_clip


def _resolve_device(device: str | torch.device) -> torch.device:
    if str(device) != "auto":
        return torch.device(device)
    if torch.cuda.is_available():
        return torch.device("cuda")
    return torch.device("mps" if torch.backends.mps.is_available() else "cpu")


def _resolve_precision(precision: str, device: torch.device) -> str:
    if precision == "auto":
        return "fp16" if device.type == "cuda" else "fp32"
    if precision not in _DTYPES:
        raise ValueError(f"unknown precision '{precision}'; use auto, {', '.join(_DTYPES)}")
    return precision


def _resolve_arch(name: str, pretrained: str | None) -> tuple[str, dict[str, Any]]:
    """open_clip config name and overrides. openai-style tags were trained with QuickGELU; the plain
    configs use GELU and open_clip only warns, so we force it or the embeddings are subtly wrong."""
    if pretrained in _NONE or name.startswith(_SCHEMAS) or name.endswith("-quickgelu"):
        return name, {}
    if pretrained == "openai" or _open_clip().get_pretrained_cfg(name, pretrained).get("quick_gelu"):
        return name, {"force_quick_gelu": True}
    return name, {}


def _classify(name: str, pretrained: str) -> str:
    """Check the request before any heavy work: 'hub', 'dir', 'none', 'tag' or 'file'."""
    oc = _open_clip()
    if name.startswith(_SCHEMAS):  # open_clip checks local-dir: folders itself
        return "hub" if name.startswith("hf-hub:") else "dir"
    if name not in oc.list_models():
        close = difflib.get_close_matches(name, oc.list_models(), n=1, cutoff=0.5)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        raise ValueError(f"unknown model '{name}'{hint} "
                         "(see convis.list_models() or open_clip.list_models())")
    if pretrained == "none":
        return "none"
    if oc.get_pretrained_cfg(name, pretrained):
        return "tag"
    path = Path(pretrained).expanduser()
    if path.suffix.lower() in CHECKPOINT_SUFFIXES or os.sep in pretrained or path.exists():
        if not path.is_file():
            why = " (the default weights of this model)" if DEFAULT_PRETRAINED.get(name) == pretrained else ""
            raise FileNotFoundError(f"checkpoint file not found: {path}{why}")
        return "file"
    tags = ", ".join(oc.list_pretrained_tags_by_model(name)) or "none (use a checkpoint file or 'none')"
    raise ValueError(f"unknown pretrained tag '{pretrained}' for {name}; valid tags: {tags}")


def _weights_cached(name: str, pretrained: str, kind: str) -> tuple[bool, str]:
    """(all weight files already in the local cache?, host they would come from)."""
    from huggingface_hub import constants, try_to_load_from_cache

    host = urlparse(constants.ENDPOINT).hostname or "huggingface.co"
    if kind == "hub":
        repo = name.removeprefix("hf-hub:")
        groups = [(repo, ("open_clip_config.json",)),
                  (repo, ("open_clip_model.safetensors", "open_clip_pytorch_model.bin"))]
    else:
        cfg = _open_clip().get_pretrained_cfg(name, pretrained)
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


def _reachable(host: str, timeout: float = 3.0) -> bool:
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
def _hub_offline(on: bool) -> Iterator[None]:
    """Read cached hub files without the freshness round trip (which retries for ~46 s offline)."""
    from huggingface_hub import constants

    old, constants.HF_HUB_OFFLINE = constants.HF_HUB_OFFLINE, constants.HF_HUB_OFFLINE or on
    try:
        yield
    finally:
        constants.HF_HUB_OFFLINE = old


def _fingerprint(path: str) -> str:
    """Size + first and last MiB: cheap, and changes when the weights do."""
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        head = f.read(1 << 20)
        f.seek(max(0, size - (1 << 20)))
        tail = f.read()
    return hashlib.sha1(str(size).encode() + head + tail).hexdigest()[:10]


def load_model(name: str = "ViT-B-32", pretrained: str | None = "openai", device: str = "auto",
               precision: str = "auto") -> Clip:
    """Load (once per process) an open_clip model, seeded when random.

    Args:
        name: open_clip architecture ("ViT-B-32", "test-tiny"), "arch/tag", or "hf-hub:org/repo".
        pretrained: weights tag, a local checkpoint file, or None/"none" for a seeded random init.
            Files carry no QuickGELU flag: name the "-quickgelu" arch for OpenAI weights.
        device: "auto" (cuda, then mps, then cpu) or a torch device string.
        precision: "auto" (fp16 on cuda, else fp32), "fp32", "fp16" or "bf16".

    Raises:
        ValueError: unknown model, tag or precision. FileNotFoundError: missing checkpoint.
        ModelLoadError: weights that cannot be fetched or read.
    """
    if "/" in name and not name.startswith(_SCHEMAS) and pretrained == "openai":
        name, pretrained = parse_model(name)
    if pretrained == "openai" and name in DEFAULT_PRETRAINED:
        pretrained = DEFAULT_PRETRAINED[name]
    pretrained = "none" if pretrained in _NONE else str(pretrained)
    dev = _resolve_device(device)
    prec = _resolve_precision(precision, dev)
    kind = _classify(name, pretrained)
    stamp = ""
    if kind == "file":  # key the in-process cache on the file's state, not only its name
        pretrained = str(Path(pretrained).expanduser().resolve())
        st = os.stat(pretrained)
        stamp = f"{st.st_size}-{st.st_mtime_ns}"
    return _load(name, "" if kind in ("hub", "dir") else pretrained, kind, str(dev), prec, stamp)


@functools.lru_cache(maxsize=8)
def _load(name: str, pretrained: str, kind: str, device: str, precision: str, stamp: str) -> Clip:
    oc = _open_clip()
    arch, kwargs = _resolve_arch(name, pretrained)
    label = f"{name}/{pretrained}" if pretrained else name
    cached = False
    if kind in ("tag", "hub"):
        cached, host = _weights_cached(name, pretrained, kind)
        if not cached:
            from huggingface_hub import constants

            if constants.HF_HUB_OFFLINE or not _reachable(host):
                raise ModelLoadError(f"cannot fetch the weights of {label}: they are not in the local cache "
                                     f"and {host} cannot be reached (offline or HF_HUB_OFFLINE=1). {_FIXES}")
    _log.info("loading %s on %s (%s)", label, device, precision)
    try:
        with _hub_offline(cached), torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)  # random inits are reproducible: caches are keyed on model_id
            model = oc.create_model(arch, pretrained=None if kind in ("none", "hub", "dir") else pretrained,
                                    device=device, precision=precision, **kwargs)
            tokenizer = oc.get_tokenizer(arch)
    except (RuntimeError, OSError, ValueError) as e:  # download, file and state-dict failures
        fixes = _FIXES if kind in ("tag", "hub") else ""
        raise ModelLoadError(f"could not load {label}: {e}. {fixes}".strip()) from e
    model.eval()
    cfg = oc.get_model_preprocess_cfg(model)
    size = cfg["size"]
    return Clip(model=model, tokenizer=tokenizer, name=name, pretrained=pretrained,
                image_size=int(size if isinstance(size, int) else size[0]),
                mean=tuple(float(v) for v in cfg["mean"]), std=tuple(float(v) for v in cfg["std"]),
                device=torch.device(device), dtype=_DTYPES[precision],
                context_length=int(getattr(model, "context_length", None) or tokenizer.context_length),
                fingerprint=_fingerprint(pretrained) if kind == "file" else "")
