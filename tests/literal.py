"""Algorithm 1 written from the paper and the reference code, independently of `convis`.

PIL centre crop and bicubic resize to 224, a noise border, all 1,800 windows (30² corners per
scale, boxes clipped at the border), each cropped from the uint8 padded image and resized to the
model input with PIL's bicubic filter (as the reference does), the full ranking of T per window
with numpy, and plain slice-by-slice accumulation over the pixels each window covers. Only the
CLIP model is shared with the code under test. PIL rounds every resized window to uint8, so the
fast path agrees with this within a tolerance, not to the last bit.
"""

import numpy as np
import torch
from PIL import Image


def noise_padded(image, seed, pad=128):
    """The reference's step 2: the 224 x 224 centre square inside `pad` px of uniform RGB noise.

    Same recipe as the product states it (seeded uint8 noise from torch's generator), written here
    without calling it, so a changed border shows up as a mismatch.
    """
    side = min(image.size)
    x0, y0 = (image.size[0] - side) // 2, (image.size[1] - side) // 2
    square = np.asarray(image.convert("RGB").crop((x0, y0, x0 + side, y0 + side))
                        .resize((224, 224), Image.Resampling.BICUBIC))
    gen = torch.Generator().manual_seed(seed)
    noise = torch.randint(0, 256, (3, 224 + 2 * pad, 224 + 2 * pad), generator=gen, dtype=torch.uint8)
    padded = noise.permute(1, 2, 0).numpy().copy()  # (480, 480, 3) uint8
    padded[pad : pad + 224, pad : pad + 224] = square
    return padded


def literal_windows(image, clip, seed):
    """Every window of the reference grid: its box and its L2-normalised CLIP embedding."""
    padded = Image.fromarray(noise_padded(image, seed))
    side, size = padded.size[0], clip.image_size
    mean, std = np.array(clip.mean).reshape(3, 1, 1), np.array(clip.std).reshape(3, 1, 1)
    boxes, crops = [], []
    for b in (128, 64):
        for y in range(0, side, 16):
            for x in range(0, side, 16):
                box = (x, y, min(x + b, side), min(y + b, side))
                pixels = np.asarray(padded.crop(box).resize((size, size), Image.Resampling.BICUBIC))
                crops.append((pixels.transpose(2, 0, 1) / 255.0 - mean) / std)  # (3, S, S)
                boxes.append(box)
    emb = clip.encode_image(torch.tensor(np.stack(crops), dtype=torch.float32)).numpy()
    return boxes, emb / np.linalg.norm(emb, axis=1, keepdims=True)


def window_mean(boxes, values):
    """Per pixel of the central 224 x 224: the mean value of the windows covering it (slice by slice)."""
    sums, counts = np.zeros((480, 480)), np.zeros((480, 480))
    for (x0, y0, x1, y1), v in zip(boxes, values):
        sums[y0:y1, x0:x1] += v
        counts[y0:y1, x0:x1] += 1
    return (sums / counts)[128:352, 128:352]


def literal_algorithm_1(windows, bank, subtree, score="rank", gamma_n=91):
    """Algorithm 1 as the paper states it, for one concept. Returns the (224, 224) map.

    `gamma_n`: the gamma score's n; the reference hard-codes 91 (the bird subtree) for every concept."""
    boxes, emb = windows
    values = []
    for e in emb:
        order = np.argsort(-(bank @ e), kind="stable")  # T, most similar first
        rank = np.empty(len(order), dtype=np.int64)
        rank[order] = np.arange(len(order))
        r = rank[subtree].min()  # max_rank_sim: the best rank in hypo*(s)
        if score == "gamma":
            n = gamma_n
            r = 2 * np.exp(-5.0 * r / n) - 1 if r < n else -1.0
        values.append(r)
    mean = window_mean(boxes, values)
    lo, hi = mean.min(), mean.max()
    return (mean - lo) / (hi - lo) if score == "gamma" else (hi - mean) / (hi - lo)


def hypo_star(spec, concept):
    """The concept and all its descendants in a {name: parents} spec (a DAG: follow every link)."""
    found = {concept}
    while True:
        more = {n for n, parents in spec.items() if set(parents) & found} - found
        if not more:
            return sorted(found)
        found |= more
