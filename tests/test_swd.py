"""Tests for the ProGAN sliced Wasserstein distance (pipeline/metrics/swd.py) on real paintings."""
from __future__ import annotations


import numpy as np
import pytest
import torch
from PIL import Image, ImageFilter

from pipeline.metrics.swd import (PATCHES_PER_IMAGE, _directions, _gap, _laplacian_pyramid, _patches, _Patches,
                                  _pyramid_matrices, _sorted, sliced_wasserstein_distance, swd_with_floor)

from .conftest import SHARED_DATA

MONET_DIR = SHARED_DATA / "monet_jpg"
SIZE = 64  # 256 px paintings downscaled: levels 64, 32, 16, and ~2 s per 150-vs-150 comparison

needs_data = pytest.mark.skipif(
    not MONET_DIR.is_dir(), reason=f"Monet paintings not found at {MONET_DIR} (shared data)")


def _to_tensor(images: list[Image.Image]) -> torch.Tensor:
    stacked = np.stack([np.asarray(im) for im in images])  # N x H x W x 3
    return torch.from_numpy(stacked).permute(0, 3, 1, 2).contiguous()


@pytest.fixture(scope="module")
def paintings() -> list[Image.Image]:
    files = sorted(MONET_DIR.glob("*.jpg"))  # names are hashes, so halves are random splits
    assert len(files) == 300, f"expected 300 Monet JPEGs in {MONET_DIR}, found {len(files)}"
    return [Image.open(f).convert("RGB").resize((SIZE, SIZE), Image.Resampling.BOX) for f in files]


@pytest.fixture(scope="module")
def halves(paintings) -> tuple[torch.Tensor, torch.Tensor]:
    return _to_tensor(paintings[:150]), _to_tensor(paintings[150:])


@pytest.fixture(scope="module")
def real_vs_real(halves) -> dict:
    return sliced_wasserstein_distance(*halves)


@needs_data
def test_real_vs_real_much_smaller_than_real_vs_noise(halves, real_vs_real):
    first, second = halves
    noise = torch.randint(0, 256, second.shape, dtype=torch.uint8,
                          generator=torch.Generator().manual_seed(0))
    vs_noise = sliced_wasserstein_distance(first, noise)
    assert real_vs_real["swd"] < vs_noise["swd"] / 3, (real_vs_real, vs_noise)
    for level, value in real_vs_real["swd_per_level"].items():
        assert value < vs_noise["swd_per_level"][level] / 2, (level, real_vs_real, vs_noise)


@needs_data
def test_swd_grows_with_blur(paintings, halves, real_vs_real):
    first, _ = halves
    averages, finest = [real_vs_real["swd"]], [real_vs_real["swd_per_level"][str(SIZE)]]
    for radius in (1, 2, 4):
        blurred = _to_tensor([im.filter(ImageFilter.GaussianBlur(radius))
                              for im in paintings[150:]])
        result = sliced_wasserstein_distance(first, blurred)
        averages.append(result["swd"])
        finest.append(result["swd_per_level"][str(SIZE)])
    # The 16x16 level is the low-pass residual, which blur barely changes; the average and
    # the finest (Laplacian) level must rise strictly.
    assert all(a < b for a, b in zip(averages, averages[1:])), averages
    assert all(a < b for a, b in zip(finest, finest[1:])), finest


@needs_data
def test_identical_sets_give_zero(halves, real_vs_real):
    first, _ = halves
    same = sliced_wasserstein_distance(first[:60], first[:60].clone())
    assert same["swd"] < 1e-6 * real_vs_real["swd"], same
    assert all(v < 1e-6 for v in same["swd_per_level"].values()), same


