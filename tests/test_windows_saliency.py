"""Invariants of the pure core: window geometry, ranks, accumulation, scores."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from convis import saliency as sal
from convis.config import GridConfig, StochasticConfig
from convis.windows import centre_crop_box, crop_windows, grid_boxes, pad_with_noise, prepare_image


def test_grid_has_the_papers_730_touching_windows_and_1800_in_all():
    assert len(grid_boxes(GridConfig())) == 21 * 21 + 17 * 17 == 730
    assert len(grid_boxes(GridConfig(only_touching=False))) == 2 * 30 * 30


def test_every_central_pixel_is_covered_by_64_large_and_16_small_windows():
    cfg = GridConfig()
    boxes = grid_boxes(cfg)
    _, counts = sal.accumulate(np.zeros((1, len(boxes))), boxes, cfg.padded_size)
    centre = counts[cfg.pad : cfg.pad + cfg.image_size, cfg.pad : cfg.pad + cfg.image_size]
    assert (centre == 80).all()


def test_touching_windows_are_exactly_those_overlapping_the_image():
    cfg = GridConfig()
    all_boxes = grid_boxes(GridConfig(only_touching=False))
    lo, hi = cfg.pad, cfg.pad + cfg.image_size
    touching = (all_boxes[:, 2] > lo) & (all_boxes[:, 0] < hi) & (all_boxes[:, 3] > lo) & (all_boxes[:, 1] < hi)
    assert {tuple(b) for b in all_boxes[touching]} == {tuple(b) for b in grid_boxes(cfg)}


def test_boxes_stay_inside_the_padded_image_and_are_exact_squares_when_touching():
    boxes = grid_boxes(GridConfig())
    assert boxes.min() >= 0 and boxes.max() <= 480
    sides = boxes[:, 2:] - boxes[:, :2]
    assert set(np.unique(sides)) == {64, 128}
    assert (sides[:, 0] == sides[:, 1]).all()


@pytest.mark.parametrize(("w", "h", "expected"), [(300, 200, (50, 0, 200)), (200, 301, (0, 50, 200)), (64, 64, (0, 0, 64))])
def test_centre_crop_trims_the_longer_side_symmetrically(w, h, expected):
    c = centre_crop_box(w, h)
    assert (c.x0, c.y0, c.side) == expected


def test_prepare_image_returns_a_square_uint8_crop():
    img = Image.new("RGB", (300, 200), (10, 20, 30))
    pixels, crop = prepare_image(img, 224)
    assert pixels.shape == (224, 224, 3) and pixels.dtype == np.uint8
    assert crop.box == (50, 0, 250, 200)


def test_noise_padding_is_seeded_and_keeps_the_image():
    img = np.full((32, 32, 3), 200, np.uint8)
    a, b, c = pad_with_noise(img, 8, 0), pad_with_noise(img, 8, 0), pad_with_noise(img, 8, 1)
    assert a.shape == (3, 48, 48)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert torch.allclose(a[:, 8:40, 8:40], torch.full((3, 32, 32), 200 / 255))
    assert a.min() >= 0 and a.max() <= 1


def test_crop_windows_matches_one_by_one_resizing_and_normalises():
    padded = torch.rand(3, 96, 96, generator=torch.Generator().manual_seed(0))
    boxes = np.array([[0, 0, 32, 32], [16, 16, 80, 80], [32, 0, 64, 32], [50, 60, 96, 96]])
    batched = crop_windows(padded, boxes, 24, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
    assert batched.shape == (4, 3, 24, 24)
    for i, b in enumerate(boxes):
        single = crop_windows(padded, b[None], 24, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
        assert torch.allclose(batched[i], single[0], atol=1e-6)
    flat = torch.full((3, 64, 64), 0.75)
    assert torch.allclose(crop_windows(flat, boxes[:1], 24, (0.5,) * 3, (0.25,) * 3), torch.ones(1, 3, 24, 24))


def test_crop_windows_does_not_mutate_its_input():
    padded = torch.rand(3, 64, 64)
    before = padded.clone()
    crop_windows(padded, np.array([[0, 0, 32, 32]]), 16, (0.1, 0.2, 0.3), (0.5, 0.5, 0.5))
    assert torch.equal(padded, before)


def test_rank_matrix_gives_zero_to_the_most_similar_and_is_a_permutation():
    sims = torch.tensor([[0.1, 0.9, 0.5], [0.3, 0.2, 0.1]])
    ranks = sal.rank_matrix(sims)
    assert ranks.tolist() == [[2, 0, 1], [0, 1, 2]]
    big = sal.rank_matrix(torch.randn(5, 50))
    assert (big.sort(dim=1).values == torch.arange(50)).all()


def test_rank_dtype_switches_to_int32_past_int16():
    assert sal.rank_dtype(7156) == np.int16 and sal.rank_dtype(82115) == np.int32


def test_gamma_score_endpoints():
    g = sal.gamma_score(np.array([0, 91, 200]), n=91, gamma=5.0)
    assert g[0] == pytest.approx(1.0) and g[1] == -1.0 and g[2] == -1.0
    assert sal.gamma_score(np.array([45]), 91)[0] == pytest.approx(2 * np.exp(-5 * 45 / 91) - 1)


def _naive_accumulate(values, boxes, side):
    sums = np.zeros((len(values), side, side))
    counts = np.zeros((side, side), np.int64)
    for n, (x0, y0, x1, y1) in enumerate(boxes):
        for y in range(y0, y1):
            for x in range(x0, x1):
                sums[:, y, x] += values[:, n]
                counts[y, x] += 1
    return sums, counts


@settings(max_examples=25, deadline=None)
@given(st.data())
def test_accumulate_equals_a_naive_per_pixel_loop(data):
    side = data.draw(st.integers(4, 20))
    n = data.draw(st.integers(1, 12))
    rng = np.random.default_rng(data.draw(st.integers(0, 10**6)))
    x0 = rng.integers(0, side, n)
    y0 = rng.integers(0, side, n)
    boxes = np.stack([x0, y0, rng.integers(x0 + 1, side + 1), rng.integers(y0 + 1, side + 1)], 1)
    values = rng.integers(0, 100, (2, n)).astype(float)
    sums, counts = sal.accumulate(values, boxes, side)
    ref_sums, ref_counts = _naive_accumulate(values, boxes, side)
    assert np.array_equal(counts, ref_counts)
    assert np.allclose(sums, ref_sums)


def test_grid_maps_are_invariant_to_window_order_and_in_unit_range():
    cfg = GridConfig()
    boxes = grid_boxes(cfg)
    values = np.random.default_rng(0).integers(0, 500, (1, len(boxes)))
    perm = np.random.default_rng(1).permutation(len(boxes))
    a = sal.grid_maps(values, boxes, 480, 128, 224, higher_is_better=False)
    b = sal.grid_maps(values[:, perm], boxes[perm], 480, 128, 224, higher_is_better=False)
    assert a.shape == (1, 224, 224) and a.dtype == np.float32
    assert np.allclose(a, b, atol=1e-6)
    assert a.min() == 0.0 and a.max() == 1.0


def test_lower_rank_in_one_window_never_lowers_saliency_where_it_covers():
    cfg = GridConfig()
    boxes = grid_boxes(cfg)
    values = np.random.default_rng(0).integers(100, 500, (1, len(boxes))).astype(float)
    base = sal.grid_maps(values, boxes, 480, 128, 224, False)
    better = values.copy()
    better[0, 300] = 0  # this window now ranks the concept first
    after = sal.grid_maps(better, boxes, 480, 128, 224, False)
    x0, y0, x1, y1 = boxes[300] - 128
    region = np.s_[0, max(y0, 0) : y1, max(x0, 0) : x1]
    assert after[region].mean() > base[region].mean()


def test_flat_scores_give_an_all_zero_map():
    boxes = grid_boxes(GridConfig())
    out = sal.grid_maps(np.full((1, len(boxes)), 7.0), boxes, 480, 128, 224, False)
    assert not out.any()


def test_subtree_best_ranks_matches_direct_minimum_on_a_dag():
    # 0 <- 1, 0 <- 2, 1 <- 3, 2 <- 3 (3 has two parents), 2 <- 4
    children = [[1, 2], [3], [3, 4], [], []]
    ranks = np.array([[4, 3, 2, 0, 1], [0, 1, 2, 3, 4]])
    best = sal.subtree_best_ranks(ranks, [3, 4, 1, 2, 0], children)
    subtrees = [[0, 1, 2, 3, 4], [1, 3], [2, 3, 4], [3], [4]]
    expected = np.stack([ranks[:, s].min(1) for s in subtrees], 1)
    assert np.array_equal(best, expected)


def test_surprise_prefers_the_specific_concept_over_its_ancestor():
    best = np.array([[0, 0]])  # both the leaf and the root hold rank 0 in this window
    s = sal.surprise(best, sizes=np.array([1.0, 1000.0]), num_concepts=1000)
    assert s[0, 0] == pytest.approx(np.log(1000))
    assert s[0, 1] < 1.0 < s[0, 0]


def test_stochastic_map_is_seeded_and_follows_the_evidence():
    def score_box(box):  # evidence only in the image's top-left quarter
        x0, y0, _, _ = box
        return 1.0 if (128 <= x0 < 200 and 128 <= y0 < 200) else -1.0

    cfg = StochasticConfig(iterations=120, reset_every=40, epsilon=0.5)
    a = sal.stochastic_map(score_box, cfg)
    assert np.array_equal(a, sal.stochastic_map(score_box, cfg))
    assert a.shape == (224, 224)
    assert a[:112, :112].mean() > a[112:, 112:].mean()
