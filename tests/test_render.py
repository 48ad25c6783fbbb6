"""convis.render: shapes, dtypes, blend limits, no mutation, the Figure-1 grid."""

import io

import matplotlib
import numpy as np
import pytest
from PIL import Image

from convis import figure, render


@pytest.fixture
def image():
    return np.random.default_rng(0).integers(0, 256, (40, 60, 3), dtype=np.uint8)


@pytest.fixture
def sal():
    y, x = np.mgrid[0:20, 0:30]
    return (x / 29.0) * (y / 19.0)  # (20, 30) in [0, 1], 0 at top-left, 1 at bottom-right


def test_resize_map_shape_range_and_values(sal):
    out = render.resize_map(sal, (40, 60))
    assert out.shape == (40, 60) and out.dtype == np.float32
    assert out.min() >= 0 and out.max() <= 1
    assert out[0, 0] < 0.05 and out[-1, -1] > 0.95
    flat = render.resize_map(np.full((5, 5), 0.25), (17, 9))
    np.testing.assert_allclose(flat, 0.25, atol=1e-6)


def test_resize_map_same_size_is_a_clipped_copy():
    s = np.array([[-1.0, 0.5], [np.nan, 2.0]])
    out = render.resize_map(s, (2, 2))
    np.testing.assert_array_equal(out, [[0.0, 0.5], [0.0, 1.0]])
    assert np.isnan(s[1, 0])  # input untouched


def test_overlay_limits(image, sal):
    assert np.array_equal(render.overlay(image, sal, alpha=0.0), image)
    big = np.kron(sal, np.ones((2, 2)))  # the map at the image's size: no resampling in between
    full = render.overlay(image, big, cmap="gray", alpha=1.0)
    expected = np.round(big * 255)  # gray colormap: value -> intensity (hand computation)
    assert np.abs(full[..., 0].astype(int) - expected).max() <= 1
    half = render.overlay(image, sal, alpha=0.5)
    assert half.shape == image.shape and half.dtype == np.uint8
    assert not np.array_equal(half, image)


def test_overlay_by_hand(image):
    """Pixel by pixel, written without render's code: a map already at the image's size, its value
    quantised to one of matplotlib's 256 colours, then (1 - a) * pixel + a * colour, rounded."""
    s = np.random.default_rng(1).random((40, 60))
    jet = matplotlib.colormaps["jet"].resampled(256)
    out = render.overlay(image, s, cmap="jet", alpha=0.3)
    for y, x in [(0, 0), (7, 41), (39, 59), (20, 3)]:
        colour = np.array(jet(int(round(s[y, x] * 255)))[:3]) * 255
        want = [int(round(0.7 * float(p) + 0.3 * float(round(c)))) for p, c in zip(image[y, x], colour)]
        assert abs(np.asarray(out[y, x], int) - want).max() <= 1, (y, x, out[y, x], want)


def test_overlay_uses_the_colormap(image):
    s = np.ones((40, 60))
    out = render.overlay(image, s, cmap="jet", alpha=1.0)
    top = np.round(np.array(matplotlib.colormaps["jet"](1.0)[:3]) * 255)
    assert np.array_equal(out[0, 0], top.astype(np.uint8))


def test_white_blend(image, sal):
    one = render.white_blend(image, np.ones((40, 60)))
    assert np.array_equal(one, image)  # saliency 1 keeps the image
    zero = render.white_blend(image, np.zeros((40, 60)))
    assert zero.min() == 255  # saliency 0 is pure white
    half = np.full((40, 60), 0.5)
    soft = render.white_blend(image, half, exponent=1.0).astype(int)
    hard = render.white_blend(image, half, exponent=10.0).astype(int)
    np.testing.assert_allclose(soft, np.round(image * 0.5 + 127.5), atol=1)
    assert (hard >= soft).all() and hard.mean() > soft.mean() + 50  # larger exponent, whiter


