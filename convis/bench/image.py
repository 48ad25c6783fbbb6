"""`convis bench`: how much faster the index is than the reference loop, and how fast maps are.

A benchmark prints figures; it asserts nothing. Random-init weights run as fast as trained ones.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from convis.bench import progressive as pb
from convis import saliency as sal
from convis.config import GridConfig
from convis.cli.flags import add_engine_args, add_run_args, load_engine
from convis.windows import crop_windows, grid_boxes

DEFAULT_IMAGE = Path(__file__).resolve().parents[2] / "assets" / "examples" / "cat.jpg"


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _timed(fn, device: torch.device):
    _sync(device)
    t0 = time.perf_counter()
    out = fn()
    _sync(device)
    return out, time.perf_counter() - t0


def reference_seconds_per_window(engine, index, concept: str, sample: int, seed: int) -> float:
    """The reference's per-window work: PIL crop, CLIP preprocessing, one unbatched forward,
    full ranks over T and the subtree's best rank. Timed on `sample` of the 1,800 windows."""
    clip = engine.clip
    pil = Image.fromarray((index.padded.permute(1, 2, 0) * 255).round().byte().numpy())
    prep = clip.preprocess  # the model's own open_clip transform, as the reference preprocesses
    boxes = grid_boxes(GridConfig(only_touching=False))
    pick = np.random.default_rng(seed).choice(len(boxes), size=min(sample, len(boxes)), replace=False)
    sub = engine.hierarchy.subtree(concept)
    concepts = engine.bank.embeddings

    def run() -> None:
        for x0, y0, x1, y1 in boxes[pick]:
            x = prep(pil.crop((int(x0), int(y0), int(x1), int(y1))))[None]
            emb = clip.encode_image(x)
            ranks = sal.rank_matrix(emb @ concepts.T).cpu().numpy()
            sal.best_rank(ranks, sub)

    _, seconds = _timed(run, clip.device)
    return seconds / len(pick)


def picture_figures(seed: int) -> dict:
    """Model-free costs: MaxBoxAcc's sweep per grid-like map, and a six-panel Figure-1 grid."""
    from scipy import ndimage

    from convis import figure
    from convis.boxes import box_accuracy

    rng = np.random.default_rng(seed)
    coarse = ndimage.gaussian_filter(rng.random((200, 14, 14)), (0, 1.5, 1.5))
    maps = [np.kron(c, np.ones((16, 16))) for c in coarse]  # (224, 224), 16-px blocks like ConVis maps
    _, box_s = _timed(lambda: box_accuracy(maps, [[(50, 50, 150, 150)]] * len(maps)), torch.device("cpu"))
    big = rng.integers(0, 256, (600, 800, 3), dtype=np.uint8)
    six = [m / m.max() for m in maps[:6]]
    _, grid_s = _timed(lambda: figure.grid(big, six, [f"c{i}" for i in range(6)]), torch.device("cpu"))
    return {"box_accuracy_ms_per_map": round(1000 * box_s / len(maps), 3),
            "render_grid_six_panels_seconds": round(grid_s, 3)}


