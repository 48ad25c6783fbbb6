"""Progressive indexing: stage sizes by hand, coverage by a naive pixel loop, the final snapshot
equal to `index_image`, and each stage's map equal to a naive mean over its windows."""

import numpy as np
import pytest
import torch
from _planted import RED_BANK as CONCEPTS, RED_HIER as HIER, SPEC, planted_square as planted, red_fraction_encoder

from convis.config import GridConfig
from convis.index.build import index_image, iter_index
from convis.index.progressive import DEFAULT_SCHEDULE, Stage, stage_rows
from convis.windows import grid_boxes

BOX = (60, 60, 140, 140)
BIG = (40, 40, 184, 184)  # big enough that some stage-1 window (128 px of 224) is all red


def _naive_map(ranks_min: np.ndarray, boxes: np.ndarray, pad: int = 128, size: int = 224) -> np.ndarray:
    """Per-pixel mean of covering windows' values, by a loop over windows, then inverted min-max."""
    total = np.zeros((size, size))
    count = np.zeros((size, size))
    for v, (x0, y0, x1, y1) in zip(ranks_min, boxes):
        xs, xe = max(x0 - pad, 0), min(x1 - pad, size)
        ys, ye = max(y0 - pad, 0), min(y1 - pad, size)
        if xs < xe and ys < ye:
            total[ys:ye, xs:xe] += v
            count[ys:ye, xs:xe] += 1
    mean = total / count
    return (mean.max() - mean) / (mean.max() - mean.min())


