"""Train the tiny `synthetic-shapes` CLIP on windows of the synthetic world (convis/eval/shapes.py).

    HF_HUB_OFFLINE=1 python scripts/train_synthetic.py     # seeded; 548 s on a shared 2-core CPU

Training pairs are windows cut exactly as ConVis cuts them (squares of side 64 or 128 of a
noise-padded 224 x 224 scene, resized to the model's input), so the windows the benchmark
ranks look like training images. A window's text is the WordNet gloss (and, in a second loss
term, the lemma string) of the figure it shows; windows without a whole figure show the
scene's texture (`background.n.02`, `stripe.n.05`, ...) or the `noise.n.03` border, in
proportion to their area. A figure that is only partly inside gets a partial weight. The loss
is CLIP's image-to-text InfoNCE against the texts of every concept of the vocabulary (soft
targets), so each window learns to rank its own concept first among all of T, which is what
ConVis reads. The first quarter of the steps shows one figure per scene, mostly whole: without
that the model settles on "background or noise" for every window.
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import numpy as np
import open_clip
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from convis.clip.bank import bank_texts
from convis.clip.text import encode_text_truncated  # the engine's exact cut-padding forward
from convis.eval import shapes
from convis.windows import crop_windows, pad_with_noise

ROOT = Path(__file__).resolve().parents[1]
ARCH, PAD = "synthetic-shapes", 128


def sample_windows(rng: np.random.Generator, scene: shapes.Scene, k: int, p_whole: float) -> np.ndarray:
    """(k, 4) windows in padded pixels, 64 or 128 px.

    With probability `p_whole` a window holds one figure whole (the case ConVis must rank right);
    otherwise it is any window touching the scene, as in the grid (partial figures, background,
    noise border).
    """
    side, out = shapes.SIZE + 2 * PAD, []
    for _ in range(k):
        b = int(rng.choice((64, 128), p=(0.4, 0.6)))  # the grid has 289 small and 441 large windows
        if scene.boxes and rng.random() < p_whole:
            x0, y0, x1, y1 = (v + PAD for v in scene.boxes[rng.integers(len(scene.boxes))])
            b = b if max(x1 - x0, y1 - y0) <= b else 128
            x, y = rng.uniform(min(x1 - b, x0), x0), rng.uniform(min(y1 - b, y0), y0)
        else:
            x, y = rng.uniform(PAD - b + 8, PAD + shapes.SIZE - 8, 2)
        x, y = (int(np.clip(round(v), 0, side - b)) for v in (x, y))
        out.append((x, y, x + b, y + b))
    return np.asarray(out, dtype=np.int64)


def window_targets(scene: shapes.Scene, boxes: np.ndarray, column: dict[str, int], t: int) -> np.ndarray:
    """(k, T) soft targets: each figure by how much of it the window holds, the rest background/noise."""
    s = shapes.SIZE
    sat = np.zeros((len(scene.masks), s + 1, s + 1))  # summed-area tables of the figure masks
    sat[:, 1:, 1:] = scene.masks.cumsum(1).cumsum(2)
    area = np.maximum(sat[:, -1, -1], 1.0)
    out = np.zeros((len(boxes), t), dtype=np.float32)
    for i, (x0, y0, x1, y1) in enumerate(boxes - PAD):
        cx0, cy0, cx1, cy1 = (int(np.clip(v, 0, s)) for v in (x0, y0, x1, y1))
        inside = sat[:, cy1, cx1] - sat[:, cy0, cx1] - sat[:, cy1, cx0] + sat[:, cy0, cx0]
        presence = np.clip((inside / area - 0.5) / 0.4, 0.0, 1.0)  # 0 at <= 50 % visible, 1 at >= 90 %
        for name, p in zip(scene.synsets, presence):
            out[i, column[name]] += p
        rest = 1.0 - (presence.max() if presence.size else 0.0)
        noise = 1.0 - (cx1 - cx0) * (cy1 - cy0) / ((x1 - x0) * (y1 - y0))
        out[i, column[shapes.NOISE]] += rest * noise
        out[i, column[scene.texture]] += rest * (1.0 - noise)
    return out / out.sum(axis=1, keepdims=True)


def make_batch(rng: np.random.Generator, scenes: int, per_scene: int, spec: dict, column: dict[str, int],
               t: int, noise: list[torch.Tensor], easy: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, 3, S, S) normalised windows and (B, T) targets from fresh scenes.

    `easy` (the first part of training) draws one figure per scene and mostly whole-figure
    windows: without it the model settles on "background or noise" for every window.
    """
    xs, ys = [], []
    for _ in range(scenes):
        scene = shapes.random_scene(rng, objects=(1, 1) if easy else (0, 3))
        padded = noise[rng.integers(len(noise))].clone()  # noise borders are drawn once: cheap
        centre = np.s_[:, PAD:PAD + shapes.SIZE, PAD:PAD + shapes.SIZE]
        padded[centre] = torch.from_numpy(scene.image).permute(2, 0, 1) / 255.0
        boxes = sample_windows(rng, scene, per_scene, 0.9 if easy else 0.7)
        xs.append(crop_windows(padded, boxes, spec["size"], spec["mean"], spec["std"]))
        ys.append(torch.from_numpy(window_targets(scene, boxes, column, t)))
    return torch.cat(xs), torch.cat(ys)