@needs_data
def test_per_channel_normalisation_ignores_contrast_and_brightness(halves, real_vs_real):
    first, _ = halves
    # Each set is normalised by its own per-channel mean/std, so halving contrast and adding
    # brightness leaves only uint8 rounding behind.
    shifted = sliced_wasserstein_distance(first, first // 2 + 100)
    assert shifted["swd"] < real_vs_real["swd"] / 5, (shifted, real_vs_real)


def test_sliced_wasserstein_core():
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(4000, 147, generator=gen)
    dirs = _directions(512, gen)
    project = lambda x: _sorted(dirs @ x.T)  # noqa: E731
    # Sorting makes the distance blind to sample order...
    assert _gap(project(a), project(a[torch.randperm(4000, generator=gen)])) == 0.0
    # ...and for unit directions d.a ~ N(0, 1), so W1(N(0,1), N(0,4)) = E|X| = sqrt(2 / pi).
    assert _gap(project(a), project(2 * a)) == pytest.approx(np.sqrt(2 / np.pi), rel=0.02)


def test_normalising_folded_into_the_directions_equals_normalising_the_patches():
    """Each set is normalised per colour channel by its own mean and std; projecting the raw patches on
    rescaled directions gives the same numbers without a normalised copy of them."""
    gen = torch.Generator().manual_seed(1)
    raw = torch.rand(6 * PATCHES_PER_IMAGE, 3, 49, generator=gen) * torch.tensor([200.0, 50.0, 5.0]).view(1, 3, 1)
    images = torch.tensor([4, 1, 3])
    rows = raw.view(6, PATCHES_PER_IMAGE, 3, 49)[images].reshape(-1, 3, 49)
    std, mean = torch.std_mean(rows, dim=(0, 2), correction=0, keepdim=True)
    dirs = _directions(16, gen)
    expected = dirs @ ((rows - mean) / std).flatten(1).T
    assert torch.allclose(_Patches([raw]).projections(0, images, dirs), expected, atol=1e-3)


@needs_data
def test_deterministic_for_seed_and_independent_of_batch_size(halves):
    first, second = halves[0][:40], halves[1][:40]
    base = sliced_wasserstein_distance(first, second, seed=3)
    assert sliced_wasserstein_distance(first, second, seed=3) == base
    rebatched = sliced_wasserstein_distance(first, second, seed=3, batch_size=7)
    assert rebatched["swd"] == pytest.approx(base["swd"], rel=1e-4)
    other = sliced_wasserstein_distance(first, second, seed=4)
    assert other["swd"] != base["swd"]  # the seed really drives the sampling
    assert other["swd"] == pytest.approx(base["swd"], rel=0.5)  # ...but the estimate is stable


@needs_data
def test_unequal_counts(halves):
    result = sliced_wasserstein_distance(halves[0][:50], halves[1][:30])
    assert (result["n_real"], result["n_fake"], result["n_used"]) == (50, 30, 30)
    assert result["swd"] > 0 and np.isfinite(result["swd"])


@pytest.mark.parametrize("size, levels", [(16, ["16"]), (64, ["64", "32", "16"]),
                                          (128, ["128", "64", "32", "16"])])
def test_result_shape(size, levels):
    gen = torch.Generator().manual_seed(1)
    real = torch.randint(0, 256, (3, 3, size, size), dtype=torch.uint8, generator=gen)
    fake = torch.randint(0, 256, (2, 3, size, size), dtype=torch.uint8, generator=gen)
    result = sliced_wasserstein_distance(real, fake)
    assert set(result) == {"swd", "swd_per_level", "n_real", "n_fake", "n_used"}
    assert list(result["swd_per_level"]) == levels
    assert (result["n_real"], result["n_fake"]) == (3, 2)
    values = list(result["swd_per_level"].values())
    assert all(isinstance(v, float) and np.isfinite(v) for v in values)
    assert result["swd"] == pytest.approx(sum(values) / len(values))


def test_constant_fake_is_finite():
    real = torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8)
    result = sliced_wasserstein_distance(real, torch.full((4, 3, 32, 32), 128, dtype=torch.uint8))
    assert np.isfinite(result["swd"]) and result["swd"] > 100


def _mirror_blur(x: np.ndarray, gain: float) -> np.ndarray:
    """Direct 5x5 binomial filter with whole-sample mirror borders, as scipy mode='mirror'."""
    taps = np.array([1, 4, 6, 4, 1], dtype=np.float64) / 16
    kernel = np.outer(taps, taps) * gain
    padded = np.pad(x, ((0, 0), (0, 0), (2, 2), (2, 2)), mode="reflect")
    h, w = x.shape[-2:]
    return sum(kernel[i, j] * padded[:, :, i:i + h, j:j + w] for i in range(5) for j in range(5))


def test_pyramid_matches_direct_reference():
    x = np.random.default_rng(0).integers(0, 256, (2, 3, 32, 32)).astype(np.float64)
    coarse = _mirror_blur(x, 1.0)[:, :, ::2, ::2]
    upsampled = np.zeros_like(x)
    upsampled[:, :, ::2, ::2] = coarse
    laplacian = x - _mirror_blur(upsampled, 4.0)
    matrices = [_pyramid_matrices(32, torch.device("cpu"))]
    got = _laplacian_pyramid(torch.from_numpy(x).float(), matrices)
    assert [tuple(level.shape) for level in got] == [(2, 3, 32, 32), (2, 3, 16, 16)]
    np.testing.assert_allclose(got[0].numpy(), laplacian, atol=1e-3)
    np.testing.assert_allclose(got[1].numpy(), coarse, atol=1e-3)


