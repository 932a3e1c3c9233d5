"""Differentiable augmentation (DiffAugment, Zhao et al. 2020) and random horizontal flips.

DiffAugment applies the same random transforms to real and fake images right before the
discriminator; because every op is differentiable in the pixels, the generator still gets
gradients. With only ~300 paintings this keeps the discriminator from memorising the set.

All ops work on N x C x H x W tensors in [-1, 1], are vectorised over the batch, keep the
dtype, and draw random numbers from torch's default generator on the tensor's device, so
torch.manual_seed / torch.set_rng_state make them reproducible (exact resume relies on it).
"""

from __future__ import annotations

import torch

POLICIES = ("color", "translation", "cutout")

TRANSLATION_RATIO = 0.125  # max shift, as a fraction of the image size (paper: 1/8)
CUTOUT_RATIO = 0.5  # side of the cut rectangle, as a fraction of the image size (paper: 1/2)


def parse_policy(policy: str) -> tuple[str, ...]:
    """"color,translation,cutout" -> ("color", "translation", "cutout"); "" -> ()."""
    return _checked(tuple(name.strip() for name in policy.split(",") if name.strip()))


def _checked(names: tuple[str, ...]) -> tuple[str, ...]:
    for name in names:
        if name not in POLICIES:
            raise ValueError(f"unknown DiffAugment policy {name!r}; allowed: {', '.join(POLICIES)}")
    return names


def _per_image_uniform(x: torch.Tensor, low: float, high: float) -> torch.Tensor:
    # Drawn in float32 (bf16 would quantise the factors coarsely), then cast to x's dtype.
    u = torch.rand(x.shape[0], 1, 1, 1, device=x.device, dtype=torch.float32)
    return (low + (high - low) * u).to(x.dtype)


def _brightness(x: torch.Tensor) -> torch.Tensor:
    return x + _per_image_uniform(x, -0.5, 0.5)


def _saturation(x: torch.Tensor) -> torch.Tensor:
    gray = x.mean(dim=1, keepdim=True)  # per-pixel mean over channels
    return torch.lerp(gray, x, _per_image_uniform(x, 0.0, 2.0))  # gray + k * (x - gray), fused


def _contrast(x: torch.Tensor) -> torch.Tensor:
    mean = x.mean(dim=(1, 2, 3), keepdim=True)  # per-image mean
    return torch.lerp(mean, x, _per_image_uniform(x, 0.5, 1.5))


def _color(x: torch.Tensor) -> torch.Tensor:
    return _contrast(_saturation(_brightness(x)))  # the paper's order


def _random_offsets(n: int, max_shift: int, device: torch.device) -> torch.Tensor:
    return torch.randint(-max_shift, max_shift + 1, (n,), device=device)


def _translation(x: torch.Tensor) -> torch.Tensor:
    n, c, h, w = x.shape
    shift_y = _random_offsets(n, int(h * TRANSLATION_RATIO + 0.5), x.device)
    shift_x = _random_offsets(n, int(w * TRANSLATION_RATIO + 0.5), x.device)
    # Output pixel (i, j) reads input pixel (i - dy, j - dx); reads outside the image become 0.
    src_y = torch.arange(h, device=x.device).view(1, h) - shift_y.view(n, 1)  # N x H
    src_x = torch.arange(w, device=x.device).view(1, w) - shift_x.view(n, 1)  # N x W
    valid = ((src_y >= 0) & (src_y < h)).view(n, 1, h, 1) & ((src_x >= 0) & (src_x < w)).view(n, 1, 1, w)
    # Two gathers (rows, then columns); gather's backward scatters gradients to the read pixels.
    rows = src_y.clamp(0, h - 1).view(n, 1, h, 1).expand(n, c, h, w)
    cols = src_x.clamp(0, w - 1).view(n, 1, 1, w).expand(n, c, h, w)
    moved = x.gather(2, rows).gather(3, cols)
    return torch.where(valid, moved, torch.zeros((), dtype=x.dtype, device=x.device))


def _cutout(x: torch.Tensor) -> torch.Tensor:
    n, _, h, w = x.shape
    cut_h, cut_w = int(h * CUTOUT_RATIO + 0.5), int(w * CUTOUT_RATIO + 0.5)
    # Centre anywhere in the image, so the rectangle may be clipped at the border.
    top = torch.randint(0, h, (n, 1, 1, 1), device=x.device) - cut_h // 2
    left = torch.randint(0, w, (n, 1, 1, 1), device=x.device) - cut_w // 2
    rows = torch.arange(h, device=x.device).view(1, 1, h, 1)
    cols = torch.arange(w, device=x.device).view(1, 1, 1, w)
    inside = (rows >= top) & (rows < top + cut_h) & (cols >= left) & (cols < left + cut_w)
    # Multiplying by a 0/1 mask keeps it differentiable: zero gradient inside the cut.
    return x * (~inside).to(x.dtype)


_OPS = {"color": _color, "translation": _translation, "cutout": _cutout}


def diff_augment(x: torch.Tensor, policy: tuple[str, ...]) -> torch.Tensor:
    """Apply the named DiffAugment ops in order; an empty policy returns x itself."""
    # A string would iterate as letters, not names.
    for name in parse_policy(policy) if isinstance(policy, str) else _checked(policy):
        x = _OPS[name](x)
    return x


def random_hflip(x: torch.Tensor) -> torch.Tensor:
    """Mirror each image left-right with probability 1/2 (a dataset augmentation for reals)."""
    flip = torch.rand(x.shape[0], device=x.device) < 0.5
    return torch.where(flip.view(-1, 1, 1, 1), x.flip(3), x)
