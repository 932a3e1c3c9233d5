"""Tests for the built-in offline demo data set (pipeline/demo_data.py)."""
from __future__ import annotations

import itertools
import re

import numpy as np
import pytest
from PIL import Image

from pipeline.demo_data import DEMO_VERSION, paint_landscape, write_demo_set

N = 6
NAME = re.compile(r"^[0-9a-f]{10}\.jpg$")


def _pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB"), np.float32)


def _coarse(pixels: np.ndarray) -> np.ndarray:
    """16x16 block means: the composition, with strokes and grain averaged away."""
    return pixels.reshape(16, 16, 16, 16, 3).mean(axis=(1, 3))


def _fine_texture(pixels: np.ndarray, rows: int) -> float:
    """Median high-pass magnitude in the top `rows` rows of a 2x-downsampled grey image.
    Downsampling first averages away per-pixel grain, so what remains is texture at
    brush-stroke scale; the top rows are sky, which a photo renders smooth."""
    grey = pixels.mean(axis=2).reshape(128, 2, 128, 2).mean(axis=(1, 3))
    padded = np.pad(grey, 1, mode="edge")
    box = sum(padded[i:i + 128, j:j + 128] for i in range(3) for j in range(3)) / 9
    return float(np.median(np.abs(grey - box)[:rows]))


def _files(root, folder):
    return sorted((root / folder).iterdir())


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    counts = write_demo_set(out, seed=7, n_paintings=N, n_photos=N + 1, progress=False)
    assert counts == {"monet_jpg": N, "photo_jpg": N + 1}
    return out


def test_version_is_a_positive_int():
    assert isinstance(DEMO_VERSION, int) and DEMO_VERSION >= 1


def test_layout_and_format(demo_dir):
    assert sorted(p.name for p in demo_dir.iterdir()) == ["monet_jpg", "photo_jpg"]
    for folder, count in (("monet_jpg", N), ("photo_jpg", N + 1)):
        files = _files(demo_dir, folder)
        assert len(files) == count
        for path in files:
            assert NAME.match(path.name), path.name
            with Image.open(path) as image:
                assert image.format == "JPEG"
                assert image.mode == "RGB"
                assert image.size == (256, 256)
                assert not image.info.get("progressive"), "expected baseline JPEG"
    names = [p.name for f in ("monet_jpg", "photo_jpg") for p in _files(demo_dir, f)]
    assert len(set(names)) == len(names), "file names must be unique across the set"


def test_write_demo_set_is_deterministic(demo_dir, tmp_path):
    again = tmp_path / "again"
    write_demo_set(again, seed=7, n_paintings=N, n_photos=N + 1, progress=False)
    for folder in ("monet_jpg", "photo_jpg"):
        first, second = _files(demo_dir, folder), _files(again, folder)
        assert [p.name for p in first] == [p.name for p in second]
        for a, b in zip(first, second):
            assert a.read_bytes() == b.read_bytes(), a.name


def test_different_seed_gives_different_set(demo_dir, tmp_path):
    other = tmp_path / "other"
    write_demo_set(other, seed=8, n_paintings=N, n_photos=0, progress=False)
    ours, theirs = _files(demo_dir, "monet_jpg"), _files(other, "monet_jpg")
    assert not {p.name for p in ours} & {p.name for p in theirs}
    mine = {_pixels(Image.open(p)).tobytes() for p in ours}
    assert not mine & {_pixels(Image.open(p)).tobytes() for p in theirs}


def test_existing_out_dir_is_kept(tmp_path):
    (tmp_path / "monet_jpg").mkdir()
    keep = tmp_path / "notes.txt"
    keep.write_text("mine")
    write_demo_set(tmp_path, seed=1, n_paintings=2, n_photos=1, progress=False)
    assert keep.read_text() == "mine"
    assert len(_files(tmp_path, "monet_jpg")) == 2 and len(_files(tmp_path, "photo_jpg")) == 1


def test_paintings_and_photos_are_different_scenes(demo_dir):
    # The same scene in both styles differs by only ~3 grey levels at coarse scale;
    # separate scenes differ by far more.
    for painting, photo in zip(_files(demo_dir, "monet_jpg"), _files(demo_dir, "photo_jpg")):
        gap = np.abs(_coarse(_pixels(Image.open(painting))) - _coarse(_pixels(Image.open(photo)))).mean()
        assert gap > 8, (painting.name, photo.name, gap)


def test_paint_landscape_is_deterministic_and_checks_style():
    for style in ("monet", "photo"):
        a, b = paint_landscape(3, style), paint_landscape(3, style)
        assert a.mode == "RGB" and a.size == (256, 256)
        assert a.tobytes() == b.tobytes()
    with pytest.raises(ValueError):
        paint_landscape(3, "cubist")


def test_paintings_vary_between_seeds():
    paintings = [_pixels(paint_landscape(seed, "monet")) for seed in range(N)]
    gaps = [np.abs(a - b).mean() for a, b in itertools.combinations(paintings, 2)]
    assert min(gaps) > 15, gaps  # every pair visibly different, not just re-jittered
    assert np.mean(gaps) > 30, gaps


def test_each_painting_has_structure():
    for seed in range(N):
        pixels = _pixels(paint_landscape(seed, "monet"))
        assert pixels.std() > 20, seed  # not a flat image
        # The horizon lies 35-65% down, so the top rows are sky and the bottom rows water.
        sky, water = pixels[:50].mean(axis=(0, 1)), pixels[-50:].mean(axis=(0, 1))
        assert np.abs(sky - water).max() > 8, (seed, sky, water)


def test_monet_has_brush_texture_where_photo_is_smooth():
    for seed in range(N):
        monet, photo = _pixels(paint_landscape(seed, "monet")), _pixels(paint_landscape(seed, "photo"))
        # Same composition: coarse pictures nearly agree ...
        assert np.abs(_coarse(monet) - _coarse(photo)).mean() < 6, seed
        # ... but the painting's sky carries stroke texture the photo's lacks.
        painted, smooth = _fine_texture(monet, rows=38), _fine_texture(photo, rows=38)
        assert painted > 1.8 * smooth, (seed, painted, smooth)
