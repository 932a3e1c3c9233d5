"""DiffAugment and random flips: shapes, differentiability, exact geometry, statistics, RNG."""

from __future__ import annotations

import pytest
import torch

from pipeline.augment import (
    POLICIES,
    _brightness,
    _color,
    _contrast,
    _saturation,
    diff_augment,
    parse_policy,
    random_hflip,
)

SIZES = [(16, 16), (16, 24), (8, 8)]


def images(n=8, h=16, w=16, seed=0, dtype=torch.float32, device="cpu"):
    # Values in [0.1, 1]: never exactly zero, so zero-filled pixels are recognisable.
    g = torch.Generator().manual_seed(seed)
    return (0.1 + 0.9 * torch.rand(n, 3, h, w, generator=g)).to(device=device, dtype=dtype)


def shifted(img, dy, dx):
    """img (C x H x W) moved down by dy and right by dx, zeros filling the border."""
    out = torch.zeros_like(img)
    h, w = img.shape[1:]
    out[:, max(dy, 0) : h + min(dy, 0), max(dx, 0) : w + min(dx, 0)] = img[
        :, max(-dy, 0) : h + min(-dy, 0), max(-dx, 0) : w + min(-dx, 0)
    ]
    return out


def zero_box(img):
    """(top, bottom, left, right) bounds of the pixels zero in every channel, or None."""
    zero = (img == 0).all(dim=0)
    if not zero.any():
        return None
    rows, cols = zero.any(dim=1).nonzero().flatten(), zero.any(dim=0).nonzero().flatten()
    return rows.min().item(), rows.max().item() + 1, cols.min().item(), cols.max().item() + 1


# --- parse_policy -------------------------------------------------------------------------


def test_parse_policy():
    assert parse_policy("color,translation,cutout") == ("color", "translation", "cutout")
    assert parse_policy("translation") == ("translation",)
    assert parse_policy("") == ()
    assert parse_policy("  ") == ()
    assert parse_policy(" color , cutout ") == ("color", "cutout")


def test_parse_policy_unknown_name():
    with pytest.raises(ValueError) as err:
        parse_policy("color,zoom")
    message = str(err.value)
    assert "zoom" in message
    assert all(name in message for name in POLICIES)


# --- shapes, dtypes, identity -------------------------------------------------------------


@pytest.mark.parametrize("policy", [(p,) for p in POLICIES] + [POLICIES])
@pytest.mark.parametrize("h,w", SIZES)
def test_shape_and_dtype_preserved(policy, h, w):
    torch.manual_seed(0)
    for n in (1, 3):
        x = images(n, h, w) * 2 - 1
        out = diff_augment(x, policy)
        assert out.shape == x.shape and out.dtype == x.dtype
        assert torch.isfinite(out).all()
    assert not torch.equal(out, x)  # every op changes something (checked on the batch of 3)


def test_empty_policy_is_identity():
    x = images()
    assert diff_augment(x, ()) is x


def test_channels_last_matches_contiguous():
    x = images(4, 16, 24) * 2 - 1
    torch.manual_seed(3)
    expected = diff_augment(x, POLICIES)
    torch.manual_seed(3)
    got = diff_augment(x.to(memory_format=torch.channels_last), POLICIES)
    torch.testing.assert_close(got, expected)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_inputs(dtype):
    torch.manual_seed(0)
    x = (images(4) * 2 - 1).to(dtype).requires_grad_()
    out = diff_augment(x, POLICIES)
    assert out.dtype == dtype and out.shape == x.shape
    assert torch.isfinite(out.float()).all()
    out.float().sum().backward()
    assert x.grad.dtype == dtype and x.grad.abs().sum() > 0
    assert random_hflip(x.detach()).dtype == dtype


# --- differentiability --------------------------------------------------------------------