def test_patches_are_7x7_windows_in_channel_y_x_order():
    level = torch.arange(2 * 3 * 20 * 20, dtype=torch.float32).view(2, 3, 20, 20)
    corners = torch.randint(0, 14, (2, 2, 128), generator=torch.Generator().manual_seed(0))
    desc = _patches(level, corners).view(2, 128, -1)
    for image, patch in [(0, 0), (0, 77), (1, 5), (1, 127)]:
        top, left = corners[image, :, patch].tolist()
        expected = level[image, :, top:top + 7, left:left + 7].reshape(-1)
        assert torch.equal(desc[image, patch], expected)


def _u8(*shape: int) -> torch.Tensor:
    return torch.zeros(shape, dtype=torch.uint8)


@pytest.mark.parametrize("real, fake, message", [
    (np.zeros((2, 3, 32, 32), np.uint8), _u8(2, 3, 32, 32), "torch.Tensor"),
    (torch.zeros(2, 3, 32, 32), _u8(2, 3, 32, 32), "uint8"),
    (_u8(2, 3, 32, 32), torch.zeros(2, 3, 32, 32, dtype=torch.int64), "fake must be uint8"),
    (_u8(3, 32, 32), _u8(2, 3, 32, 32), "N x 3"),
    (_u8(2, 1, 32, 32), _u8(2, 1, 32, 32), "N x 3"),
    (_u8(0, 3, 32, 32), _u8(2, 3, 32, 32), "N >= 1"),
    (_u8(2, 3, 32, 64), _u8(2, 3, 32, 64), "got 32 x 64"),
    (_u8(2, 3, 48, 48), _u8(2, 3, 48, 48), "got 48 x 48"),
    (_u8(2, 3, 8, 8), _u8(2, 3, 8, 8), "got 8 x 8"),
    (_u8(2, 3, 64, 64), _u8(2, 3, 32, 32), "sizes differ"),
])
def test_invalid_inputs_raise(real, fake, message):
    with pytest.raises(ValueError, match=message):
        sliced_wasserstein_distance(real, fake)


def test_invalid_batch_size_raises():
    images = _u8(2, 3, 16, 16)
    with pytest.raises(ValueError, match="batch_size"):
        sliced_wasserstein_distance(images, images, batch_size=0)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu():
    gen = torch.Generator().manual_seed(2)
    real = torch.randint(0, 256, (20, 3, 64, 64), dtype=torch.uint8, generator=gen)
    fake = torch.randint(0, 200, (20, 3, 64, 64), dtype=torch.uint8, generator=gen)
    cpu = sliced_wasserstein_distance(real, fake)
    cuda = sliced_wasserstein_distance(real.cuda(), fake.cuda())
    for level, value in cpu["swd_per_level"].items():
        assert cuda["swd_per_level"][level] == pytest.approx(value, rel=1e-2)


@pytest.fixture(scope="module")
def photos() -> torch.Tensor:
    files = sorted((SHARED_DATA / "photo_jpg").glob("*.jpg"))[:600]
    return _to_tensor([Image.open(f).convert("RGB").resize((SIZE, SIZE), Image.Resampling.BOX) for f in files])


@needs_data
def test_the_standard_error_shrinks_as_the_splits_grow(paintings, photos):
    """The photos against the paintings: more splits draw more of the photos and more halvings of the paintings,
    so their mean is surer; the splits share the directions, so they cost about what one split does."""
    real = _to_tensor(paintings)
    two, sixteen = swd_with_floor(real, photos, 0, splits=2), swd_with_floor(real, photos, 0, splits=16)
    assert sixteen["se"] < two["se"] / 2 and sixteen["floor_se"] < two["floor_se"]
    assert len(sixteen["split_values"]) == 16 and sixteen["value"] == pytest.approx(np.mean(sixteen["split_values"]))
    assert abs(sixteen["value"] - two["value"]) < 3 * (sixteen["se"] ** 2 + two["se"] ** 2) ** 0.5
    assert swd_with_floor(real, photos, 0, splits=1)["se"] is None  # one split: no spread to measure


@needs_data
def test_a_run_scored_under_two_seeds_is_tied_with_itself_and_far_runs_are_not(paintings, photos):
    from pipeline.records import compare

    real = _to_tensor(paintings)
    blurred = _to_tensor([p.filter(ImageFilter.GaussianBlur(2)) for p in paintings])
    a, b = swd_with_floor(real, photos, 0), swd_with_floor(real, photos, 1)
    assert a["value"] != b["value"] and compare(a["value"], a["se"], b["value"], b["se"]) == "tied"
    blur = swd_with_floor(real, blurred, 0)
    assert compare(a["value"], a["se"], blur["value"], blur["se"]) == "ahead"  # photos: closer than blur
    assert compare(blur["value"], blur["se"], a["value"], a["se"]) == "behind"
