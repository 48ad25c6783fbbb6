"""Generated hostile and awkward image files for the fault suite (no file is stored in the repo).

`png_stream` writes a valid PNG of any size row by row, so a 0.3 MB file can declare 169 Mpx
without the test ever holding those pixels.
"""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

_CHANNELS = {0: 1, 2: 3, 4: 2, 6: 4}  # PNG colour type -> channels (grey, RGB, grey+alpha, RGBA)


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_stream(path: Path, width: int, height: int, color_type: int = 0, bit_depth: int = 8,
               fill: int = 0x40) -> Path:
    """A real, fully decodable PNG whose rows all hold the byte `fill` (compresses ~1000:1)."""
    row = b"\x00" + bytes([fill]) * (width * _CHANNELS[color_type] * bit_depth // 8)
    comp = zlib.compressobj(9)
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n")
        f.write(_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)))
        data = bytearray()
        for _ in range(height):
            data += comp.compress(row)
            if len(data) > 1 << 20:
                f.write(_chunk(b"IDAT", bytes(data)))
                data.clear()
        data += comp.flush()
        f.write(_chunk(b"IDAT", bytes(data)))
        f.write(_chunk(b"IEND", b""))
    return path


def png_header_only(path: Path, width: int, height: int) -> Path:
    """A PNG bomb: the header claims width x height, the data is a few bytes."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", zlib.compress(b"\0" * 64)))
    return path


def _noise(w: int, h: int, channels: int = 3, seed: int = 0) -> np.ndarray:
    small = np.random.default_rng(seed).integers(0, 256, (max(1, h // 8), max(1, w // 8), channels), np.uint8)
    return np.asarray(Image.fromarray(small.squeeze()).resize((w, h)))


def hostile_files(folder: Path) -> dict[str, tuple[Path, str]]:
    """name -> (file, "refused" or "served"): the issue's 18 awkward files plus the pixel-budget ones."""
    folder.mkdir(parents=True, exist_ok=True)
    out: dict[str, tuple[Path, str]] = {}

    def save(name: str, im: Image.Image, expect: str, **kw) -> None:
        p = folder / name
        im.save(p, **kw)
        out[name] = (p, expect)

    (folder / "zero.jpg").write_bytes(b"")
    out["zero.jpg"] = (folder / "zero.jpg", "refused")
    (folder / "text.jpg").write_text("this is not a picture\n" * 10)
    out["text.jpg"] = (folder / "text.jpg", "refused")
    buf = io.BytesIO()
    Image.fromarray(_noise(400, 300)).save(buf, "JPEG")
    (folder / "truncated.jpg").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 3])
    out["truncated.jpg"] = (folder / "truncated.jpg", "refused")
    (folder / "vector.svg").write_text('<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>')
    out["vector.svg"] = (folder / "vector.svg", "refused")
    save("one.png", Image.new("RGB", (1, 1)), "refused")
    save("strip.png", Image.fromarray(_noise(2000, 3)), "refused")
    out["bomb.png"] = (png_header_only(folder / "bomb.png", 40_000, 40_000), "refused")
    out["deep16_13k.png"] = (png_stream(folder / "deep16_13k.png", 13_000, 13_000, 0, 16), "refused")
    out["rgba_12k.png"] = (png_stream(folder / "rgba_12k.png", 12_000, 12_000, 6, 8), "refused")
    out["deep16_6k.png"] = (png_stream(folder / "deep16_6k.png", 6_000, 6_000, 0, 16), "served")
    out["rgba_6k.png"] = (png_stream(folder / "rgba_6k.png", 6_000, 6_000, 6, 8), "served")
    save("cmyk.jpg", Image.fromarray(_noise(300, 200)).convert("CMYK"), "served")
    save("grey16.png", Image.fromarray((_noise(300, 200, 1).astype(np.uint16) * 257)), "served")
    save("palette.png", Image.fromarray(_noise(300, 200)).convert("P"), "served")
    save("rgba.png", Image.fromarray(_noise(300, 200, 4)), "served")
    frames = [Image.fromarray(_noise(120, 90, seed=i)) for i in range(3)]
    p = folder / "animated.gif"
    frames[0].save(p, save_all=True, append_images=frames[1:], duration=100, loop=0)
    out["animated.gif"] = (p, "served")
    save("picture.webp", Image.fromarray(_noise(300, 200)), "served")
    save("picture.tiff", Image.fromarray(_noise(300, 200)), "served")
    save("picture.bmp", Image.fromarray(_noise(300, 200)), "served")
    exif = Image.Exif()
    exif[0x0112] = 6
    save("rotated.jpg", Image.fromarray(_noise(300, 200)), "served", exif=exif.tobytes())
    save("photo_24mpx.jpg", Image.fromarray(_noise(6000, 4000)), "served", quality=80)
    return out
