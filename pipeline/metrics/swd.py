"""Sliced Wasserstein distance on Laplacian-pyramid patches, as defined by Karras et al. 2018
("Progressive Growing of GANs", sec. 5 / appendix D): per pyramid level (full res down to 16x16,
the last being the low-pass residual), 128 random 7x7x3 patches per image, each set normalised per
colour channel by its own mean/std, then mean |sorted projection gap| over 4 x 128 random unit
directions; reported x1e3 like the paper.

Sampling choices the paper leaves open:
- Unequal set sizes: a seeded random subset of the larger set is used, so both sides feed the
  same number of images (as the original, which always compares equal-sized sets).
- Patch positions for image i come from the same seeded stream for both sets (common random
  numbers): no position-sampling noise floor, so identical inputs give exactly 0.
"""
from __future__ import annotations

import functools
import sys

import numpy as np
import torch

PATCH_SIZE = 7
PATCHES_PER_IMAGE = 128
DIR_REPEATS = 4
DIRS_PER_REPEAT = 128
MIN_RESOLUTION = 16
_BINOMIAL_1D = (1 / 16, 4 / 16, 6 / 16, 4 / 16, 1 / 16)  # separable 5x5 kernel of cv2.pyrDown
_SORT_ELEMENTS = 1 << 24  # cap on projected values sorted at once, bounds memory for 10k images


