"""The one door to CLIP models: open_clip's factory, a small registry, fast offline errors."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from convis.clip import hub as _hub
from convis.clip.hub import ModelChoiceError
from convis.cache import LRU, memoize
from convis.config import offline
from convis.errors import UserError

_log = logging.getLogger(__name__)

# Names whose weights are not an open_clip tag: used when the caller keeps the "openai" default.
# Users add theirs with `register_model` (the evaluation registers its synthetic-shapes model).
DEFAULT_PRETRAINED: dict[str, str] = {"test-tiny": "none"}
_DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
# int8: the image tower's Linear layers dynamically quantised (CPU only); the text tower stays fp32,
# so the concept bank is the fp32 one. ~1.5x the fp32 images/s on a CPU; see README "Performance".
PRECISIONS = ("auto", *_DTYPES, "int8")
_NONE = (None, "none", "")
_FIXES = ("Fixes: connect to the internet once so the weights are downloaded into the Hugging Face cache "
          "(~/.cache/huggingface); or pass a local checkpoint with --pretrained /path/to/file.safetensors; "
          "or use --model test-tiny to run offline (random weights).")


class ModelLoadError(UserError, RuntimeError):
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


def register_model(name: str, weights: str | Path, config_dir: Path | None = None) -> None:
    """Make `name` load `weights` by default; `config_dir` holds its open_clip config (`<name>.json`).

    The way open_clip's `add_model_config` works: the caller owns the files, the core only knows
    what it is told.
    """
    DEFAULT_PRETRAINED[name] = str(weights)
    if config_dir is not None:
        _hub.add_config_dir(Path(config_dir))


def list_models() -> list[str]:
    """Curated "arch/tag" names; the first is the default."""
    return list(MODELS)


def parse_model(spec: str) -> tuple[str, str | None]:
    """Split "arch/tag" into (arch, tag). A bare arch gets its default tag; hub/dir names keep their "/"."""
    if spec.startswith(_hub.SCHEMAS):
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
    preprocess: Callable[[Any], Tensor] | None = None  # open_clip's own inference transform: PIL -> (3, S, S)
    precision: str = ""  # "fp32", "fp16", "bf16" or "int8" (its inputs are float32: see `dtype`)

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


def _resolve_device(device: str | torch.device) -> torch.device:
    if str(device) != "auto":
        return torch.device(device)
    if torch.cuda.is_available():
        return torch.device("cuda")
    return torch.device("mps" if torch.backends.mps.is_available() else "cpu")


def _resolve_precision(precision: str, device: torch.device) -> str:
    if precision == "auto":
        return "fp16" if device.type == "cuda" else "fp32"
    if precision not in PRECISIONS:
        raise ModelChoiceError(f"unknown precision '{precision}'; use {', '.join(PRECISIONS)}")
    if precision == "int8" and device.type != "cpu":
        raise ModelChoiceError(f"precision int8 runs on the CPU only, not on {device.type}; use --device cpu, "
                               "or fp16 on a GPU")
    return precision


def _quantize_int8(module: nn.Module) -> nn.Module:
    """Dynamic int8 quantisation of a module's Linear layers: int8 weights per output channel,
    activations quantised per batch on the fly (fbgemm/onednn kernels on x86 and ARM CPUs).

    torch.ao's eager `quantize_dynamic` is deprecated in favour of torchao, but torchao's int8
    path only pays off under torch.compile on a CPU (eager: 1.03x here, vs 1.5-1.6x for this).
    """
    import warnings

    ao = getattr(torch, "ao", None)
    quantize = getattr(getattr(ao, "quantization", None), "quantize_dynamic", None)
    if quantize is None:
        raise ValueError(f"precision int8 needs torch.ao.quantization.quantize_dynamic, which torch "
                         f"{torch.__version__} does not have; use fp32")
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*(deprecated|quantize_per).*")
        qconfig = ao.quantization.per_channel_dynamic_qconfig
        return quantize(module, {nn.Linear: qconfig}, dtype=torch.qint8)


def _resolve_arch(name: str, pretrained: str | None) -> tuple[str, dict[str, Any]]:
    """open_clip config name and overrides. openai-style tags were trained with QuickGELU; the plain
    configs use GELU and open_clip only warns, so we force it or the embeddings are subtly wrong."""
    if pretrained in _NONE or name.startswith(_hub.SCHEMAS) or name.endswith("-quickgelu"):
        return name, {}
    if pretrained == "openai" or _hub.open_clip().get_pretrained_cfg(name, pretrained).get("quick_gelu"):
        return name, {"force_quick_gelu": True}
    return name, {}


def load_model(name: str = "ViT-B-32", pretrained: str | None = "openai", device: str = "auto",
               precision: str = "auto") -> Clip:
    """Load (once per process) an open_clip model, seeded when random.

    Args:
        name: open_clip architecture ("ViT-B-32", "test-tiny"), "arch/tag", or "hf-hub:org/repo".
        pretrained: weights tag, a local checkpoint file, or None/"none" for a seeded random init.
            Files carry no QuickGELU flag: name the "-quickgelu" arch for OpenAI weights.
        device: "auto" (cuda, then mps, then cpu) or a torch device string.
        precision: "auto" (fp16 on cuda, else fp32), "fp32", "fp16", "bf16", or "int8" (CPU only:
            the image encoder's Linear layers in int8, faster; text and concept bank stay fp32).

    Raises:
        ValueError: unknown model, tag or precision. FileNotFoundError: missing checkpoint.
        ModelLoadError: weights that cannot be fetched or read.
    """
    if "/" in name and not name.startswith(_hub.SCHEMAS) and pretrained == "openai":
        name, pretrained = parse_model(name)
    if pretrained == "openai" and name in DEFAULT_PRETRAINED:
        pretrained = DEFAULT_PRETRAINED[name]
    pretrained = "none" if pretrained in _NONE else str(pretrained)
    dev = _resolve_device(device)
    prec = _resolve_precision(precision, dev)
    kind = _hub.classify(name, pretrained, is_default=DEFAULT_PRETRAINED.get(name) == pretrained)
    stamp = ""
    if kind == "file":  # key the in-process cache on the file's state, not only its name
        pretrained = str(Path(pretrained).expanduser().resolve())
        st = os.stat(pretrained)
        stamp = f"{st.st_size}-{st.st_mtime_ns}"
    return _load(name, "" if kind in ("hub", "dir") else pretrained, kind, str(dev), prec, stamp)


# Loaded models, most recent last. Small: a ViT-L/14 is 1.7 GB; the app evicts a model with its engine.
_MODELS: LRU[tuple, Clip] = LRU(max_items=3)


def forget_model(clip: Clip) -> None:
    """Drop a loaded model from the in-process cache (its memory goes once no one holds it)."""
    for key in list(_MODELS):
        if _MODELS.get(key) is clip:
            _MODELS.evict(key)


@memoize(_MODELS)
def _load(name: str, pretrained: str, kind: str, device: str, precision: str, stamp: str) -> Clip:
    oc = _hub.open_clip()
    arch, kwargs = _resolve_arch(name, pretrained)
    label = f"{name}/{pretrained}" if pretrained else name
    cached = False
    if kind in ("tag", "hub"):
        cached, host = _hub.weights_cached(name, pretrained, kind)
        if not cached and (offline() or not _hub.reachable(host)):
            raise ModelLoadError(f"cannot fetch the weights of {label}: they are not in the local cache "
                                 f"and {host} cannot be reached (offline or HF_HUB_OFFLINE=1). {_FIXES}")
    _log.info("loading %s on %s (%s)", label, device, precision)
    try:
        with _hub.cache_only(cached), torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)  # random inits are reproducible: caches are keyed on model_id
            model = oc.create_model(arch, pretrained=None if kind in ("none", "hub", "dir") else pretrained,
                                    device=device, precision="fp32" if precision == "int8" else precision,
                                    **kwargs)
            tokenizer = oc.get_tokenizer(arch)
    except (RuntimeError, OSError, ValueError) as e:  # download, file and state-dict failures
        fixes = _FIXES if kind in ("tag", "hub") else ""
        raise ModelLoadError(f"could not load {label}: {e}. {fixes}".strip()) from e
    model.eval()
    if precision == "int8":
        model.visual = _quantize_int8(model.visual)
    cfg = oc.get_model_preprocess_cfg(model)
    size = cfg["size"]
    from open_clip.transform import PreprocessCfg, image_transform_v2

    preprocess = image_transform_v2(PreprocessCfg(**model.visual.preprocess_cfg), is_train=False)
    return Clip(model=model, tokenizer=tokenizer, name=name, pretrained=pretrained,
                image_size=int(size if isinstance(size, int) else size[0]),
                mean=tuple(float(v) for v in cfg["mean"]), std=tuple(float(v) for v in cfg["std"]),
                device=torch.device(device), dtype=_DTYPES.get(precision, torch.float32), precision=precision,
                context_length=int(getattr(model, "context_length", None) or tokenizer.context_length),
                fingerprint=_hub.fingerprint(pretrained) if kind == "file" else "", preprocess=preprocess)
