"""convis.boxes: map -> box, IoU, MaxBoxAcc / MaxBoxAccV2, pointing game."""


import numpy as np
import pytest
from scipy import ndimage

from convis.boxes import box_accuracy, iou, iou_matrix, map_to_box, pointing_hit


def test_iou_hand_computed():
    assert iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0
    assert iou((0, 0, 10, 10), (5, 0, 15, 10)) == pytest.approx(50 / 150)
    assert iou((0, 0, 2, 2), (1, 1, 3, 3)) == pytest.approx(1 / 7)
    assert iou((0, 0, 4, 4), (1, 1, 3, 3)) == pytest.approx(4 / 16)


def test_iou_touching_disjoint_and_empty_boxes_are_zero():
    assert iou((0, 0, 5, 5), (5, 0, 10, 5)) == 0.0  # exclusive x1: they share an edge, no pixel
    assert iou((0, 0, 5, 5), (20, 20, 30, 30)) == 0.0
    assert iou((3, 3, 3, 3), (3, 3, 3, 3)) == 0.0


def test_iou_matrix_shape_and_values():
    m = iou_matrix([(0, 0, 10, 10), (5, 0, 15, 10)], [(0, 0, 10, 10), (0, 0, 5, 10), (50, 50, 60, 60)])
    assert m.shape == (2, 3)
    np.testing.assert_allclose(m, [[1.0, 0.5, 0.0], [1 / 3, 0.0, 0.0]])


def test_map_to_box_exclusive_coordinates():
    s = np.zeros((20, 30))
    s[4:9, 10:17] = 1.0  # rows 4..8, cols 10..16
    assert map_to_box(s, 0.5) == (10, 4, 17, 9)
    single = np.zeros((8, 8))
    single[3, 5] = 1.0
    assert map_to_box(single, 0.5) == (5, 3, 6, 4)


def test_map_to_box_threshold_is_inclusive_and_empty_is_none():
    s = np.zeros((10, 10))
    s[2:4, 2:4] = 0.5
    assert map_to_box(s, 0.5) == (2, 2, 4, 4)  # >= keeps the 0.5 pixels
    assert map_to_box(s, 0.51) is None
    assert map_to_box(s, 0.0) == (0, 0, 10, 10)  # threshold 0 selects the whole map


def test_largest_component_beats_smaller_brighter_one():
    s = np.zeros((40, 40))
    s[5:25, 5:25] = 0.6  # large, dim
    s[30:33, 30:33] = 1.0  # small, bright
    assert map_to_box(s, 0.5) == (5, 5, 25, 25)
    assert map_to_box(s, 0.7) == (30, 30, 33, 33)


def test_diagonal_pixels_are_separate_components():
    s = np.zeros((10, 10))
    s[2, 2] = s[3, 3] = 1.0  # touch only at a corner: two 4-connected components
    s[6, 6] = s[6, 7] = 1.0  # share an edge: one component of two pixels, the largest
    assert map_to_box(s, 0.5) == (6, 6, 8, 7)


def test_map_to_box_does_not_mutate_and_rejects_bad_shapes():
    s = np.random.default_rng(0).random((12, 12))
    before = s.copy()
    map_to_box(s, 0.3)
    np.testing.assert_array_equal(s, before)
    with pytest.raises(ValueError, match="H, W"):
        map_to_box(np.zeros((2, 3, 4)), 0.5)


def _blob(shape, box, value=1.0):
    s = np.zeros(shape)
    x0, y0, x1, y1 = box
    s[y0:y1, x0:x1] = value
    return s


def test_box_accuracy_hand_computed():
    shape = (20, 20)
    maps = [
        _blob(shape, (2, 2, 12, 12)),  # exact hit at every threshold in (0, 1]
        _blob(shape, (2, 2, 12, 12), 0.4),  # hit only while threshold <= 0.4
        _blob(shape, (0, 0, 20, 20)) * 0 + 0.2,  # whole map, IoU 100/400 = 0.25: never a hit
    ]
    gts = [[(2, 2, 12, 12)], [(2, 2, 12, 12)], [(2, 2, 12, 12)]]
    thresholds = np.array([0.0, 0.3, 0.5, 0.9])
    # t=0: every map gives the whole image (IoU 0.25) -> 0/3; t=0.3: maps 1, 2 hit -> 2/3;
    # t=0.5: map 1 -> 1/3; t=0.9: map 1 -> 1/3.
    r = box_accuracy(maps, gts, thresholds=thresholds)
    assert r["maxboxacc"] == pytest.approx(2 / 3)
    assert r["best_threshold"] == pytest.approx(0.3)
    # V2 at delta 0.3/0.5/0.7 sees the same boxes (one component each): 2/3 at each delta.
    assert r["per_iou"] == pytest.approx({0.3: 2 / 3, 0.5: 2 / 3, 0.7: 2 / 3})
    assert r["maxboxacc_v2"] == pytest.approx(2 / 3)


