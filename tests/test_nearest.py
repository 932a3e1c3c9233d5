"""Nearest-painting memorisation check on real Monet paintings: planted copies are found and
point at the right painting, distinct paintings and flat images are not flagged, the report is
plain JSON and the PNG shows one row per pair."""

from __future__ import annotations

import io
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from pipeline.metrics import nearest as nn_mod
from pipeline.metrics.nearest import descriptors, nearest_pairs, save_pairs_png

MONET = Path(__file__).resolve().parents[2] / "shared" / "data" / "monet_jpg"
N_REAL, N_OTHER = 40, 40


def to_tensor(img: Image.Image) -> torch.Tensor:
    return torch.from_numpy(np.array(img.convert("RGB"))).permute(2, 0, 1).contiguous()


def to_pil(x: torch.Tensor) -> Image.Image:
    return Image.fromarray(x.permute(1, 2, 0).numpy())


def jpeg(x: torch.Tensor, quality: int) -> torch.Tensor:
    buffer = io.BytesIO()
    to_pil(x).save(buffer, format="JPEG", quality=quality)
    buffer.seek(0)
    with Image.open(buffer) as img:
        return to_tensor(img)


def brighter(x: torch.Tensor) -> torch.Tensor:
    return (x.int() + 10).clamp(0, 255).to(torch.uint8)


def down_up(x: torch.Tensor) -> torch.Tensor:
    return to_tensor(to_pil(x).resize((64, 64), Image.BILINEAR).resize((256, 256), Image.BILINEAR))


@pytest.fixture(scope="module")
def monet() -> tuple[torch.Tensor, torch.Tensor]:
    """Two disjoint sets of real paintings: `real` (the training set) and `other`."""
    files = sorted(MONET.glob("*.jpg"))
    if len(files) < N_REAL + N_OTHER:
        pytest.skip(f"the Monet paintings are not at {MONET}")
    images = []
    for path in files[:N_REAL + N_OTHER]:
        with Image.open(path) as img:
            images.append(to_tensor(img))
    images = torch.stack(images)
    return images[:N_REAL], images[N_REAL:]


