"""A folder of every kind of file a user's painting folder can hold: for prepare's tests and benchmark.

`build(folder)` writes the files and returns what each is expected to become: "packed" or
"skipped", with a phrase its change note, skip reason or recorded messages must contain (None: any).
Bit-flipped files are listed as "either": a flipped byte may or may not break the decoder.
"""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image, TiffImagePlugin

BIG = (5000, 4000)  # 20 MP: above prepare's pixel limit unless read at reduced size (JPEG draft mode)


def _encoded(img: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    img.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def _png_claiming(width: int, height: int) -> bytes:
    """A PNG header for an image of any size, with no pixel data: a decompression bomb's shape."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b"")


def _flipped(data: bytes, rng, count: int, start: int) -> bytes:
    damaged = bytearray(data)
    for position in rng.integers(start, len(data), count):
        damaged[position] ^= 0xA5
    return bytes(damaged)


def build(folder: Path) -> dict[str, tuple[str, str | None]]:
    rng = np.random.default_rng(0)
    rgb = Image.fromarray(rng.integers(0, 255, (96, 128, 3), dtype=np.uint8))
    frames = [rgb.rotate(angle) for angle in (0, 90, 180)]
    files: dict[str, tuple[bytes, str, str | None]] = {}

    # formats Pillow reads, in modes that must become RGB
    for fmt, ext in [("JPEG", "jpg"), ("PNG", "png"), ("WEBP", "webp"), ("BMP", "bmp"), ("TIFF", "tif"),
                     ("ICO", "ico"), ("PPM", "ppm"), ("TGA", "tga"), ("QOI", "qoi"), ("JPEG2000", "jp2")]:
        files[f"format.{ext}"] = (_encoded(rgb, fmt), "packed", None)
    files["alpha.png"] = (_encoded(rgb.convert("RGBA"), "PNG"), "packed", "converted RGBA to RGB")
    files["gray_alpha.png"] = (_encoded(rgb.convert("LA"), "PNG"), "packed", "converted LA to RGB")
    files["palette.gif"] = (_encoded(rgb.convert("P"), "GIF"), "packed", "converted P to RGB")
    files["palette_alpha.png"] = (_encoded(rgb.convert("P"), "PNG", transparency=0), "packed", "converted P to RGB")
    files["cmyk.jpg"] = (_encoded(rgb.convert("CMYK"), "JPEG"), "packed", "converted CMYK to RGB")
    files["cmyk.tif"] = (_encoded(rgb.convert("CMYK"), "TIFF"), "packed", "converted CMYK to RGB")
    sixteen = Image.fromarray(rng.integers(0, 65535, (64, 64)).astype(np.uint16))
    files["16bit.png"] = (_encoded(sixteen, "PNG"), "packed", "to RGB")
    files["float.tif"] = (_encoded(Image.fromarray(rng.random((64, 64)).astype(np.float32)), "TIFF"), "packed",
                          "converted F to RGB")
    files["1bit.png"] = (_encoded(rgb.convert("1"), "PNG"), "packed", "converted 1 to RGB")
    for fmt, ext in [("GIF", "gif"), ("PNG", "png"), ("WEBP", "webp")]:
        files[f"animated.{ext}"] = (_encoded(frames[0], fmt, save_all=True, append_images=frames[1:]), "packed",
                                    "animated (3 frames)")
    exif = Image.Exif()
    exif[0x0112] = 6  # rotated: applied, the image arrives upright
    files["exif_rotated.jpg"] = (_encoded(rgb, "JPEG", exif=exif.tobytes()), "packed", "EXIF orientation 6")
    broken_exif = bytearray(_encoded(rgb, "JPEG", exif=exif.tobytes()))
    start = broken_exif.find(b"Exif") + 10
    broken_exif[start:start + 20] = b"\xff" * 20
    files["exif_corrupt.jpg"] = (bytes(broken_exif), "packed", "Corrupt EXIF")   # a Python warning, kept
    tags = TiffImagePlugin.ImageFileDirectory_v2()
    tags[65000] = "private tag"
    files["private_tag.tif"] = (_encoded(rgb, "TIFF", tiffinfo=tags), "packed", None)

    # huge: read at reduced size when the format allows it, else refused without decoding
    big = Image.new("RGB", BIG, (120, 80, 40))
    files["huge.jpg"] = (_encoded(big, "JPEG"), "packed", f"from {BIG[0]}x{BIG[1]}")
    files["huge.png"] = (_encoded(big, "PNG"), "skipped", f"too large: {BIG[0]}x{BIG[1]}")
    files["bomb.png"] = (_png_claiming(100_000, 100_000), "skipped", "too large: 100000x100000")

    # not images, or broken ones
    files["empty.jpg"] = (b"", "skipped", "empty file")
    files["notes.jpg"] = (b"a text file with a .jpg name\n", "skipped", "not an image file")
    files["document.pdf"] = (_encoded(rgb, "PDF"), "skipped", "not an image file")
    jpeg, png = _encoded(rgb, "JPEG"), _encoded(rgb, "PNG")
    files["truncated.jpg"] = (jpeg[: len(jpeg) // 2], "skipped", "truncated")
    files["truncated.png"] = (png[: len(png) // 2], "skipped", "truncated")
    deflated = _encoded(rgb, "TIFF", compression="tiff_adobe_deflate")
    damaged = bytearray(deflated)
    damaged[len(damaged) // 3] ^= 0xA5  # inside the compressed strip: libtiff says so on stderr, then fails
    files["damaged_deflate.tif"] = (bytes(damaged), "skipped", "ZIPDecode")
    dds = bytearray(_encoded(rgb, "DDS"))
    dds[80:88] = struct.pack("<I", 4) + b"ZZZZ"  # an unknown pixel format: Pillow raises NotImplementedError
    files["unknown_pixel_format.dds"] = (bytes(dds), "skipped", "NotImplementedError")
    for i in range(4):
        files[f"bitflip{i}.jpg"] = (_flipped(jpeg, rng, 8, 20), "either", None)
        files[f"bitflip{i}.png"] = (_flipped(png, rng, 4, 8), "either", None)
        files[f"bitflip{i}.tif"] = (_flipped(_encoded(rgb, "TIFF"), rng, 4, 8), "either", None)

    folder.mkdir(parents=True, exist_ok=True)
    for name, (data, _, _) in files.items():
        (folder / name).write_bytes(data)
    return {name: (outcome, phrase) for name, (_, outcome, phrase) in files.items()}