@pytest.mark.parametrize("policy", [(p,) for p in POLICIES] + [POLICIES])
def test_gradient_reaches_input(policy):
    torch.manual_seed(1)
    x = images(4).requires_grad_()
    (diff_augment(x, policy) * torch.randn(4, 3, 16, 16)).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_cutout_gradient_is_zero_exactly_inside_the_cut():
    torch.manual_seed(2)
    x = images(6).requires_grad_()
    out = diff_augment(x, ("cutout",))
    out.sum().backward()
    cut = out.detach() == 0  # inputs are never zero, so zeros are exactly the cut
    assert cut.any() and (~cut).any()
    assert (x.grad[cut] == 0).all()
    assert (x.grad[~cut] == 1).all()


def test_translation_gradient_counts_pixels_kept():
    torch.manual_seed(4)
    x = images(6).requires_grad_()
    out = diff_augment(x, ("translation",))
    out.sum().backward()
    # Each input pixel appears at most once in the output: gradient is 1 if kept, else 0.
    assert set(x.grad.unique().tolist()) <= {0.0, 1.0}
    kept = x.grad.sum(dim=(1, 2, 3))
    torch.testing.assert_close(kept, (out.detach() != 0).sum(dim=(1, 2, 3)).float())


# --- geometry -----------------------------------------------------------------------------


@pytest.mark.parametrize("h,w", SIZES)
def test_translation_is_an_integer_shift_with_zero_fill(h, w):
    torch.manual_seed(5)
    x = images(16, h, w)
    out = diff_augment(x, ("translation",))
    max_y, max_x = int(h / 8 + 0.5), int(w / 8 + 0.5)
    offsets = []
    for img, res in zip(x, out):
        found = [
            (dy, dx)
            for dy in range(-max_y, max_y + 1)
            for dx in range(-max_x, max_x + 1)
            if torch.equal(res, shifted(img, dy, dx))
        ]
        assert len(found) == 1, "output is not a shift of its input within +-1/8 of the size"
        offsets.append(found[0])
    assert len(set(offsets)) > 1  # images get different shifts
    assert any(dy != 0 or dx != 0 for dy, dx in offsets)


@pytest.mark.parametrize("h,w", SIZES)
def test_cutout_zeroes_one_clipped_half_size_rectangle(h, w):
    torch.manual_seed(6)
    x = images(32, h, w)
    out = diff_augment(x, ("cutout",))
    cut_h, cut_w = int(h / 2 + 0.5), int(w / 2 + 0.5)
    full_size_seen, clipped_rows, clipped_cols, boxes = False, False, False, []
    for img, res in zip(x, out):
        box = zero_box(res)
        assert box is not None
        top, bottom, left, right = box
        # Clipped at most down to the half that lies on the centre's side of the border.
        assert cut_h - cut_h // 2 <= bottom - top <= cut_h
        assert cut_w - cut_w // 2 <= right - left <= cut_w
        expected = img.clone()
        expected[:, top:bottom, left:right] = 0  # the whole box is zero, the rest unchanged
        assert torch.equal(res, expected)
        full_size_seen |= (bottom - top, right - left) == (cut_h, cut_w)
        clipped_rows |= bottom - top < cut_h
        clipped_cols |= right - left < cut_w
        boxes.append(box)
    assert full_size_seen and clipped_rows and clipped_cols  # centres reach the borders
    assert len({b[:2] for b in boxes}) > 1 and len({b[2:] for b in boxes}) > 1  # per image


# --- color --------------------------------------------------------------------------------


def factor(out, x):
    """Least-squares scale k with out ~= k * x, per image (x, out: N x ...)."""
    return (out * x).flatten(1).sum(1) / (x * x).flatten(1).sum(1)


def test_brightness_adds_one_offset_per_image():
    torch.manual_seed(7)
    x = images(16) * 2 - 1
    delta = _brightness(x) - x
    offset = delta.flatten(1)[:, 0]
    torch.testing.assert_close(delta, offset.view(-1, 1, 1, 1).expand_as(x))
    assert (offset.abs() <= 0.5).all() and offset.unique().numel() == 16


