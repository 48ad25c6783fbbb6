"""convis.image.load_image: odd modes come out RGB, bad inputs give ImageError with a way out."""

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from convis import image as image_mod
from convis.image import ImageError, load_image


def _save(im: Image.Image, path, **kw):
    im.save(path, **kw)
    return path


def _noise(w=64, h=48, seed=0):
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8))


# --- bad inputs -------------------------------------------------------------------------------


def test_not_an_image(tmp_path):
    path = tmp_path / "x.txt"
    path.write_text("hello, not pixels")
    msg = r"could not read '.*x\.txt' as an image: cannot identify image file\. Upload a JPEG"
    with pytest.raises(ImageError, match=msg):
        load_image(path)


def test_not_an_image_bytes():
    with pytest.raises(ImageError, match="cannot identify image file"):
        load_image(b"GIF? no, just text")


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_truncated_file(tmp_path, fmt):
    data = io.BytesIO()
    _noise(256, 256).save(data, format=fmt)
    path = tmp_path / f"cut.{fmt.lower()}"
    path.write_bytes(data.getvalue()[: len(data.getvalue()) // 2])
    with pytest.raises(ImageError, match="truncated or corrupt.*re-export"):
        load_image(path)


def test_too_small(tmp_path):
    path = _save(Image.new("RGB", (1, 1)), tmp_path / "dot.png")
    with pytest.raises(ImageError, match="image is 1x1 pixels; ConVis needs at least 16x16"):
        load_image(path)
    with pytest.raises(ImageError, match="image is 40x15 pixels"):
        load_image(np.zeros((15, 40, 3), np.uint8))


def test_missing_path_names_it(tmp_path):
    path = tmp_path / "nope" / "cat.jpg"
    with pytest.raises(ImageError, match="no such image file") as err:
        load_image(str(path))
    assert str(path) in str(err.value)


def test_folder_is_not_an_image(tmp_path):
    with pytest.raises(ImageError, match="folder"):
        load_image(tmp_path)


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG whose IHDR claims the given size: enough for Image.open, no pixel data."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64))


def test_decompression_bomb_is_refused():
    with pytest.raises(ImageError, match="more than 40,000,000 pixels.*downscale"):
        load_image(_png_header_only(20_000, 20_000))


def test_our_pixel_limit_applies_even_below_pillows(tmp_path, monkeypatch):
    monkeypatch.setattr(image_mod, "MAX_PIXELS", 100 * 100)
    path = _save(_noise(200, 100), tmp_path / "big.png")
    with pytest.raises(ImageError, match="200x100 pixels, more than the 10,000-pixel limit"):
        load_image(path)


@pytest.mark.parametrize(
    "array, match",
    [
        (np.zeros((20, 20, 2), np.uint8), "not an image"),
        (np.zeros((20,), np.uint8), "not an image"),
        (np.full((20, 20, 3), 2.0), r"\[0, 1\]"),
        (np.full((20, 20), np.nan), "finite"),
        (np.zeros((20, 20), np.int64), "dtype"),
    ],
)
def test_bad_arrays(array, match):
    with pytest.raises(ImageError, match=match):
        load_image(array)


def test_unsupported_type_is_a_type_error():
    with pytest.raises(TypeError, match="path, bytes"):
        load_image(42)


# --- odd but good inputs ----------------------------------------------------------------------


def _rgb(src, **kw) -> np.ndarray:
    out = load_image(src, **kw)
    assert out.mode == "RGB"
    return np.asarray(out)


def test_rgba_composited_over_white():
    a = np.zeros((20, 20, 4), np.uint8)
    a[..., 0] = 255  # red everywhere
    a[:10, :, 3] = 255  # opaque top half
    a[10:, :, 3] = 0  # transparent bottom half
    out = _rgb(Image.fromarray(a))
    assert tuple(out[0, 0]) == (255, 0, 0)
    assert tuple(out[-1, -1]) == (255, 255, 255)


def test_la_and_palette_transparency(tmp_path):
    la = Image.new("LA", (20, 20), (0, 0))
    assert tuple(_rgb(la)[5, 5]) == (255, 255, 255)  # black but fully transparent
    p = Image.new("P", (20, 20), 1)
    p.putpalette([0, 0, 0, 0, 0, 255] + [0] * 762)
    p.paste(0, (0, 0, 10, 20))
    path = _save(p, tmp_path / "t.gif", transparency=0)
    out = _rgb(path)
    assert tuple(out[5, 2]) == (255, 255, 255)  # transparent index -> white
    assert tuple(out[5, 15]) == (0, 0, 255)


def test_cmyk_jpeg(tmp_path):
    path = _save(Image.new("CMYK", (32, 32), (255, 0, 0, 0)), tmp_path / "cyan.jpg", quality=95)
    r, g, b = _rgb(path)[16, 16].astype(int)
    assert r < 40 and g > 215 and b > 215


def test_16bit_ramp_keeps_its_gradient(tmp_path):
    ramp = np.tile(np.linspace(0, 65535, 256).astype(np.uint16), (32, 1))  # (32, 256)
    path = _save(Image.fromarray(ramp), tmp_path / "ramp16.png")
    assert Image.open(path).mode.startswith("I")
    row = _rgb(path)[0, :, 0].astype(int)
    assert row[0] == 0 and row[-1] == 255
    assert np.all(np.diff(row) >= 0) and len(np.unique(row)) > 200  # not clipped to white


def test_int32_and_float_modes():
    i32 = Image.fromarray(np.tile(np.arange(0, 256, dtype=np.int32), (20, 1)))
    assert i32.mode == "I"
    assert _rgb(i32)[0, 255, 0] == 255 and _rgb(i32)[0, 128, 0] == 128  # 8-bit range kept as is
    f01 = Image.fromarray(np.tile(np.linspace(0, 1, 64, dtype=np.float32), (20, 1)))
    assert f01.mode == "F"
    row = _rgb(f01)[0, :, 0]
    assert row[0] == 0 and row[-1] == 255
    wide = Image.fromarray(np.tile(np.linspace(-5, 5, 64, dtype=np.float32), (20, 1)))
    row = _rgb(wide)[0, :, 0].astype(int)
    assert row[0] == 0 and row[-1] == 255 and np.all(np.diff(row) >= 0)  # stretched


def test_one_bit(tmp_path):
    bits = Image.fromarray((np.indices((32, 32)).sum(0) % 2).astype(bool))
    assert bits.mode == "1"
    out = _rgb(_save(bits, tmp_path / "bits.png"))
    assert set(np.unique(out)) == {0, 255}


@pytest.mark.parametrize("fmt", ["GIF", "WEBP"])
def test_animation_gives_first_frame(tmp_path, fmt):
    frames = [Image.new("RGB", (24, 24), c) for c in ((255, 0, 0), (0, 0, 255), (0, 255, 0))]
    path = tmp_path / f"anim.{fmt.lower()}"
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100, loop=0, lossless=True)
    assert getattr(Image.open(path), "n_frames", 1) == 3
    r, g, b = _rgb(path)[12, 12].astype(int)
    assert r > 200 and g < 50 and b < 50


def test_pil_animation_first_frame_and_position_restored(tmp_path):
    frames = [Image.new("RGB", (24, 24), c) for c in ((255, 0, 0), (0, 0, 255))]
    frames[0].save(tmp_path / "a.gif", save_all=True, append_images=frames[1:])
    im = Image.open(tmp_path / "a.gif")
    im.seek(1)
    assert _rgb(im)[0, 0, 0] > 200
    assert im.tell() == 1


def test_exif_orientation_is_applied(tmp_path):
    a = np.zeros((20, 40, 3), np.uint8)
    a[:, :20] = (255, 0, 0)  # left half red
    im = Image.fromarray(a)
    exif = im.getexif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    path = _save(im, tmp_path / "rot.jpg", exif=exif, quality=95)
    out = _rgb(path)
    assert out.shape == (40, 20, 3)  # width and height swap
    assert out[5, 10, 0] > 200 and out[35, 10, 0] < 50  # the left half is now on top


def test_huge_image_is_downscaled(tmp_path):
    png = _save(_noise(3000, 1000), tmp_path / "wide.png")
    assert load_image(png).size == (2048, 683)
    jpg = _save(Image.new("RGB", (4000, 3000), (10, 200, 30)), tmp_path / "big.jpg", quality=90)
    out = load_image(jpg, max_side=500)  # decoded with draft, then LANCZOS
    assert out.size == (500, 375)
    assert np.abs(np.asarray(out).astype(int) - (10, 200, 30)).max() < 8
    assert load_image(_noise(4000, 20), max_side=2048).size == (2048, 16)  # short side kept usable


def test_small_enough_image_keeps_its_size():
    assert load_image(_noise(300, 200)).size == (300, 200)


def test_bytes_and_paths_agree(tmp_path):
    path = _save(_noise(), tmp_path / "n.png")
    assert np.array_equal(_rgb(path), _rgb(path.read_bytes()))
    assert np.array_equal(_rgb(path), _rgb(str(path)))


def test_arrays():
    grey = np.tile(np.arange(0, 256, 4, dtype=np.uint8), (20, 1))  # (20, 64)
    assert np.array_equal(_rgb(grey)[..., 1], grey)
    f = np.random.default_rng(0).random((20, 30, 3))
    assert np.abs(_rgb(f).astype(int) - np.round(f * 255)).max() == 0
    rgba = np.zeros((20, 20, 4), np.uint8)  # fully transparent -> white
    assert _rgb(rgba).min() == 255
    assert _rgb(np.full((20, 20), 65535, np.uint16)).min() == 255


def test_inputs_are_not_mutated_nor_shared():
    a = np.random.default_rng(0).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    before = a.copy()
    out = load_image(a)
    np.testing.assert_array_equal(a, before)
    a[:] = 0  # the caller reusing its buffer must not change our image
    np.testing.assert_array_equal(np.asarray(out), before)

    im = Image.fromarray(np.zeros((20, 40, 4), np.uint8))
    exif = im.getexif()
    exif[0x0112] = 6
    im.info["exif"] = exif.tobytes()
    pixels = np.asarray(im).copy()
    out = load_image(im)
    assert im.mode == "RGBA" and im.size == (40, 20) and out is not im
    np.testing.assert_array_equal(np.asarray(im), pixels)


def test_max_side_must_be_usable():
    with pytest.raises(ValueError, match="max_side"):
        load_image(_noise(), max_side=8)
