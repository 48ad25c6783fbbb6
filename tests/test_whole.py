"""The whole picture: short side 224, the same windows over the whole padded rectangle.

Window counts are counted by hand from the rule "stride-16 corners over the padded image, kept
when the window overlaps the image"; a square must give the paper's map exactly.
"""

import numpy as np
import pytest
from _planted import BANK, HIER, RED, SPEC, colour_encoder, mean_in, planted
from PIL import Image

from convis.config import GridConfig, StochasticConfig
from convis.index.build import index_image
from convis.windows import grid_boxes, prepare_image, prepare_whole, whole_size

WHOLE = GridConfig(whole=True)


def touching(n: int, b: int) -> int:
    """Corners 0, 16, ... below n + 256 with x0 + b > 128 and x0 < 128 + n, counted by a loop."""
    return sum(1 for x0 in range(0, n + 256, 16) if x0 + b > 128 and x0 < 128 + n)


@pytest.mark.parametrize(("size", "grid", "count"), [
    ((300, 300), (224, 224), 21 * 21 + 17 * 17),  # the paper's 730
    ((600, 400), (336, 224), 28 * 21 + 24 * 17),  # 3:2 -> 996
    ((1600, 900), (398, 224), 32 * 21 + 28 * 17),  # 16:9 -> 1,148
    ((300, 600), (224, 448), 21 * 35 + 17 * 31),  # 1:2 portrait -> 1,262
])
def test_window_counts_by_aspect(size, grid, count):
    w, h = whole_size(*size)
    assert (w, h) == grid
    assert touching(w, 128) * touching(h, 128) + touching(w, 64) * touching(h, 64) == count
    assert len(grid_boxes(WHOLE, (h, w))) == count


def test_a_square_image_gives_the_papers_map():
    img = planted((256, 256), {RED: (30, 100, 110, 180)})
    paper = index_image(img, colour_encoder, BANK, HIER, SPEC)
    whole = index_image(img, colour_encoder, BANK, HIER, SPEC, WHOLE)
    assert np.array_equal(prepare_whole(img)[0], prepare_image(img)[0])
    assert np.array_equal(whole.boxes, paper.boxes) and whole.crop.box == paper.crop.box == (0, 0, 256, 256)
    for concept in ("red_thing.n.01", "plain_thing.n.01"):
        assert np.abs(whole.saliency(concept, size=0) - paper.saliency(concept, size=0)).max() <= 1e-6


def test_a_planted_object_at_the_far_left_of_a_wide_image_is_found():
    box = (0, 60, 60, 120)  # at the far left: outside the paper's centre square (75..255)
    img = planted((330, 165), {RED: box})
    index = index_image(img, colour_encoder, BANK, HIER, SPEC, WHOLE)
    assert index.crop.box == (0, 0, 330, 165) and index.grid_shape == (224, 448)
    m = index.saliency("red_thing.n.01")  # in original pixels
    assert m.shape == (165, 330)
    y, x = np.unravel_index(np.argmax(m), m.shape)
    assert box[0] <= x < box[2] and box[1] <= y < box[3], (x, y)
    assert mean_in(m, box) > 0.5 and m[:, 200:].mean() < 0.2
    centre = index_image(img, colour_encoder, BANK, HIER, SPEC)  # the paper's crop cannot see it
    assert centre.crop.box == (82, 0, 247, 165)


def test_map_sizes_keep_the_aspect_ratio():
    index = index_image(planted((400, 200), {}), colour_encoder, BANK, HIER, SPEC, WHOLE)
    assert index.saliency("red_thing.n.01", size=0).shape == (224, 448)
    assert index.saliency("red_thing.n.01", size=100).shape == (100, 200)
    assert index.saliency("red_thing.n.01", size=(50, 60)).shape == (50, 60)
    assert index.image.shape == (224, 448, 3)
    assert index.image_overlap().max() == 1.0 and index.top_concepts(3)


def test_stochastic_map_covers_the_whole_picture():
    from convis import saliency as sal

    boxes = []

    def score_box(box):
        boxes.append(box)
        return 0.0

    cfg = StochasticConfig(iterations=200, reset_every=50)
    m = sal.stochastic_map(score_box, cfg, size=(224, 448), pad=128)
    assert m.shape == (224, 448)
    xs = np.array([b[0] for b in boxes])
    assert xs.max() > 352 and xs.max() < 448 + 256 - 128  # corners reach past the square's range


@pytest.mark.parametrize(("size", "box"), [
    ((1000, 200), (100, 0, 900, 200)),  # 5:1: the centre 800 x 200 (4:1), 100 px off each end
    ((201, 1000), (0, 98, 201, 902)),  # 1:5 portrait: 804 rows, (1000 - 804) // 2 = 98 off the top
])
def test_a_panorama_beyond_the_aspect_bound_maps_its_centre_strip(size, box):
    rng = np.random.default_rng(0)
    img = Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))
    pixels, crop = prepare_whole(img)
    assert crop.trimmed and crop.box == box
    strip = img.crop(box)
    expected = np.asarray(strip.resize(whole_size(*strip.size), Image.Resampling.BICUBIC))  # PIL, by hand
    assert np.array_equal(pixels, expected)
    index = index_image(img, colour_encoder, BANK, HIER, SPEC, WHOLE)
    assert index.crop.box == box and index.saliency("red_thing.n.01").shape == (box[3] - box[1], box[2] - box[0])
    assert not prepare_whole(Image.new("RGB", (800, 200)))[1].trimmed, "exactly 4:1 is the whole picture"


@pytest.mark.wordnet
def test_cli_whole_on_a_2_to_1_image_writes_a_2_to_1_map(tmp_path):

    from convis.cli.commands import main
    from convis.concepts.wordnet import WordNetUnavailableError, load_hierarchy

    try:
        load_hierarchy("physical")
    except WordNetUnavailableError as e:
        pytest.skip(f"WordNet not available: {e}")
    path = tmp_path / "wide.png"
    planted((400, 200), {RED: (0, 50, 80, 130)}).save(path)
    out, npy = tmp_path / "x.png", tmp_path / "x.npy"
    assert main(["explain", str(path), "--whole", "--text", "a red sports car", "--concept", "car.n.01",
                 "--model", "test-tiny", "--out", str(out), "--npy", str(npy), "--style", "overlay"]) == 0
    assert np.load(npy).shape == (2, 224, 448)
    assert main(["explain", str(path), "--whole", "--concept", "car.n.01", "--method", "raw",
                 "--model", "test-tiny", "--out", str(out), "--npy", str(npy), "--json"]) == 0
    assert Image.open(out).size == (400, 200) and np.load(npy).shape == (224, 448)