def _naive_blur(m: np.ndarray, k: int) -> np.ndarray:
    """Mean over the k x k box [i - k//2, i + k - k//2 - 1] with edge pixels repeated, by slicing."""
    side = m.shape[0]
    idx = np.clip(np.arange(-(k // 2), side + k - k // 2 - 1), 0, side - 1)
    p = m[np.ix_(idx, idx)]
    out = np.zeros_like(m, dtype=np.float64)
    for dy in range(k):
        for dx in range(k):
            out += p[dy:dy + side, dx:dx + side]
    return out / (k * k)


def test_box_blur_matches_a_naive_loop():
    from convis.index.progressive import box_blur

    m = np.random.default_rng(0).random((2, 40, 40))
    for k in (1, 4, 7):
        assert np.allclose(box_blur(m, k)[1], _naive_blur(m[1], k))
    wide = np.random.default_rng(1).random((1, 12, 30))  # a whole picture's map is not square
    expected = np.zeros((12, 30))
    for y in range(12):  # the 5 x 5 box around each pixel, clamped at the edges, one pixel at a time
        for x in range(30):
            ys = np.clip(np.arange(y - 2, y + 3), 0, 11)
            xs = np.clip(np.arange(x - 2, x + 3), 0, 29)
            expected[y, x] = wide[0][np.ix_(ys, xs)].mean()
    assert np.allclose(box_blur(wide, 5)[0], expected)


def test_stage_sizes_match_a_hand_count():
    # 128 px corners: 16..336 step 16 (21 per axis); 64 px corners: 80..336 (17 per axis).
    # Stage 1: 128 px every 4th corner: 6² = 36. Stage 2: every 2nd: 11² = 121, so 85 new.
    # Stage 3: 64 px every 2nd: 9² = 81. The rest: 730 - 202 = 528.
    rows = stage_rows(GridConfig())
    assert [len(r) for r in rows] == [36, 85, 81, 528]
    allrows = np.concatenate(rows)
    assert sorted(allrows.tolist()) == list(range(730))  # each window exactly once
    boxes = grid_boxes(GridConfig())
    assert set(boxes[rows[0], 0].tolist()) == {16, 80, 144, 208, 272, 336}
    assert set((boxes[rows[2], 2] - boxes[rows[2], 0]).tolist()) == {64}


def test_first_stage_covers_every_pixel_of_the_image():
    boxes = grid_boxes(GridConfig())[stage_rows(GridConfig())[0]]
    covered = np.zeros((224, 224), dtype=bool)
    for x0, y0, x1, y1 in boxes - 128:
        covered[max(y0, 0):max(y1, 0), max(x0, 0):max(x1, 0)] = True
    assert covered.all()


def test_a_first_stage_with_holes_is_refused():
    with pytest.raises(ValueError, match="uncovered"):
        stage_rows(GridConfig(), (Stage(64, 128),))
    with pytest.raises(ValueError, match="multiple of 16"):
        stage_rows(GridConfig(), (Stage(128, 40),))


def test_final_snapshot_equals_index_image_and_stages_grow():
    img = planted((250, 224), BOX)
    full = index_image(img, red_fraction_encoder, CONCEPTS, HIER, SPEC, batch_size=16)
    seen = []
    snaps = list(iter_index(img, red_fraction_encoder, CONCEPTS, HIER, SPEC, batch_size=16,
                            progress=lambda d, t: seen.append((d, t))))
    assert [len(s.boxes) for s in snaps] == [36, 121, 202, 730]
    assert [s.stage for s in snaps[:-1]] == [1, 2, 3] and {s.stages for s in snaps[:-1]} == {4}
    assert [s.complete for s in snaps] == [False, False, False, True]
    last = snaps[-1]
    assert np.array_equal(last.boxes, full.boxes) and np.array_equal(last.ranks, full.ranks)
    assert torch.equal(last.embeddings, full.embeddings), "the kept window embeddings, in the same order"
    for part in snaps[:-1]:  # a partial keeps the embeddings of the windows it has, row for row
        rows = [full.boxes.tolist().index(b) for b in part.boxes.tolist()]
        assert torch.equal(part.embeddings, full.embeddings[rows])
    assert torch.equal(last.padded, full.padded) and last.crop == full.crop
    for c in HIER.ids:
        assert np.abs(last.saliency(c) - full.saliency(c)).max() <= 1e-6
    assert last.top_concepts(5) == full.top_concepts(5)
    assert seen[-1] == (730, 730) and [d for d, _ in seen] == sorted(d for d, _ in seen)


def test_each_stage_map_is_the_mean_over_its_windows_and_finds_the_planted_square():
    img = planted((224, 224), BIG)
    full = index_image(img, red_fraction_encoder, CONCEPTS, HIER, SPEC)
    sub = HIER.subtree("red_thing.n.01")
    for snap in iter_index(img, red_fraction_encoder, CONCEPTS, HIER, SPEC):
        # Rows of the full index at this stage's boxes: the partial ranks are the same windows' ranks.
        pos = {tuple(b): i for i, b in enumerate(full.boxes.tolist())}
        rows = [pos[tuple(b)] for b in snap.boxes.tolist()]
        assert np.array_equal(snap.ranks, full.ranks[rows])
        expected = _naive_map(full.ranks[rows][:, sub].min(axis=1), full.boxes[rows])
        smooth = 0 if snap.complete else snap.smooth
        assert smooth == (0 if snap.complete else {1: 64, 2: 32, 3: 32}[snap.stage])
        if smooth:  # a partial map is blurred over its grid's stride, then min-max normalised
            blurred = _naive_blur(expected, smooth)
            expected = (blurred - blurred.min()) / (blurred.max() - blurred.min())
        assert np.abs(snap.saliency("red_thing.n.01", size=0) - expected).max() < 1e-5
        y, x = np.unravel_index(np.argmax(snap.saliency("red_thing.n.01")), (224, 224))
        assert BIG[0] <= x < BIG[2] and BIG[1] <= y < BIG[3]


def test_engine_progressive_equals_engine_index_on_a_real_model(tiny_clip):
    from convis.clip.bank import Bank
    from convis.engine import Engine

    g = torch.Generator().manual_seed(0)
    emb = torch.nn.functional.normalize(torch.randn(len(HIER), 32, generator=g), dim=-1)
    bank = Bank(emb, tiny_clip.model_id, HIER.vocabulary, "definitions", "toy")
    engine = Engine(tiny_clip, HIER, bank)
    img = planted((300, 240), BOX)
    full = engine.index(img, batch_size=64)
    snaps = list(engine.index_progressive(img, batch_size=64))
    assert np.array_equal(snaps[-1].ranks, full.ranks) and snaps[-1].model_id == full.model_id
    assert DEFAULT_SCHEDULE[0] == Stage(128, 64)



def test_whole_picture_stages_end_in_the_whole_picture_index():
    img = planted((448, 224), (10, 80, 90, 160))  # a 2:1 picture, red near its left edge
    cfg = GridConfig(whole=True)
    full = index_image(img, red_fraction_encoder, CONCEPTS, HIER, SPEC, cfg)
    snaps = list(iter_index(img, red_fraction_encoder, CONCEPTS, HIER, SPEC, cfg))
    assert len(snaps) == 4 and snaps[-1].complete and not snaps[0].complete
    assert np.array_equal(snaps[-1].ranks, full.ranks) and np.array_equal(snaps[-1].boxes, full.boxes)
    first = snaps[0].saliency("red_thing.n.01", size=0)
    assert first.shape == (224, 448), "a partial map has the picture's aspect too"
    y, x = np.unravel_index(np.argmax(first), first.shape)
    assert x < 150, f"the first stage already finds the red patch at the left, peak at x={x}"