def run_bench(args: argparse.Namespace) -> dict:
    """Measure everything `convis bench` reports; returns the JSON-able figures."""
    from convis.clip.bank import bank_texts
    from convis.clip.text import encode_texts_bucketed, encode_texts_padded
    from convis.image import load_image

    engine = load_engine(args)
    clip, hier = engine.clip, engine.hierarchy
    dev = clip.device
    image = load_image(args.image)
    cfg = GridConfig()
    boxes = grid_boxes(cfg)

    engine.index(image, GridConfig(scales=(128,), stride=112), args.batch_size)  # warm-up
    index, index_seconds = _timed(lambda: engine.index(image, cfg, args.batch_size), dev)
    progressive = pb.progressive_figures(engine, image, cfg, args.batch_size)  # same run: a fair ratio

    padded = index.padded.to(dev)
    crops = crop_windows(padded, boxes, clip.image_size, clip.mean, clip.std)  # (N, 3, S, S)

    rates = pb.encoder_rates(clip, crops, args.batch_size, args.int8)  # fp32, int8, GEMM interleaved
    del crops
    encoder_rate, int8_rate, peak = rates["fp32"], rates["int8"], rates["gemm_gflops"]
    encode_seconds, flop = len(boxes) / encoder_rate, pb.encoder_gflop_per_image(clip)

    rng = np.random.default_rng(args.seed)
    concepts = [hier.ids[i] for i in rng.choice(len(hier), size=min(100, len(hier)), replace=False)]
    times = []
    for c in concepts:
        _, t = _timed(lambda c=c: index.saliency(c, size=0), dev)
        times.append(t)
    crop_times = [_timed(lambda c=c: index.saliency(c), dev)[1] for c in concepts[:20]]
    map_s = statistics.median(times)

    probe = "bird.n.01" if "bird.n.01" in hier.ids else hier.ids[0]
    per_window = reference_seconds_per_window(engine, index, probe, args.reference_sample, args.seed)
    n_ref = 2 * (cfg.padded_size // cfg.stride) ** 2  # 1,800: 30² corners at each of the 2 scales
    reference = per_window * n_ref

    texts = bank_texts(hier, "definitions")
    sample = [texts[i] for i in rng.choice(len(texts), size=min(args.bank_sample, len(texts)), replace=False)]
    padded_emb, padded_s = _timed(lambda: encode_texts_padded(sample, clip), dev)
    bucketed_emb, bucketed_s = _timed(lambda: encode_texts_bucketed(sample, clip), dev)
    scale = len(texts) / len(sample)

    first = index_seconds + map_s
    return {
        "device": str(dev), "precision": clip.precision or str(clip.dtype).replace("torch.", ""), "model": clip.model_id,
        "vocabulary": hier.vocabulary, "concepts": len(hier), "image": str(args.image),
        "torch_threads": torch.get_num_threads(),
        "windows": len(boxes),
        "index_seconds": round(index_seconds, 3),
        "index_windows_per_second": round(len(boxes) / index_seconds, 2),
        "encoder_images_per_second": round(encoder_rate, 2),
        "preview_windows": progressive["preview_windows"],
        "first_preview_seconds": progressive["first_preview_seconds"],
        "first_preview_fraction_of_index": round(progressive["first_preview_seconds"] / index_seconds, 3),
        "progressive_index_seconds": progressive["progressive_index_seconds"],
        "progressive_stages": progressive["progressive_stages"],
        "gemm_gflops": round(peak, 1),
        "encoder_gflop_per_image": round(flop, 3),
        "encoder_peak_fraction": round(flop * encoder_rate / peak, 3),
        "int8_images_per_second": None if int8_rate is None else round(int8_rate, 2),
        "int8_speedup": None if int8_rate is None else round(int8_rate / encoder_rate, 2),
        "index_efficiency": round(encode_seconds / index_seconds, 3),
        "map_ms_median": round(1000 * map_s, 3),
        "map_ms_median_at_crop_size": round(1000 * statistics.median(crop_times), 3),
        "map_concepts_timed": len(concepts),
        "reference_windows": n_ref,
        "reference_windows_timed": min(args.reference_sample, n_ref),
        "reference_one_concept_seconds": round(reference, 2),
        "reference_note": f"per-window time of the literal loop (PIL crop + preprocess + 1 unbatched forward + "
                          f"ranks) on {min(args.reference_sample, n_ref)} random windows, scaled to {n_ref}",
        "speedup_first_concept": round(reference / first, 2),
        "speedup_ten_concepts": round(10 * reference / (index_seconds + 10 * map_s), 2),
        "bank_sample": len(sample),
        "bank_mean_tokens": round(float(np.mean([len(clip.tokenizer([t])[0].nonzero()) for t in sample])), 1),
        "bank_padded_seconds": round(padded_s, 3),
        "bank_bucketed_seconds": round(bucketed_s, 3),
        "bank_speedup": round(padded_s / bucketed_s, 2),
        "bank_max_abs_diff": float((padded_emb - bucketed_emb).abs().max()),
        "bank_full_padded_seconds_est": round(padded_s * scale, 1),
        "bank_full_bucketed_seconds_est": round(bucketed_s * scale, 1),
        **picture_figures(args.seed),
    }


def cmd_bench(args: argparse.Namespace) -> int:
    if args.what == "store":
        from convis.bench.store import run_store_bench
        from convis.cli.flags import load_engine

        figures = run_store_bench(load_engine(args), args)
    elif args.what == "ray":
        from convis.bench.ray_overhead import run_ray_bench
        from convis.cli.flags import load_engine

        figures = run_ray_bench(load_engine(args), args)
    else:
        figures = run_bench(args)
    if args.json:
        print(json.dumps(figures, indent=2))
    else:
        for k, v in figures.items():
            print(f"{k:34s} {v}")
    return 0


def add_bench_parser(sub) -> None:
    """Register `convis bench` on the CLI's subparsers."""
    p = sub.add_parser("bench", help="benchmark: 'image' (index vs the reference loop, map latency, bank) "
                                     "'store' (dataset indexing throughput, search at scale) or 'ray' "
                                     "(the Ray engine's start-up and per-image cost vs local)")
    p.add_argument("what", nargs="?", choices=("image", "store", "ray"), default="image")
    add_engine_args(p)  # --pretrained none: random init, as fast as trained weights and offline
    p.add_argument("--image", default=str(DEFAULT_IMAGE))
    p.add_argument("--reference-sample", type=int, default=120, help="reference windows actually timed")
    p.add_argument("--bank-sample", type=int, default=480, help="glosses timed for the bank figures")
    p.add_argument("--no-int8", dest="int8", action="store_false", help="skip the int8 encoder figure")
    add_run_args(p)
    s = p.add_argument_group("store")
    s.add_argument("--images", type=int, default=4, help="store, ray: scenes indexed for the throughput figure")
    s.add_argument("--fabricate", type=int, default=100_000, help="store: images of the fabricated store")
    s.add_argument("--rescore-images", type=int, default=20, help="store: images rescored for that figure")
    s.add_argument("--concept", default=None, help="store: concept searched (default: the vocabulary's last)")
    s.add_argument("--scratch", default=None, help="store, ray: folder for the temporary stores (default: $TMPDIR)")
    p.set_defaults(func=cmd_bench)
