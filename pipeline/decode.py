"""Decoding one image file, whatever it holds, into an RGB square: the part of prepare that runs in
worker processes.

It imports only Pillow and numpy so that a worker starts quickly. Each file is decoded in a worker
of its own process because what a decoder says about a file has to be kept with that file: Python
warnings (corrupt EXIF, odd TIFF tags) and the C libraries' own messages on stderr (libtiff, libjpeg)
are per process, not per thread.
"""

from __future__ import annotations

import os
import sys
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

COMPETITION_SIZE = 256  # Kaggle's images are, and submissions must be, 256x256
# Larger images are refused rather than decoded: 16.8 MP (4096 x 4096) at up to 15 bytes a pixel while
# decoding, converting and resizing keeps a worker under about 250 MB. JPEGs are decoded at a reduced
# size first (draft mode), so a 50 MP camera JPEG is read at 1/8 scale and counts as 0.8 MP.
MAX_PIXELS = 1 << 24


class NotUsable(ValueError):
    """A file that is not a usable image, with the reason in words."""


# Real-world folders hold grayscale, CMYK, palette and transparent images; all become RGB.
def to_rgb(img: Image.Image) -> Image.Image:
    if img.mode == "RGB":
        return img
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if img.mode.startswith("I;16") or img.mode in ("I", "F"):
        # 16-bit/float grayscale: scale to 8 bits rather than clipping to white.
        arr = np.asarray(img, dtype=np.float64)
        span = arr.max() - arr.min() or 1.0
        img = Image.fromarray(((arr - arr.min()) / span * 255).round().astype(np.uint8))
    return img.convert("RGB")


def load_rgb(path: Path, size: int, max_pixels: int = MAX_PIXELS) -> tuple[np.ndarray, list[str]]:
    """Decode `path` to a size x size x 3 uint8 array; also returns what had to be changed.

    Raises NotUsable (a ValueError) with a readable reason when the file is not a usable image.
    """
    notes = []
    if Path(path).stat().st_size == 0:
        raise NotUsable("empty file (0 bytes)")
    try:
        with Image.open(path) as img:
            width, height = img.size
            # Only a JPEG larger than twice the target is read at reduced size: the competition's
            # 256 px images decode exactly as before, at every training resolution.
            img.draft("RGB", (max(2 * size, COMPETITION_SIZE),) * 2)
            if img.size[0] * img.size[1] > max_pixels:
                raise NotUsable(f"too large: {width}x{height} pixels, above the limit of {max_pixels:,} "
                                "(only JPEGs are read at reduced size)")
            frames = getattr(img, "n_frames", 1)
            img.load()  # decodes fully: truncated files fail here, not later
            if frames > 1:
                notes.append(f"animated ({frames} frames): the first frame is used")
            orientation = img.getexif().get(0x0112, 1)
            if orientation != 1:
                notes.append(f"turned upright (EXIF orientation {orientation})")
                img = ImageOps.exif_transpose(img)
            if img.mode != "RGB":
                notes.append(f"converted {img.mode} to RGB")
                img = to_rgb(img)
            if img.size != (size, size):
                if img.size != (COMPETITION_SIZE, COMPETITION_SIZE):  # downscaling those is routine
                    notes.append(f"resized and centre-cropped from {width}x{height}")
                img = ImageOps.fit(img, (size, size), Image.Resampling.LANCZOS)
            return np.asarray(img, dtype=np.uint8).copy(), notes
    except UnidentifiedImageError:
        raise NotUsable("not an image file") from None
    except Image.DecompressionBombError as exc:  # Pillow's own limit, where decode_file has not lifted it
        raise NotUsable(f"too large ({exc})") from None
    except (OSError, SyntaxError) as exc:
        raise NotUsable(f"cannot decode ({type(exc).__name__}: {exc})") from None


@dataclass
class Decoded:
    """What became of one file: the pixels, or the reason it was skipped, and what was said on the way."""
    array: np.ndarray | None
    notes: list[str] = field(default_factory=list)     # what was changed (mode, size, frames)
    messages: list[str] = field(default_factory=list)  # warnings and library output while decoding
    error: str | None = None


def decode_file(path: Path, size: int, max_pixels: int = MAX_PIXELS) -> Decoded:
    """`load_rgb` that never raises for a bad file: any exception a decoder raises becomes the reason
    the file is skipped, and its warnings and stderr output are kept as messages. Call it in a process
    of its own (prepare's workers): it redirects the process's stderr while it decodes."""
    Image.MAX_IMAGE_PIXELS = None  # load_rgb's max_pixels replaces Pillow's limit, checked after draft mode
    with tempfile.TemporaryFile() as captured, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sys.stderr.flush()
        saved = os.dup(2)
        os.dup2(captured.fileno(), 2)
        try:
            array, notes = load_rgb(path, size, max_pixels)
            result = Decoded(array, notes)
        except NotUsable as exc:
            result = Decoded(None, error=str(exc))
        except Exception as exc:  # noqa: BLE001 - whatever a decoder raises, for one file, skips that file
            result = Decoded(None, error=f"cannot decode ({type(exc).__name__}: {exc})")
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
        captured.seek(0)
        output = captured.read().decode("utf-8", "replace")
    said = [f"{w.category.__name__}: {w.message}" for w in caught]
    said += [line.strip() for line in output.splitlines() if line.strip()]
    result.messages = list(dict.fromkeys(said))  # Pillow repeats a warning each time it reads the header
    return result
