"""The I/O shell for input images: any file, bytes, PIL image or array in, one RGB PIL image out.

Every failure is an :class:`ImageError` whose message says what went wrong and what to do, so the
CLI and the app can show it as is.
"""

from __future__ import annotations

import io
import struct
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from convis.errors import UserError

MIN_SIDE = 16  # smaller images cannot be split into meaningful windows
# The pixel budget, checked from the file's header before anything is decoded: a 0.3 MB PNG can
# declare 169 Mpx (7 GB as float). 40 Mpx covers every phone and DSLR photo; held here so that
# a caller who loosens Pillow's global does not loosen ours.
MAX_PIXELS = 40_000_000
_HINT = "Upload a JPEG, PNG, WebP, GIF, BMP or TIFF."
# File names a folder scan treats as images: the formats of `_HINT`.
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff")
# What Pillow raises while decoding broken data, depending on the format plugin.
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, struct.error, IndexError)
_HIGH_DEPTH = ("I;16", "I;16L", "I;16B", "I;16N", "I", "F")
_ALPHA = ("RGBA", "LA", "PA", "La", "RGBa")


class ImageError(UserError, ValueError):
    """An input that cannot be used as an image; the message tells the user what to do."""


Source = str | Path | bytes | bytearray | memoryview | Image.Image | np.ndarray


def load_image(src: Source, max_side: int = 2048, name: str | None = None) -> Image.Image:
    """Load an image as RGB, upright (EXIF orientation applied) and at most ``max_side`` px long.

    Transparency is composited over white, CMYK and palette images are converted, 16-bit and
    float greyscale are scaled to 8 bit, and animations give their first frame. The input is
    never modified and the result never shares memory with it.

    Args:
        src: a path, the file's bytes, a PIL image, or an array of shape (H, W), (H, W, 3) or
            (H, W, 4) holding uint8 (or uint16, bool) values or floats in [0, 1].
        max_side: longer side of the result; larger images are downscaled (LANCZOS).
        name: how messages call bytes input (default "the uploaded data"), e.g. the file's path.

    Returns:
        A new RGB ``PIL.Image.Image``.

    Raises:
        ImageError: missing path, unreadable or corrupt file, too small (< 16 px a side) or too
            large (> ``MAX_PIXELS``) image, or an array that is not an image.
    """
    if max_side < MIN_SIDE:
        raise ValueError(f"max_side must be at least {MIN_SIDE}, got {max_side}")
    if isinstance(src, Image.Image):
        return _downscale(_from_pil(src), max_side)
    if isinstance(src, np.ndarray):
        return _downscale(_from_array(src), max_side)
    if isinstance(src, (bytes, bytearray, memoryview)):
        return _open(io.BytesIO(bytes(src)), name or "the uploaded data", max_side)
    if isinstance(src, (str, Path)):
        path = Path(src)
        if path.is_dir():
            raise ImageError(f"'{path}' is a folder, not an image file; pass the path of one image")
        if not path.is_file():
            raise ImageError(f"no such image file: '{path}'; check the path")
        return _open(path, f"'{src}'", max_side)
    raise TypeError(f"cannot load an image from {type(src).__name__}; pass a path, bytes, PIL image or array")


def _check_size(size: tuple[int, int]) -> None:
    w, h = size
    if w * h > MAX_PIXELS:
        raise ImageError(
            f"image is {w}x{h} pixels, more than the {MAX_PIXELS:,}-pixel limit "
            f"({MAX_PIXELS / 1e6:g} megapixels); downscale it (e.g. to 4096 px on the longer side) and try again"
        )
    if min(w, h) < MIN_SIDE:
        raise ImageError(f"image is {w}x{h} pixels; ConVis needs at least {MIN_SIDE}x{MIN_SIDE}")


def _target_size(size: tuple[int, int], max_side: int) -> tuple[int, int]:
    w, h = size
    if max(w, h) <= max_side:
        return size
    scale = max_side / max(w, h)
    # Keep the short side usable even for extreme panoramas (aspect bends slightly there).
    return max(MIN_SIDE, round(w * scale)), max(MIN_SIDE, round(h * scale))


def _downscale(im: Image.Image, max_side: int) -> Image.Image:
    target = _target_size(im.size, max_side)
    if target == im.size:
        return im
    # reducing_gap: a fast box reduce first, then LANCZOS; visually identical, much faster.
    return im.resize(target, Image.Resampling.LANCZOS, reducing_gap=3.0)


def _open(fp: Path | io.BytesIO, name: str, max_side: int) -> Image.Image:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our own limit applies below
        try:
            im = Image.open(fp)  # reads the header only
        except Image.DecompressionBombError:
            raise ImageError(
                f"{name} is over the {MAX_PIXELS / 1e6:g}-megapixel limit, more than {MAX_PIXELS:,} pixels; "
                "downscale it (e.g. to 4096 px on the longer side) and try again"
            ) from None
        except UnidentifiedImageError:
            msg = f"could not read {name} as an image: cannot identify image file. {_HINT}"
            raise ImageError(msg) from None
        except OSError as e:
            raise ImageError(f"could not open {name}: {e.strerror or e}") from None
    with im:
        _check_size(im.size)  # from the header: nothing decoded yet
        target = _target_size(im.size, max_side)
        if im.format == "JPEG" and target != im.size:
            im.draft(im.mode, target)  # decode at 1/2, 1/4 or 1/8 scale: less memory and time
        try:
            orientation = im.getexif().get(_ORIENTATION, 1)
            im.load()  # the one full-size copy; an animation stays on frame 0, the one Image.open selects
            small = _shrink(im, max_side)  # reduce first: mode conversion and alpha run on few pixels
            upright = _upright(small, orientation)
            # A new image needs no copy; `im` itself is closed when this block ends, so copy it.
            out = _to_rgb(upright, copy=upright is im)
        except ImageError:
            raise
        except _DECODE_ERRORS as e:
            raise ImageError(
                f"could not read {name}: the file is truncated or corrupt ({e}); re-export it or "
                f"upload another copy. {_HINT}"
            ) from None
    return _downscale(out, max_side)


