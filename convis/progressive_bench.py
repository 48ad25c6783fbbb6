"""Figures of `convis bench` about getting a first map early and using the CPU well.

* `progressive_figures`: time to the first complete stage of the coarse-to-fine index, and each
  stage's time, against the same run's full index.
* `gemm_gflops`: the measured fp32 GEMM peak of the device; `encoder_gflop_per_image`: what one
  image costs the encoder (2 FLOP per multiply-add), so their ratio says how close to the peak
  the encoder runs.
* `int8_images_per_second`: the same crops through the int8 (dynamically quantised) encoder.
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
    for part in engine.index_progressive(image, config, batch_size):
        part.top_concepts(15)  # what the app shows with the first map
        _sync(dev)
        stages.append({"stage": part.stage, "windows": part.done, "seconds": round(time.perf_counter() - t0, 3)})
    return {"preview_windows": stages[0]["windows"], "first_preview_seconds": stages[0]["seconds"],
            "progressive_index_seconds": stages[-1]["seconds"], "progressive_stages": stages}


def gemm_gflops(device: torch.device, n: int = 2048, repeats: int = 5) -> float:
    """Best fp32 (n x n) @ (n x n) rate over `repeats`, in GFLOP/s (2 n³ FLOP each)."""
    a = torch.randn(n, n, device=device)
    b = torch.randn(n, n, device=device)
    a @ b  # warm-up: thread pool, allocator
    best = float("inf")
    for _ in range(repeats):
        _sync(device)
        t0 = time.perf_counter()
        a @ b
        _sync(device)
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best / 1e9


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


def int8_images_per_second(clip, crops: torch.Tensor, batch_size: int) -> float | None:
    """Images/s of the int8 encoder on `crops` (N, 3, S, S); None off the CPU (int8 is CPU only)."""
    from convis.models import load_model

    if clip.device.type != "cpu":
        return None
    q = load_model(clip.name, clip.pretrained or "none", device="cpu", precision="int8")
    q.encode_image(crops[:2])  # warm-up
    t0 = time.perf_counter()
    for i in range(0, len(crops), batch_size):
        q.encode_image(crops[i : i + batch_size])
    return len(crops) / (time.perf_counter() - t0)