@functools.lru_cache(maxsize=16)
def _pyramid_matrices(size: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """pyrDown (size/2 x size) and pyrUp (size x size/2) along one axis, as dense matrices.
    The filter is separable, so a level is M @ X @ M.T: big matmuls run far faster than
    1-channel conv2d on CPU. Borders mirror without repeating the edge (scipy mode='mirror')."""
    def mirror(i: int) -> int:
        return -i if i < 0 else (2 * size - 2 - i if i >= size else i)
    down, up = np.zeros((size // 2, size)), np.zeros((size, size // 2))
    for k, tap in enumerate(_BINOMIAL_1D):
        for i in range(size // 2):
            down[i, mirror(2 * i + k - 2)] += tap
        for j in range(size):  # pyrUp: zero-insert, then filter with gain 2 per axis (4 in 2D)
            src = mirror(j + k - 2)
            if src % 2 == 0:
                up[j, src // 2] += 2 * tap
    return (torch.from_numpy(down).float().to(device), torch.from_numpy(up).float().to(device))


def _laplacian_pyramid(images: torch.Tensor, matrices: list) -> list[torch.Tensor]:
    """images: (B, C, H, W) float. Returns [laplacian full-res, ..., gaussian residual 16x16]."""
    pyramid = [images]
    for down, up in matrices:
        coarse = down @ pyramid[-1] @ down.T
        pyramid[-1] = pyramid[-1] - up @ coarse @ up.T
        pyramid.append(coarse)
    return pyramid


def _patches(level: torch.Tensor, top_left: torch.Tensor) -> torch.Tensor:
    """(B, C, S, S), top_left (B, 2, P) -> (B * P, C*7*7) descriptors in (channel, y, x) order."""
    b, c, s, _ = level.shape
    top_left = top_left.to(level.device).long()
    corner = top_left[:, 0] * s + top_left[:, 1]
    r = torch.arange(PATCH_SIZE, device=level.device)
    offsets = (torch.arange(c, device=level.device).view(c, 1, 1) * s * s
               + r.view(1, -1, 1) * s + r.view(1, 1, -1)).view(-1)
    index = (corner.unsqueeze(-1) + offsets).view(b, -1)
    return level.reshape(b, -1).gather(1, index).view(-1, c * PATCH_SIZE * PATCH_SIZE)


def _level_descriptors(images: torch.Tensor, chosen: torch.Tensor, resolutions: list[int],
                       seed: int, batch_size: int, device: torch.device, label: str,
                       progress: bool) -> list[torch.Tensor]:
    """Normalised descriptors per level for images[chosen], computed batch by batch."""
    gen = torch.Generator().manual_seed(seed)  # same stream for both sets: see module docstring
    # Corners (7x7 fully inside, as the original) drawn up front: results ignore batch_size.
    corners = [torch.randint(0, res - PATCH_SIZE + 1, (len(chosen), 2, PATCHES_PER_IMAGE),
                             generator=gen, dtype=torch.int32) for res in resolutions]
    matrices = [_pyramid_matrices(res, device) for res in resolutions[:-1]]
    per_level: list[list[torch.Tensor]] = [[] for _ in resolutions]
    for start in range(0, len(chosen), batch_size):
        stop = min(start + batch_size, len(chosen))
        batch = images[chosen[start:stop].to(images.device)].to(device).float()
        for lod, level in enumerate(_laplacian_pyramid(batch, matrices)):
            per_level[lod].append(_patches(level, corners[lod][start:stop]))
        if progress:
            print(f"swd: {label} {stop}/{len(chosen)}", file=sys.stderr, flush=True)
    result = []
    for chunks in per_level:
        desc = torch.cat(chunks).view(-1, 3, PATCH_SIZE * PATCH_SIZE)
        del chunks[:]
        std, mean = torch.std_mean(desc, dim=(0, 2), correction=0, keepdim=True)
        # In place: one copy at peak. Clamp (pixel units): a detail-free set (e.g. constant
        # images) holds only float rounding there; don't blow that up to unit variance.
        result.append(desc.sub_(mean).div_(std.clamp_min(1e-3)).flatten(1))
    return result


def _sorted_gap_sum(proj_a: torch.Tensor, proj_b: torch.Tensor) -> float:
    """Sum over rows (directions) of |sorted(row_a) - sorted(row_b)|."""
    if proj_a.device.type == "cpu":  # numpy's SIMD sort is ~3x faster than torch.sort on CPU
        sorted_a, sorted_b = np.sort(proj_a.numpy(), axis=1), np.sort(proj_b.numpy(), axis=1)
        return float(np.abs(sorted_a - sorted_b).sum(dtype=np.float64))
    gap = torch.sort(proj_a, dim=1).values - torch.sort(proj_b, dim=1).values
    return gap.abs().sum(dtype=torch.float64).item()


def _sliced_wasserstein(a: torch.Tensor, b: torch.Tensor, gen: torch.Generator) -> float:
    """Mean over 4 x 128 random unit directions of mean |sorted(a.d) - sorted(b.d)|."""
    chunk = max(1, min(DIRS_PER_REPEAT, _SORT_ELEMENTS // a.shape[0]))
    total = 0.0
    for _ in range(DIR_REPEATS):
        dirs = torch.randn(DIRS_PER_REPEAT, a.shape[1], generator=gen)
        dirs = (dirs / dirs.norm(dim=1, keepdim=True)).to(a.device)
        for j in range(0, DIRS_PER_REPEAT, chunk):
            d = dirs[j:j + chunk]  # (direction, component): projections come out row-contiguous
            total += _sorted_gap_sum(d @ a.T, d @ b.T)
    return total / (DIR_REPEATS * DIRS_PER_REPEAT * a.shape[0])


def _check(name: str, images: torch.Tensor) -> None:
    if not isinstance(images, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(images).__name__}")
    if images.dtype != torch.uint8:
        raise ValueError(f"{name} must be uint8 (0..255), got {images.dtype}")
    if images.ndim != 4 or images.shape[1] != 3 or images.shape[0] < 1:
        raise ValueError(f"{name} must have shape N x 3 x H x W with N >= 1, "
                         f"got {tuple(images.shape)}")
    h, w = images.shape[2:]
    if h != w or h < MIN_RESOLUTION or h & (h - 1):
        raise ValueError(f"{name} images must be square with a power-of-two side >= "
                         f"{MIN_RESOLUTION}, got {h} x {w}")


def sliced_wasserstein_distance(real: torch.Tensor, fake: torch.Tensor, seed: int = 0,
                                batch_size: int = 256, progress: bool = False) -> dict:
    """real, fake: uint8 tensors N x 3 x H x W (same H, W; H == W a power of two >= 16).
    Deterministic for a seed (CPU). Returns {"swd": mean over levels (x1e3),
    "swd_per_level": {"256": ..., "128": ..., ...}, "n_real": int, "n_fake": int, "n_used": int}
    (N as given; the larger set is subsampled to n_used, the smaller N). Runs on real's device (fake follows batch by
    batch), batch_size images at a time; descriptors are kept: 0.38 MB/image/set at 256 px."""
    for name, images in (("real", real), ("fake", fake)):
        _check(name, images)
    if real.shape[1:] != fake.shape[1:]:
        raise ValueError(f"real and fake image sizes differ: {tuple(real.shape[1:])} vs "
                         f"{tuple(fake.shape[1:])}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    n_real, n_fake = real.shape[0], fake.shape[0]
    n_used, subset_gen = min(n_real, n_fake), torch.Generator().manual_seed(seed)

    def choose(n: int) -> torch.Tensor:  # indices of the images used from a set of n
        if n == n_used:
            return torch.arange(n)
        return torch.randperm(n, generator=subset_gen)[:n_used].sort().values

    resolutions = [real.shape[-1] >> i for i in range(real.shape[-1].bit_length())
                   if real.shape[-1] >> i >= MIN_RESOLUTION]
    args = (resolutions, seed + 1, batch_size, real.device)
    desc_real = _level_descriptors(real, choose(n_real), *args, "real", progress)
    desc_fake = _level_descriptors(fake, choose(n_fake), *args, "fake", progress)
    dir_gen = torch.Generator().manual_seed(seed + 2)
    per_level = {str(res): _sliced_wasserstein(a, b, dir_gen) * 1e3
                 for res, a, b in zip(resolutions, desc_real, desc_fake)}
    return {"swd": sum(per_level.values()) / len(per_level), "swd_per_level": per_level,
            "n_real": n_real, "n_fake": n_fake, "n_used": n_used}