class WindowPool:
    """A shuffle buffer of windows: a batch then mixes windows of ~100 scenes, not of the few just
    drawn (windows of one scene are alike, and a batch of few scenes learns slowly)."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.x, self.y = x, y  # (P, 3, S, S), (P, T)

    def swap(self, x: torch.Tensor, y: torch.Tensor, gen: torch.Generator,
             ) -> tuple[torch.Tensor, torch.Tensor]:
        """Take len(x) random windows out and put the new ones in their slots (no big copies)."""
        slots = torch.randperm(len(self.x), generator=gen)[: len(x)]
        out = self.x[slots], self.y[slots]  # advanced indexing copies
        self.x[slots], self.y[slots] = x, y
        return out


def soft_cross_entropy(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return -(target * F.log_softmax(logits, dim=1)).sum(dim=1).mean()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=1700)
    p.add_argument("--scenes", type=int, default=6, help="fresh scenes per batch")
    p.add_argument("--windows", type=int, default=16, help="windows per scene")
    p.add_argument("--easy", type=float, default=0.25, help="share of steps on one-figure scenes")
    p.add_argument("--pool", type=int, default=20, help="batches kept in the shuffle buffer")
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest on a busy 2-core box)")
    p.add_argument("--out", type=Path, default=ROOT / "convis/eval/assets/synthetic-shapes.safetensors")
    args = p.parse_args()
    start = time.perf_counter()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    open_clip.add_model_config(ROOT / "convis/clip/model_configs")
    model = open_clip.create_model(ARCH, pretrained=None)
    spec = {k: open_clip.get_model_preprocess_cfg(model)[k] for k in ("mean", "std")}
    spec["size"] = model.visual.image_size[0]
    tokenizer = open_clip.get_tokenizer(ARCH)
    hier = shapes.shapes_hierarchy()
    column = {n: i for i, n in enumerate(hier.ids)}
    glosses, lemmas = (tokenizer(bank_texts(hier, s)) for s in ("definitions", "lemmas"))  # (T, 77)
    blank = np.zeros((shapes.SIZE, shapes.SIZE, 3), np.uint8)
    noise = [pad_with_noise(blank, PAD, int(s)) for s in rng.integers(2**31, size=16)]
    held = np.random.default_rng(args.seed + 1)
    val_x, val_y = make_batch(held, 40, 24, spec, column, len(hier), noise)  # fixed held-out windows

    no_decay = [p for n, p in model.named_parameters() if p.ndim < 2 or "embedding" in n]
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2 and "embedding" not in n]
    groups = [{"params": decay, "weight_decay": 0.05}, {"params": no_decay, "weight_decay": 0.0}]
    opt = torch.optim.AdamW(groups, lr=args.lr, betas=(0.9, 0.98))
    warm = 50
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warm) * 0.5 * (1 + math.cos(math.pi * min(1.0, s / args.steps))))

    both = torch.cat([glosses, lemmas])
    both = both[:, : int((both != 0).sum(1).max())]  # (2T, L): cut the padding, as the bank does

    def texts() -> tuple[torch.Tensor, torch.Tensor]:
        emb = F.normalize(encode_text_truncated(model, both), dim=-1)  # exact for a causal tower
        return emb[: len(glosses)], emb[len(glosses):]

    gen = torch.Generator().manual_seed(args.seed)
    t = len(hier)
    pool = WindowPool(*make_batch(rng, args.scenes * args.pool, args.windows, spec, column, t, noise, True))
    for step in range(1, args.steps + 1):
        model.train()
        easy = step <= args.steps * args.easy
        x, y = pool.swap(*make_batch(rng, args.scenes, args.windows, spec, column, t, noise, easy), gen)
        img = F.normalize(model.encode_image(x), dim=-1)  # (B, D)
        tg, tl = texts()
        scale = model.logit_scale.exp().clamp(max=100.0)
        loss = soft_cross_entropy(scale * img @ tg.T, y) + 0.5 * soft_cross_entropy(scale * img @ tl.T, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if step % 350 == 0 or step == args.steps:
            model.eval()
            with torch.no_grad():
                pred = (F.normalize(model.encode_image(val_x), dim=-1) @ texts()[0].T).argmax(1)
            clear = val_y.max(1).values >= 0.8  # windows with one clear answer
            plain = torch.tensor([column[n] for n in (shapes.NOISE, *shapes.TEXTURES)])
            figure = clear & ~torch.isin(val_y.argmax(1), plain)  # windows that show one figure
            ok = pred == val_y.argmax(1)
            print(f"step {step:4d}  loss {loss.item():.3f}  held-out top-1 {ok[clear].float().mean():.3f} "
                  f"(figures {ok[figure].float().mean():.3f})  {time.perf_counter() - start:.0f} s",
                  flush=True)
    save(model, glosses, lemmas, args, time.perf_counter() - start)


def save(model: torch.nn.Module, glosses: torch.Tensor, lemmas: torch.Tensor, args: argparse.Namespace,
         seconds: float) -> None:
    """fp16 safetensors of the open_clip state dict. Token rows no text of the vocabulary uses got
    no gradient (still their random init) and are zeroed, so the file compresses well in git."""
    state = {k: v.detach().to(torch.float16).contiguous() for k, v in model.state_dict().items()}
    used = torch.unique(torch.cat([glosses, lemmas]).flatten())
    keep = torch.zeros(state["token_embedding.weight"].shape[0], dtype=torch.bool)
    keep[used] = True
    state["token_embedding.weight"][~keep] = 0
    args.out.parent.mkdir(parents=True, exist_ok=True)
    meta = {"arch": ARCH, "script": "scripts/train_synthetic.py", "seed": str(args.seed),
            "steps": str(args.steps),
            "batch": str(args.scenes * args.windows), "train_seconds": f"{seconds:.0f}",
            "torch": torch.__version__, "open_clip": open_clip.__version__}
    save_file(state, str(args.out), metadata=meta)
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.1f} MB) after {seconds:.0f} s")


if __name__ == "__main__":
    main()