def test_saturation_scales_deviation_from_gray():
    torch.manual_seed(8)
    x = images(16) * 2 - 1
    out = _saturation(x)
    gray = x.mean(1, keepdim=True)
    torch.testing.assert_close(out.mean(1, keepdim=True), gray)  # per-pixel gray is kept
    k = factor(out - gray, x - gray)
    torch.testing.assert_close(out - gray, k.view(-1, 1, 1, 1) * (x - gray))
    assert ((k >= 0) & (k <= 2)).all() and k.unique().numel() == 16


def test_contrast_scales_deviation_from_image_mean():
    torch.manual_seed(9)
    x = images(16) * 2 - 1
    out = _contrast(x)
    mean = x.mean((1, 2, 3), keepdim=True)
    torch.testing.assert_close(out.mean((1, 2, 3), keepdim=True), mean)
    k = factor(out - mean, x - mean)
    torch.testing.assert_close(out - mean, k.view(-1, 1, 1, 1) * (x - mean))
    assert ((k >= 0.5) & (k <= 1.5)).all() and k.unique().numel() == 16


def test_color_is_brightness_then_saturation_then_contrast_per_image():
    x = (images(1) * 2 - 1).expand(8, -1, -1, -1)  # the same image 8 times
    torch.manual_seed(10)
    out = diff_augment(x, ("color",))
    torch.manual_seed(10)
    torch.testing.assert_close(out, _contrast(_saturation(_brightness(x))))
    torch.manual_seed(10)
    torch.testing.assert_close(out, _color(x))
    means = out.mean((1, 2, 3))
    stds = out.std((1, 2, 3))
    assert means.unique().numel() == 8 and stds.unique().numel() == 8  # different factors


# --- random numbers -----------------------------------------------------------------------


def test_same_seed_same_output_and_rng_state_restores():
    x = images(8) * 2 - 1
    torch.manual_seed(11)
    a = diff_augment(x, POLICIES)
    torch.manual_seed(11)
    b = diff_augment(x, POLICIES)
    assert torch.equal(a, b)
    state = torch.get_rng_state()
    c, c_flip = diff_augment(x, POLICIES), random_hflip(x)
    torch.set_rng_state(state)
    assert torch.equal(diff_augment(x, POLICIES), c) and torch.equal(random_hflip(x), c_flip)
    assert not torch.equal(c, a)  # the generator advanced


# --- flips --------------------------------------------------------------------------------


def test_random_hflip_each_image_kept_or_mirrored():
    torch.manual_seed(12)
    x = images(64, 8, 12)
    out = random_hflip(x)
    assert out.shape == x.shape
    same = [torch.equal(o, i) for o, i in zip(out, x)]
    mirrored = [torch.equal(o, i.flip(-1)) for o, i in zip(out, x)]
    assert all(s or m for s, m in zip(same, mirrored))
    assert any(same) and any(mirrored)


# --- CUDA ---------------------------------------------------------------------------------


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA is not available on this machine")
def test_cuda_matches_rules():
    torch.manual_seed(13)
    x = images(8, device="cuda").requires_grad_()
    out = diff_augment(x, POLICIES)
    assert out.device == x.device and out.shape == x.shape
    out.sum().backward()
    assert x.grad.abs().sum() > 0
    state = torch.cuda.get_rng_state()
    a = diff_augment(x.detach(), POLICIES)
    torch.cuda.set_rng_state(state)
    assert torch.equal(diff_augment(x.detach(), POLICIES), a)
    flipped = random_hflip(x.detach())
    assert all(torch.equal(o, i) or torch.equal(o, i.flip(-1)) for o, i in zip(flipped, x.detach()))
    assert diff_augment(x.detach().bfloat16(), POLICIES).dtype == torch.bfloat16
