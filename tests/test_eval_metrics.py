"""convis.eval.metrics and the metric plumbing of the harness, against hand-computed values."""

import numpy as np
import pytest

from convis.boxes import box_accuracy, iou
from convis.boxes import THRESHOLDS
from convis.eval.metrics import (auroc, curve_auc, dequantise, fpr_at_tpr, quantise, shift_boxes, summarise,
                                 to_map_frame)
from convis.eval.report import table, to_json
from convis.eval.wsol import Localisation
from convis.windows import CropBox


def test_auroc_known_ranking():
    # Positives 0.35 and 0.8 against negatives 0.1 and 0.4: 3 of the 4 pairs are ordered right.
    assert auroc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1]) == pytest.approx(0.75)
    assert auroc([1, 2, 3, 4], [0, 0, 1, 1]) == 1.0
    assert auroc([1, 2, 3, 4], [1, 1, 0, 0]) == 0.0
    assert auroc([5.0, 5.0], [1, 0]) == 0.5  # a tie counts one half
    # One tie among four pairs: (2 wins + 1 tie * 0.5) / 4 pairs... here pos {2, 3} vs neg {1, 2}.
    assert auroc([1, 2, 2, 3], [0, 0, 1, 1]) == pytest.approx((1 + 0.5 + 1 + 1) / 4)


def test_auroc_needs_both_classes():
    with pytest.raises(ValueError, match="positive and one negative"):
        auroc([1, 2], [1, 1])


def test_fpr_at_tpr_hand_value():
    pos = np.arange(1.0, 21.0)  # 20 positives scored 1..20: 95 % of them (19) score >= 2
    neg = np.array([0.0, 1.5, 2.5, 30.0])  # 2.5 and 30 are flagged at threshold 2
    scores = np.r_[pos, neg]
    labels = np.r_[np.ones(20, bool), np.zeros(4, bool)]
    assert fpr_at_tpr(scores, labels) == pytest.approx(0.5)
    assert fpr_at_tpr(scores, labels, tpr=1.0) == pytest.approx(0.75)  # threshold 1 also flags 1.5


def test_curve_auc_trapezoid():
    assert curve_auc([1.0, 0.0]) == pytest.approx(0.5)
    assert curve_auc([0.0, 1.0, 1.0]) == pytest.approx(0.75)
    assert curve_auc(np.full(33, 0.3)) == pytest.approx(0.3)


def test_iou_hand_value():
    # Two 4 x 4 boxes overlapping on 2 x 4 pixels: 8 / (16 + 16 - 8).
    assert iou((0, 0, 4, 4), (2, 0, 6, 4)) == pytest.approx(8 / 24)


def test_to_map_frame_shifts_scales_clips_and_drops():
    crop = CropBox(50, 0, 200)  # the centre square of a 300 x 200 image
    assert to_map_frame([(60, 20, 160, 120)], crop, 100) == [(5, 10, 55, 60)]
    assert to_map_frame([(0, 0, 40, 40)], crop, 100) == []  # wholly left of the crop
    assert to_map_frame([(40, 0, 70, 10.2)], crop, 100) == [(0, 0, 10, 6)]  # clipped, rounded outwards
    assert shift_boxes([(60, 20, 160, 120)], crop) == [(10, 20, 110, 120)]


def _known_maps():
    """Two 10 x 10 maps: one finds its box above 0.2, one points elsewhere."""
    a = np.full((10, 10), 0.2, np.float32)
    a[2:6, 2:6] = 0.9
    b = np.zeros((10, 10), np.float32)
    b[0:4, 0:4] = 0.5
    return [a, b], [[(2, 2, 6, 6)], [(5, 5, 9, 9)]]


def test_maxboxacc_on_known_maps():
    maps, gts = _known_maps()
    # Image a: whole map (IoU 0.16) up to tau = 0.2, the exact box above; image b is never right.
    acc = box_accuracy(maps, gts, THRESHOLDS)
    assert acc["maxboxacc"] == pytest.approx(0.5)
    assert acc["best_threshold"] == pytest.approx(0.21)
    assert acc["per_iou"][0.7] == pytest.approx(0.5)


def test_quantised_maps_give_identical_box_accuracy():
    rng = np.random.default_rng(0)
    maps = [rng.random((24, 24)).astype(np.float32) ** 3 for _ in range(6)]
    gts = [[(2, 3, 12, 15)], [(0, 0, 24, 24)], [(5, 5, 9, 9), (14, 14, 20, 22)]] * 2
    again = [dequantise(quantise(m)) for m in maps]
    assert box_accuracy(again, gts, THRESHOLDS) == box_accuracy(maps, gts, THRESHOLDS)
    for m, q in zip(maps, again):
        for t in THRESHOLDS[::7]:
            assert np.array_equal(m >= t, q >= t)


def test_localisation_summary_and_rows():
    maps, gts = _known_maps()
    loc = Localisation(["grid"], size=10)
    for k, (m, g) in enumerate(zip(maps, gts)):
        loc.add({"image": str(k)}, {"grid": m}, g)
    summary = loc.summary()["grid"]
    assert summary["maxboxacc"] == pytest.approx(0.5)
    assert loc.rows[0]["grid_iou"] == 1.0 and loc.rows[0]["grid_box"] == "2 2 6 6"
    assert loc.rows[1]["grid_iou"] == 0.0


def test_summarise_and_report_helpers():
    s = summarise([1.0, 2.0, 3.0])
    assert s["mean"] == 2.0 and s["n"] == 3 and s["sem"] == pytest.approx(1 / np.sqrt(3))
    assert '"x": null' in to_json({"x": float("nan")})
    text = table([["grid", 0.5, 1.25]], ["method", "acc", "s"], [False, True, False])
    assert "50.0%" in text and "1.25" in text