def _shrink(im: Image.Image, max_side: int) -> Image.Image:
    """A box-filtered reduction by a whole factor to between `max_side` and twice that (the LANCZOS
    step finishes), in any mode. Palette and bilevel images fall back to nearest neighbour here,
    which is harmless at that oversampling.
    """
    w, h = im.size
    factor = max(w, h) // max_side
    if factor < 2:
        return im
    return im.resize((max(MIN_SIDE, w // factor), max(MIN_SIDE, h // factor)), Image.Resampling.BOX)


_ORIENTATION = 0x0112  # EXIF tag
_TRANSPOSE = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180,
              4: Image.Transpose.FLIP_TOP_BOTTOM, 5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_270,
              7: Image.Transpose.TRANSVERSE, 8: Image.Transpose.ROTATE_90}


def _upright(im: Image.Image, orientation: int) -> Image.Image:
    """Apply an EXIF orientation (read before the reduction, which drops the metadata)."""
    method = _TRANSPOSE.get(orientation)
    return im.transpose(method) if method is not None else im


def _from_pil(im: Image.Image) -> Image.Image:
    _check_size(im.size)
    frame = im.tell()
    try:
        if frame:  # first frame of an animation, then put the caller's image back where it was
            im.seek(0)
            first = im.copy()
            im.seek(frame)
        else:
            first = im
        return _to_rgb(ImageOps.exif_transpose(first))
    except ImageError:
        raise
    except _DECODE_ERRORS as e:
        msg = f"could not read the image: it is truncated or corrupt ({e}); re-export it"
        raise ImageError(msg) from None


def _from_array(a: np.ndarray) -> Image.Image:
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[..., 0]
    if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[2] not in (3, 4)):
        raise ImageError(f"array of shape {a.shape} is not an image; pass (H, W), (H, W, 3) or (H, W, 4)")
    _check_size((a.shape[1], a.shape[0]))
    if a.dtype == np.uint8:
        a = a.copy()  # the result must not share memory with the caller's array
    elif a.dtype == np.bool_:
        a = a.astype(np.uint8) * 255
    elif a.dtype == np.uint16:
        a = np.round(a / 257.0).astype(np.uint8)
    elif a.dtype.kind == "f":
        if not np.isfinite(a).all():
            raise ImageError("float arrays must hold finite values in [0, 1]; found NaN or infinity")
        if a.min() < 0 or a.max() > 1:
            raise ImageError(
                f"float arrays must hold values in [0, 1], got [{a.min():.3g}, {a.max():.3g}]; "
                "divide 8-bit data by 255 or pass it as uint8"
            )
        a = np.round(a * 255.0).astype(np.uint8)
    else:
        raise ImageError(f"unsupported array dtype {a.dtype}; pass uint8, or float in [0, 1]")
    return _to_rgb(Image.fromarray(a))  # uint8 (H, W) -> L, (H, W, 3) -> RGB, (H, W, 4) -> RGBA


def _to_rgb(im: Image.Image, copy: bool = True) -> Image.Image:
    """An RGB image (new unless `copy` is False): alpha over white, high bit depths scaled."""
    if im.mode == "RGB":
        return im.copy() if copy else im
    if im.mode.startswith("I;16"):  # the declared 16-bit range, in integers: 2 + 4 bytes a pixel, not 8 x 4
        a = np.asarray(im).astype(np.uint32)
        return Image.fromarray(((a * 255 + 32767) // 65535).astype(np.uint8)).convert("RGB")
    if im.mode in _HIGH_DEPTH:
        return Image.fromarray(_to_uint8(np.asarray(im, dtype=np.float64), im.mode)).convert("RGB")
    if im.mode in _ALPHA or (im.mode in ("P", "L", "1") and "transparency" in im.info):
        rgba = im.convert("RGBA")
        return Image.alpha_composite(Image.new("RGBA", im.size, (255, 255, 255, 255)), rgba).convert("RGB")
    try:
        return im.convert("RGB")
    except ValueError:
        msg = f"unsupported colour mode {im.mode}; convert the image to RGB and re-export it"
        raise ImageError(msg) from None


def _to_uint8(a: np.ndarray, mode: str) -> np.ndarray:
    """(H, W) 16-bit, 32-bit or float greyscale -> (H, W) uint8, keeping the gradient."""
    finite = np.isfinite(a)
    a = np.where(finite, a, 0.0)
    lo, hi = (a[finite].min(), a[finite].max()) if finite.any() else (0.0, 0.0)
    if mode.startswith("I;16"):
        lo, hi = 0.0, 65535.0  # the file declares 16 bits: map that range, do not stretch
    elif lo >= 0 and hi <= 1 and mode == "F":
        lo, hi = 0.0, 1.0
    elif lo >= 0 and hi <= 255:
        lo, hi = 0.0, 255.0
    elif lo >= 0 and hi <= 65535:
        lo, hi = 0.0, 65535.0
    # Otherwise (negative or > 16-bit values) stretch min..max: there is no declared range.
    scaled = (a - lo) / (hi - lo) * 255.0 if hi > lo else np.zeros_like(a)
    return np.clip(np.round(scaled), 0, 255).astype(np.uint8)