def test_box_accuracy_iou_is_inclusive_at_delta():
    s = _blob((10, 20), (0, 0, 10, 10))
    r = box_accuracy([s], [[(0, 0, 20, 10)]], thresholds=[0.5])  # IoU exactly 0.5
    assert r["maxboxacc"] == 1.0


def test_box_accuracy_v2_uses_any_component_and_any_gt():
    s = np.zeros((30, 30))
    s[0:15, 0:15] = 1.0  # largest component, matches no gt
    s[20:28, 20:28] = 1.0  # smaller component, matches the second gt exactly
    gts = [[(0, 20, 5, 25), (20, 20, 28, 28)]]
    r = box_accuracy([s], gts, thresholds=[0.5])
    assert r["maxboxacc"] == 0.0  # V1 only looks at the largest component
    assert r["per_iou"][0.7] == 1.0  # V2 takes the best box of all components
    assert r["maxboxacc_v2"] == 1.0


def _brute_force(maps, gts, t, delta):
    """(V1 accuracy, V2 accuracy) at one threshold, straight from scipy's labelling."""
    v1, v2 = [], []
    for s, g in zip(maps, gts):
        labels, n = ndimage.label(s >= t)  # scipy's default 2-D structure: 4-connectivity
        boxes = [(sx.start, sy.start, sx.stop, sy.stop) for sy, sx in ndimage.find_objects(labels)]
        ious = [max(iou(b, x) for x in g) for b in boxes]
        b = map_to_box(s, t)
        v1.append(b is not None and max(iou(b, x) for x in g) >= delta)
        v2.append(bool(ious) and max(ious) >= delta)
    return np.mean(v1), np.mean(v2)


@pytest.mark.parametrize("kind", ["smooth", "blocky", "noise"])
def test_box_accuracy_matches_brute_force_at_every_threshold(kind):
    rng = np.random.default_rng(1)
    maps, gts = [], []
    for _ in range(10):
        if kind == "smooth":
            s = ndimage.gaussian_filter(rng.random((48, 40)), 4)
        elif kind == "blocky":  # constant on 8-px blocks, like ConVis grid maps
            s = np.kron(ndimage.gaussian_filter(rng.random((6, 5)), 1), np.ones((8, 8)))
        else:
            s = rng.random((16, 24))
        maps.append((s - s.min()) / (s.max() - s.min()))
        # A gt near the map's own box at some threshold, so that some thresholds score hits.
        x0, y0, x1, y1 = map_to_box(maps[-1], rng.uniform(0.3, 0.8))
        dx0, dy0, dx1, dy1 = rng.integers(-2, 3, 4)
        gts.append([(x0 + dx0, y0 + dy0, x1 + dx1, y1 + dy1), (4, 4, 12, 12)])
    curve = []
    for t in np.arange(0, 1, 0.05):
        r = box_accuracy(maps, gts, thresholds=[t], v2_iou_thresholds=(0.3,))
        v1, v2 = _brute_force(maps, gts, t, 0.5)
        assert r["maxboxacc"] == pytest.approx(v1), t
        assert r["per_iou"][0.3] == pytest.approx(_brute_force(maps, gts, t, 0.3)[1]), t
        curve.append(v1)
    assert 0 < max(curve) and min(curve) < 1  # the comparison is not vacuous
    r = box_accuracy(maps, gts, thresholds=np.arange(0, 1, 0.05))
    assert r["maxboxacc"] == pytest.approx(max(curve))
    assert r["best_threshold"] == pytest.approx(0.05 * int(np.argmax(curve)))



def test_box_accuracy_rejects_mismatched_inputs():
    with pytest.raises(ValueError, match="as many"):
        box_accuracy([np.zeros((4, 4))], [])
    with pytest.raises(ValueError, match="no ground-truth"):
        box_accuracy([np.zeros((4, 4))], [[]])


def test_pointing_hit_inside_and_with_tolerance():
    s = np.zeros((100, 100))
    s[50, 80] = 1.0  # argmax at x=80, y=50
    assert pointing_hit(s, [(70, 40, 90, 60)], tolerance=0)
    # box ends at x1=70 (exclusive): last column 69, distance 11
    assert pointing_hit(s, [(0, 0, 70, 100)], tolerance=11)
    assert not pointing_hit(s, [(0, 0, 70, 100)], tolerance=10)
    # diagonal: nearest box pixel (69, 39) -> distance sqrt(11^2 + 11^2) ~ 15.56
    assert not pointing_hit(s, [(0, 0, 70, 40)], tolerance=15)
    assert pointing_hit(s, [(0, 0, 70, 40)], tolerance=16)
    assert pointing_hit(s, [(0, 0, 5, 5), (79, 49, 81, 51)])  # any gt box counts


def test_pointing_uses_first_maximum():
    s = np.zeros((10, 10))
    s[1, 1] = s[8, 8] = 1.0  # tie: the first in raster order, (1, 1), is the point
    assert pointing_hit(s, [(0, 0, 3, 3)], tolerance=0)
    assert not pointing_hit(s, [(7, 7, 10, 10)], tolerance=0)
