"""The index with a fake encoder whose embedding says how much of a window is planted red.

The concept bank is made by hand: `red_thing` points at "all red", `grey_thing` at "no red",
the others in between. So the planted concept's map must peak inside the planted square, and
"what CLIP sees" must name `red_thing` rather than its ancestors.
"""

import numpy as np
import pytest
import torch
from PIL import Image

from convis.config import GridConfig
from convis.index.build import index_image

from _planted import RED_BANK as CONCEPTS, RED_HIER as HIER, SPEC, planted_square as planted, red_fraction_encoder

def peak(index, concept: str) -> tuple[int, int]:
    """Argmax of the map, in original-image pixels (x, y)."""
    m = index.saliency(concept)
    y, x = np.unravel_index(np.argmax(m), m.shape)
    return index.crop.x0 + x, index.crop.y0 + y


def inside(point, box) -> bool:
    return box[0] <= point[0] < box[2] and box[1] <= point[1] < box[3]


@pytest.mark.parametrize(
    ("size", "box"),
    [
        ((224, 224), (80, 80, 150, 150)),  # centre
        ((224, 224), (0, 0, 70, 70)),  # top-left corner
        ((300, 224), (192, 154, 262, 224)),  # non-square, bottom-right corner of the crop
        ((200, 320), (10, 60, 80, 130)),  # portrait, near the crop's top-left
    ],
)
def test_planted_concept_peaks_inside_the_planted_square(size, box):
    img = planted(size, box)
    index = index_image(img, red_fraction_encoder, CONCEPTS, HIER, SPEC)
    assert index.saliency("red_thing.n.01").shape == (index.crop.side,) * 2
    assert inside(peak(index, "red_thing.n.01"), box), (peak(index, "red_thing.n.01"), box)


def test_exif_rotated_upload_is_mapped_in_the_displayed_orientation(tmp_path):
    # Stored landscape with the square at the right; EXIF 6 means "rotate 90 degrees clockwise to
    # display", which brings it to the bottom of a portrait image.
    from convis.image import load_image

    stored = planted((320, 240), (230, 90, 300, 160))
    exif = Image.Exif()
    exif[0x0112] = 6
    path = tmp_path / "rotated.jpg"
    stored.save(path, quality=95, exif=exif)
    img = load_image(path)
    assert img.size == (240, 320)
    index = index_image(img, red_fraction_encoder, CONCEPTS, HIER, SPEC)
    x, y = peak(index, "red_thing.n.01")
    assert y > 200 and 70 < x < 170, (x, y)


def test_saliency_many_equals_one_by_one_and_native_size_is_224():
    index = index_image(planted((224, 224), (60, 60, 140, 140)), red_fraction_encoder, CONCEPTS, HIER, SPEC)
    many = index.saliency_many(["red_thing.n.01", "grey_thing.n.01"], size=0)
    assert many.shape == (2, 224, 224)
    assert np.array_equal(many[1], index.saliency("grey_thing.n.01", size=0))
    assert many.min() >= 0 and many.max() <= 1
    # Grey is everywhere but the square: its map is low where red's is high.
    assert many[0][100, 100] > many[0][10, 10] and many[1][100, 100] < many[1][10, 10]


def test_ancestor_map_covers_the_planted_concept():
    index = index_image(planted((224, 224), (60, 60, 140, 140)), red_fraction_encoder, CONCEPTS, HIER, SPEC)
    colour = index.saliency("colour_thing.n.01", size=0)
    assert colour[100, 100] > 0.5


def test_top_concepts_name_the_planted_concept_before_its_ancestors():
    index = index_image(planted((224, 224), (30, 30, 190, 190)), red_fraction_encoder, CONCEPTS, HIER, SPEC)
    names = [n for n, _ in index.top_concepts(len(HIER))]
    red = names.index("red_thing.n.01")
    assert red < 2, names  # "not red" also holds the noise border, so it may come first
    assert red < names.index("colour_thing.n.01") and red < names.index("thing.n.01") and red < names.index("entity.n.01")


def test_top_concepts_do_not_name_an_absent_concept():
    index = index_image(planted((224, 224), (0, 0, 0, 0)), red_fraction_encoder, CONCEPTS, HIER, SPEC)
    names = [n for n, _ in index.top_concepts(len(HIER))]
    assert names[0] == "grey_thing.n.01" and names.index("red_thing.n.01") > 3, names


def test_index_is_deterministic_and_the_seed_matters():
    img = planted((224, 224), (60, 60, 140, 140))
    a = index_image(img, red_fraction_encoder, CONCEPTS, HIER, SPEC)
    b = index_image(img, red_fraction_encoder, CONCEPTS, HIER, SPEC)
    c = index_image(img, red_fraction_encoder, CONCEPTS, HIER, SPEC, GridConfig(seed=3))
    assert np.array_equal(a.ranks, b.ranks)
    assert not torch.equal(a.padded, c.padded)


def test_index_shapes_dtypes_and_image_round_trip():
    img = planted((250, 224), (60, 60, 140, 140))
    before = np.asarray(img).copy()
    index = index_image(img, red_fraction_encoder, CONCEPTS, HIER, SPEC, batch_size=7)
    assert index.ranks.shape == (730, len(HIER)) and index.ranks.dtype == np.int16
    assert index.image.shape == (224, 224, 3)
    assert np.array_equal(np.asarray(img), before)


def test_batch_size_does_not_change_the_ranks():
    img = planted((224, 224), (60, 60, 140, 140))
    a = index_image(img, red_fraction_encoder, CONCEPTS, HIER, SPEC, batch_size=1)
    b = index_image(img, red_fraction_encoder, CONCEPTS, HIER, SPEC, batch_size=97)
    assert np.array_equal(a.ranks, b.ranks)


def test_gamma_score_variant_also_peaks_on_the_planted_square():
    box = (60, 60, 140, 140)
    cfg = GridConfig(score="gamma")
    index = index_image(planted((224, 224), box), red_fraction_encoder, CONCEPTS, HIER, SPEC, cfg)
    assert inside(peak(index, "red_thing.n.01"), box)


def test_unknown_concept_says_what_to_do():
    index = index_image(planted((224, 224), (60, 60, 140, 140)), red_fraction_encoder, CONCEPTS, HIER, SPEC)
    with pytest.raises(KeyError, match="red_thing"):
        index.saliency("red_thin.n.01")


def test_bank_and_hierarchy_of_different_sizes_are_refused():
    with pytest.raises(ValueError, match="same vocabulary"):
        index_image(planted((64, 64), (0, 0, 8, 8)), red_fraction_encoder, CONCEPTS[:3], HIER, SPEC)