def test_mask_keeps_only_salient_pixels(image):
    s = np.zeros((40, 60))
    s[:, 30:] = 1.0
    out = render.threshold_mask(image, s, threshold=0.5)
    assert np.array_equal(out[:, 30:], image[:, 30:])
    assert not np.array_equal(out[:, :30], image[:, :30])
    assert (out[:, :30, 0] == out[:, :30, 1]).all()  # greyed out


def test_draw_box(image):
    out = render.draw_box(image, (10, 5, 30, 25), color=(0, 255, 0), width=2)
    assert tuple(out[5, 10]) == (0, 255, 0) and tuple(out[24, 29]) == (0, 255, 0)  # x1/y1 exclusive
    assert tuple(out[6, 11]) == (0, 255, 0) and not np.array_equal(out[7, 12], (0, 255, 0))
    assert np.array_equal(out[25:], image[25:]) and np.array_equal(out[:, 30:], image[:, 30:])
    assert np.array_equal(render.draw_box(image, None), image)
    clipped = render.draw_box(image, (-10, -10, 500, 500))  # larger than the image: still drawn
    assert tuple(clipped[0, 0]) == (0, 255, 0)


def test_colorbar_appends_a_strip(image):
    big = np.full((200, 100, 3), 128, np.uint8)
    out = figure.colorbar(big, "jet")
    assert out.shape[0] == 200 and out.shape[1] > 100 and out.dtype == np.uint8
    assert np.array_equal(out[:, :100], big)
    strip = out[:, 100:]
    top = np.round(np.array(matplotlib.colormaps["jet"](1.0)[:3]) * 255)
    assert (np.abs(strip.astype(int) - top).sum(axis=2) <= 3).any()  # the colour of 1 is in the bar
    assert (strip < 50).all(axis=2).any()  # some dark text
    assert figure.colorbar(image, "viridis", label="").shape[0] == image.shape[0]


def test_functions_do_not_mutate_inputs(image, sal):
    img0, sal0 = image.copy(), sal.copy()
    render.overlay(image, sal)
    render.white_blend(image, sal)
    render.threshold_mask(image, sal, threshold=0.3)
    render.draw_box(image, (1, 1, 10, 10))
    figure.colorbar(image, "jet")
    figure.grid(image, [sal], ["dog.n.01"])
    assert np.array_equal(image, img0) and np.array_equal(sal, sal0)


def test_bad_image_is_rejected(sal):
    with pytest.raises(ValueError, match=r"\(H, W, 3\) uint8"):
        render.overlay(np.zeros((20, 30)), sal)


def test_grid_grows_with_panels(image, sal):
    one = figure.grid(image, [sal], ["dog.n.01"])
    three = figure.grid(image, [sal, 1 - sal, sal], ["dog.n.01", "cat.n.01", "animal.n.01"])
    eight = figure.grid(image, [sal] * 7, [f"c{i}" for i in range(7)])
    for g in (one, three, eight):
        assert g.ndim == 3 and g.shape[2] == 3 and g.dtype == np.uint8
    assert three.shape[1] > one.shape[1]
    assert eight.shape[0] > three.shape[0]  # 8 panels at 4 columns wrap to a second row
    assert figure.grid(image, [sal] * 3, list("abc"), columns=1).shape[0] > three.shape[0]


@pytest.mark.parametrize("style", render.STYLES)
def test_grid_styles(style, sal):
    big = np.random.default_rng(1).integers(0, 256, (600, 800, 3), dtype=np.uint8)
    titles = ["tiger.n.02", "feline.n.01", "dog.n.01", "animal.n.01", "food.n.01", "fruit.n.01"]
    out = figure.grid(big, [sal] * 6, titles, style=style, exponent=4.0)  # speed: `convis bench`
    assert out.shape[2] == 3 and out.std() > 10  # not a blank canvas


def test_grid_rejects_mismatched_titles_and_styles(image, sal):
    with pytest.raises(ValueError, match="one title per map"):
        figure.grid(image, [sal, sal], ["only one"])
    with pytest.raises(ValueError, match="unknown style"):
        figure.grid(image, [sal], ["x"], style="sparkles")


def test_to_png_bytes_roundtrip(image):
    data = render.to_png_bytes(image)
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(data))), image)
