"""Figures of `convis bench` about getting a first map early and using the CPU well.

* `progressive_figures`: time to the first complete stage of the coarse-to-fine index, and each
  stage's time, against the same run's full index.
* `encoder_rates`: fp32 and int8 (dynamically quantised) encoder images/s on the same crops, and
  the measured fp32 GEMM peak, interleaved so a shared machine's load hits all three alike;
  `encoder_gflop_per_image`: what one image costs the encoder (2 FLOP per multiply-add), so
  rate x cost / peak says how close to the peak the encoder runs.
"""

from __future__ import annotations

import time

import torch
from PIL import Image

from convis.config import GridConfig


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def progressive_figures(engine, image: Image.Image, config: GridConfig, batch_size: int) -> dict:
    """Seconds from the start to each stage's snapshot (index plus its top concepts drawn)."""
    dev = engine.clip.device
    _sync(dev)
    t0 = time.perf_counter()
    stages = []
    for number, part in enumerate(engine.index_progressive(image, config, batch_size), 1):
        part.top_concepts(15)  # what the app shows with the first map
        _sync(dev)
        stages.append({"stage": number, "windows": len(part.boxes), "seconds": round(time.perf_counter() - t0, 3)})
    return {"preview_windows": stages[0]["windows"], "first_preview_seconds": stages[0]["seconds"],
            "progressive_index_seconds": stages[-1]["seconds"], "progressive_stages": stages}


def encoder_gflop_per_image(clip) -> float:
    """FLOP of one image through the image encoder (torch's counter: 2 per multiply-add), in GFLOP."""
    from torch.utils.flop_counter import FlopCounterMode

    x = torch.zeros(1, 3, clip.image_size, clip.image_size, device=clip.device, dtype=clip.dtype)
    counter = FlopCounterMode(display=False)
    # With grad on: under inference mode nn.MultiheadAttention takes a fused fast path that the
    # counter does not see (ViT-B/32 would count 5.9 instead of 8.8 GFLOP).
    with counter, torch.enable_grad():
        clip.model.encode_image(x)
    return counter.get_total_flops() / 1e9


def encoder_rates(clip, crops: torch.Tensor, batch_size: int, int8: bool = True) -> dict:
    """fp32 and int8 images/s on `crops` (N, 3, S, S), and the GEMM peak, measured interleaved.

    Batch by batch: the fp32 encoder, then the int8 one, then one GEMM; so on a shared machine
    all three see the same load and their ratios hold. int8 is None off the CPU (CPU only).
    """
    from convis.clip.models import load_model

    dev = clip.device
    q = load_model(clip.name, clip.pretrained or "none", device="cpu", precision="int8") \
        if int8 and dev.type == "cpu" else None
    a, b = torch.randn(2048, 2048, device=dev), torch.randn(2048, 2048, device=dev)
    for warm in (clip, q):
        if warm is not None:
            warm.encode_image(crops[:2])
    seconds = {"fp32": 0.0, "int8": 0.0}
    gemm = []
    for i in range(0, len(crops), batch_size):
        batch = crops[i : i + batch_size]
        for name, model in (("fp32", clip), ("int8", q)):
            if model is not None:
                _sync(dev)
                t0 = time.perf_counter()
                model.encode_image(batch)
                _sync(dev)
                seconds[name] += time.perf_counter() - t0
        _sync(dev)
        t0 = time.perf_counter()
        a @ b
        _sync(dev)
        gemm.append(2 * 2048**3 / (time.perf_counter() - t0) / 1e9)
    return {"fp32": len(crops) / seconds["fp32"], "int8": len(crops) / seconds["int8"] if q else None,
            "gemm_gflops": max(gemm)}