def smooth_noise(n: int, seed: int = 0) -> torch.Tensor:
    """Blurred random colour fields: images with a layout, but no painting's layout."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(n, 3, 8, 8, generator=g) * 255
    return F.interpolate(coarse, size=256, mode="bicubic", align_corners=False).round().clamp(0, 255).to(torch.uint8)


def generated_with(plant: torch.Tensor, at: int, other: torch.Tensor) -> torch.Tensor:
    """Non-copies (other paintings, noise fields) with `plant` inserted at index `at`."""
    fakes = torch.cat([other[:20], smooth_noise(6)])
    return torch.cat([fakes[:at], plant[None], fakes[at:]])


def test_planted_jpeg_copy_is_the_closest_pair_and_the_only_copy(monet):
    real, other = monet
    source, at = 13, 7
    fake = generated_with(jpeg(real[source], 90), at, other)
    report = nearest_pairs(real, fake, top=5)
    first, second = report["closest"][0], report["closest"][1]
    assert (first["fake"], first["real"]) == (at, source)
    assert first["distance"] < report["copy_threshold"] <= second["distance"]
    assert report["n_copies"] == 1
    assert report["n_fake"] == len(fake) and report["n_real"] == len(real)


@pytest.mark.parametrize("change", [brighter, down_up, lambda x: jpeg(x, 75)],
                         ids=["brightness+10", "resize-256-64-256", "jpeg75"])
def test_altered_copies_are_flagged(monet, change):
    real, other = monet
    source, at = 29, 3
    report = nearest_pairs(real, generated_with(change(real[source]), at, other))
    first = report["closest"][0]
    assert (first["fake"], first["real"]) == (at, source)
    assert report["n_copies"] == 1


def test_distinct_paintings_are_not_flagged(monet):
    real, other = monet
    report = nearest_pairs(real, other, top=len(other))
    assert report["n_copies"] == 0
    assert min(p["distance"] for p in report["closest"]) >= report["copy_threshold"]
    # The threshold sits well below how far apart distinct paintings naturally are.
    assert report["real_floor"] > 5 * report["copy_threshold"]
    assert report["median_distance"] > 5 * report["copy_threshold"]


def test_constant_image_is_not_a_copy_and_gives_no_nan(monet):
    real, other = monet
    flat = torch.empty(1, 3, 256, 256, dtype=torch.uint8)
    flat[0, 0], flat[0, 1], flat[0, 2] = 120, 80, 40
    desc = descriptors(flat)
    assert torch.isfinite(desc).all() and not desc.any()
    # A flat painting in the training set must not match a flat generated image either.
    report = nearest_pairs(torch.cat([real, flat]), torch.cat([flat, other[:5]]))
    assert report["n_copies"] == 0
    json.dumps(report, allow_nan=False)
    assert all(math.isfinite(p["distance"]) for p in report["closest"])


def test_flatness_is_judged_in_grey_levels():
    """Flat means under half a grey level of layout, whatever the block size."""
    base = torch.full((2, 3, 256, 256), 100, dtype=torch.uint8)
    base[0, :, :16, :16] = 101  # one 16x16 block one level up: JPEG noise, no layout
    base[1, :, :, 128:] = 102  # a faint but real two-level split: a layout
    desc = descriptors(base)
    assert not desc[0].any()
    assert desc[1].norm() == pytest.approx(1, abs=1e-5)


def test_report_is_json_and_sorted_ascending(monet):
    real, other = monet
    fake = generated_with(jpeg(real[5], 90), 10, other)
    report = nearest_pairs(real, fake, top=8)
    assert json.loads(json.dumps(report, allow_nan=False)) == report
    distances = [p["distance"] for p in report["closest"]]
    assert len(distances) == 8 and distances == sorted(distances)
    # Each listed pair really is that generated image's nearest painting at that distance.
    d_fake, d_real = descriptors(fake), descriptors(real)
    for pair in report["closest"]:
        cos = d_real @ d_fake[pair["fake"]]
        assert int(cos.argmax()) == pair["real"]
        assert pair["distance"] == pytest.approx(1 - float(cos.max()), abs=1e-5)
    assert len(nearest_pairs(real, fake[:3], top=8)["closest"]) == 3


def test_pairs_png_has_one_row_per_pair(monet, tmp_path):
    real, other = monet
    fake = generated_with(jpeg(real[2], 90), 0, other)
    report = nearest_pairs(real, fake, top=8)
    heights = {}
    for top in (2, 6):
        path = tmp_path / "out" / f"pairs{top}.png"
        save_pairs_png(real, fake, report, path, top=top)
        assert path.stat().st_size < 1_000_000
        with Image.open(path) as img:
            assert img.format == "PNG"
            img.load()
            heights[top] = img.size[1]
    assert heights[6] > 2.5 * heights[2]
    # Every row shows pictures, down to the last one: a painting thumbnail has thousands of colours.
    with Image.open(tmp_path / "out" / "pairs6.png") as img:
        rgb = np.asarray(img.convert("RGB"))
    last_row = rgb[-rgb.shape[0] // 6:]
    assert len(np.unique(last_row.reshape(-1, 3), axis=0)) > 1000
    # Written atomically: nothing but the finished files is left in the folder.
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["pairs2.png", "pairs6.png"]


def test_descriptors_match_float_pooling_and_do_not_depend_on_chunking(monet, monkeypatch):
    real, _ = monet
    images = real[:10]
    whole = descriptors(images)
    # Reference: the same descriptor computed the plain way, in float.
    ref = F.adaptive_avg_pool2d(images.float(), 16)
    ref = F.normalize((ref - ref.mean(dim=(2, 3), keepdim=True)).flatten(1), dim=1)
    assert torch.allclose(whole, ref, atol=1e-5)
    monkeypatch.setattr(nn_mod, "CHUNK", 3)
    assert torch.allclose(descriptors(images), whole, atol=1e-6)
    # Sizes that do not divide the image take the general path and still give unit vectors.
    odd = descriptors(images, size=24)
    assert odd.shape == (10, 3 * 24 * 24)
    assert torch.allclose(odd.norm(dim=1), torch.ones(10), atol=1e-5)


def test_rejects_non_uint8_images():
    with pytest.raises(ValueError, match="uint8"):
        descriptors(torch.zeros(1, 3, 32, 32))


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_matches_cpu(monet):
    real, other = monet
    fake = generated_with(jpeg(real[13], 90), 7, other)
    on_cpu = nearest_pairs(real, fake)
    on_gpu = nearest_pairs(real.cuda(), fake.cuda())
    assert on_gpu["n_copies"] == on_cpu["n_copies"] == 1
    assert [(p["fake"], p["real"]) for p in on_gpu["closest"]] == [(p["fake"], p["real"]) for p in on_cpu["closest"]]
