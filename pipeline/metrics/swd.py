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

`sliced_wasserstein_distance` is one such comparison (the evaluation during training uses it).
`swd_with_floor` is what `painter score` reports: a run against halves of the paintings and the
floor of half against half, over K independent splits, with the mean's standard error.
"""
from __future__ import annotations

import functools
import statistics
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


def patch_descriptors(images: torch.Tensor, seed: int, batch_size: int = 256, device: torch.device | None = None,
                      label: str = "", progress: bool = False) -> list[torch.Tensor]:
    """Per pyramid level (finest first), the raw 7x7x3 descriptors of every image: (N * 128, 3, 49) float,
    image i's patches at rows i*128...; patch corners for image i come from `seed`'s stream (common random
    numbers: image i of two sets is sampled at the same places). Computed batch by batch on `device`."""
    device = images.device if device is None else device
    resolutions = _resolutions(images.shape[-1])
    gen = torch.Generator().manual_seed(seed)
    # Corners (7x7 fully inside, as the original) drawn up front: results ignore batch_size.
    corners = [torch.randint(0, res - PATCH_SIZE + 1, (len(images), 2, PATCHES_PER_IMAGE),
                             generator=gen, dtype=torch.int32) for res in resolutions]
    matrices = [_pyramid_matrices(res, device) for res in resolutions[:-1]]
    per_level: list[list[torch.Tensor]] = [[] for _ in resolutions]
    for start in range(0, len(images), batch_size):
        stop = min(start + batch_size, len(images))
        batch = images[start:stop].to(device).float()
        for lod, level in enumerate(_laplacian_pyramid(batch, matrices)):
            per_level[lod].append(_patches(level, corners[lod][start:stop]))
        if progress:
            print(f"swd: {label} {stop}/{len(images)}", file=sys.stderr, flush=True)
    result = []
    for chunks in per_level:
        result.append(torch.cat(chunks).view(-1, 3, PATCH_SIZE * PATCH_SIZE))
        del chunks[:]
    return result


class _Patches:
    """One image set's raw descriptors per level (patch_descriptors) and each image's per-channel sum and sum of
    squares, so that any subset's mean and std (the paper normalises each set by its own) cost next to nothing."""

    def __init__(self, descriptors: list[torch.Tensor]):
        self.levels = descriptors
        self.sums = [torch.stack([d.sum(dim=2, dtype=torch.float64), d.square().sum(dim=2, dtype=torch.float64)])
                     .view(2, -1, PATCHES_PER_IMAGE, 3).sum(dim=2) for d in descriptors]  # (2, N, 3) per level

    def projections(self, lod: int, images: torch.Tensor, dirs: torch.Tensor) -> torch.Tensor:
        """(D, M) projections of the normalised patches of `images` (indices) at level `lod` on unit `dirs` (D, 147).
        Normalising is folded into the directions: d . ((x - mean) / std) = (d / std) . x - (d / std) . mean."""
        desc = self.levels[lod]
        images = images.to(self.sums[lod].device)
        count = len(images) * PATCHES_PER_IMAGE * PATCH_SIZE * PATCH_SIZE
        total, squares = self.sums[lod][:, images].sum(dim=1) / count
        # Clamp (pixel units): a detail-free set (e.g. constant images) holds only float rounding there;
        # don't blow that up to unit variance.
        std = (squares - total.square()).clamp_min(0).sqrt().clamp_min(1e-3)
        scaled = dirs.to(desc.device).view(len(dirs), 3, -1) / std.float().view(1, 3, 1)
        offset = (scaled * total.float().view(1, 3, 1)).sum(dim=(1, 2))
        return scaled.flatten(1) @ desc[_rows(images).to(desc.device)].flatten(1).T - offset.view(-1, 1)


def _rows(images: torch.Tensor) -> torch.Tensor:
    """The descriptor rows of the images at `images` (indices into a set's patch_descriptors)."""
    return (images.view(-1, 1) * PATCHES_PER_IMAGE + torch.arange(PATCHES_PER_IMAGE, device=images.device)).view(-1)


def _resolutions(size: int) -> list[int]:
    return [size >> i for i in range(size.bit_length()) if size >> i >= MIN_RESOLUTION]


def _sorted(projections: torch.Tensor):
    """Each row (a direction's projections) sorted: a numpy array on the CPU, whose SIMD sort is ~3x faster than
    torch.sort there; a tensor elsewhere."""
    if projections.device.type == "cpu":
        return np.sort(projections.numpy(), axis=1)
    return torch.sort(projections, dim=1).values


def _gap(sorted_a, sorted_b) -> float:
    """Mean |sorted_a - sorted_b|: the sliced Wasserstein-1 distance along those directions."""
    if isinstance(sorted_a, np.ndarray):
        return float(np.abs(sorted_a - sorted_b).mean(dtype=np.float64))
    return (sorted_a - sorted_b).abs().mean(dtype=torch.float64).item()


def _directions(count: int, gen: torch.Generator) -> torch.Tensor:
    """`count` random unit directions in descriptor space, drawn DIRS_PER_REPEAT at a time (as the original)."""
    dim = 3 * PATCH_SIZE * PATCH_SIZE
    dirs = torch.cat([torch.randn(min(DIRS_PER_REPEAT, count - i), dim, generator=gen)
                      for i in range(0, count, DIRS_PER_REPEAT)])
    return dirs / dirs.norm(dim=1, keepdim=True)


def _sliced_wasserstein(a: _Patches, a_images: torch.Tensor, b: _Patches, b_images: torch.Tensor, lod: int,
                        dirs: torch.Tensor) -> float:
    """Mean over the unit directions `dirs` of mean |sorted(a.d) - sorted(b.d)|, a and b the normalised patches
    of equally many images of two sets at level `lod`; directions a chunk at a time, which bounds memory."""
    chunk = max(1, min(DIRS_PER_REPEAT, _SORT_ELEMENTS // (len(a_images) * PATCHES_PER_IMAGE)))
    gaps = [_gap(_sorted(a.projections(lod, a_images, d)), _sorted(b.projections(lod, b_images, d))) * len(d)
            for d in dirs.split(chunk)]
    return sum(gaps) / len(dirs)


def _check_pair(real: torch.Tensor, fake: torch.Tensor, batch_size: int) -> None:
    for name, images in (("real", real), ("fake", fake)):
        _check(name, images)
    if real.shape[1:] != fake.shape[1:]:
        raise ValueError(f"real and fake image sizes differ: {tuple(real.shape[1:])} vs "
                         f"{tuple(fake.shape[1:])}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")


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
    _check_pair(real, fake, batch_size)
    n_real, n_fake = real.shape[0], fake.shape[0]
    n_used, subset_gen = min(n_real, n_fake), torch.Generator().manual_seed(seed)

    def choose(n: int) -> torch.Tensor:  # indices of the images used from a set of n
        if n == n_used:
            return torch.arange(n)
        return torch.randperm(n, generator=subset_gen)[:n_used].sort().values

    chosen_real, chosen_fake = choose(n_real), choose(n_fake)
    args = (seed + 1, batch_size, real.device)
    desc_real = _Patches(patch_descriptors(real[chosen_real.to(real.device)], *args, "real", progress))
    desc_fake = _Patches(patch_descriptors(fake[chosen_fake.to(fake.device)], *args, "fake", progress))
    dir_gen, everything = torch.Generator().manual_seed(seed + 2), torch.arange(n_used)
    per_level = {str(res): _sliced_wasserstein(desc_real, everything, desc_fake, everything, lod,
                                               _directions(DIR_REPEATS * DIRS_PER_REPEAT, dir_gen)) * 1e3
                 for lod, res in enumerate(_resolutions(real.shape[-1]))}
    return {"swd": sum(per_level.values()) / len(per_level), "swd_per_level": per_level,
            "n_real": n_real, "n_fake": n_fake, "n_used": n_used}


def swd_with_floor(real: torch.Tensor, fake: torch.Tensor, seed: int, splits: int = 8, batch_size: int = 256,
                   progress: bool = False) -> dict:
    """SWD of generated images `fake` against the paintings `real`, with the floor real paintings reach, each
    the mean over `splits` independent splits with its standard error.

    SWD depends on how many images each side holds, so both use halves of the paintings. A split draws new
    halves and two disjoint sets of generated images: its value is the mean of each set against one half,
    its floor one half against the other. A run at the floor is as close to the paintings as paintings are.
    The patch descriptors of every image are computed once and shared by the splits, and the splits share
    out the paper's 4 x 128 directions, so K splits cost about what one does. The halves depend on `seed`
    and the number of paintings only: runs scored with one seed are compared over the same splits.
    """
    _check_pair(real, fake, batch_size)
    if splits < 1:
        raise ValueError(f"splits must be >= 1, got {splits}")
    n = min(len(real) // 2, len(fake))
    if n < 2:
        raise ValueError(f"SWD needs at least 4 paintings and 2 generated images ({len(real)} and {len(fake)} here)")
    halves_rng, fakes_rng = torch.Generator().manual_seed(seed), torch.Generator().manual_seed(seed + 3)
    draws = []
    for _ in range(splits):
        halves = torch.randperm(len(real), generator=halves_rng)[:2 * n].view(2, n)
        picked = torch.randperm(len(fake), generator=fakes_rng)
        draws.append((halves, picked[:2 * n].view(2, n) if len(fake) >= 2 * n else picked[:n].repeat(2, 1)))
    used = torch.unique(torch.cat([fakes.flatten() for _, fakes in draws]))  # sorted: the only fakes described
    paintings = _Patches(patch_descriptors(real, seed + 1, batch_size, real.device, "paintings", progress))
    generated = _Patches(patch_descriptors(fake[used.to(fake.device)], seed + 1, batch_size, real.device,
                                           "generated", progress))
    resolutions = [str(res) for res in _resolutions(real.shape[-1])]
    directions = max(1, DIR_REPEATS * DIRS_PER_REPEAT // splits)
    dir_gen = torch.Generator().manual_seed(seed + 2)
    run_levels, floor_levels = [], []  # per split: {level: value}
    for halves, fakes in draws:
        fakes = torch.searchsorted(used, fakes)  # their places in `generated`
        run, floor = {}, {}
        for lod, level in enumerate(resolutions):
            dirs = _directions(directions, dir_gen)  # the split's comparisons share them: the floor is paired
            half = [_sorted(paintings.projections(lod, h, dirs)) for h in halves]
            made = [_sorted(generated.projections(lod, f, dirs)) for f in fakes]
            run[level] = (_gap(half[0], made[0]) + _gap(half[1], made[1])) / 2 * 1e3
            floor[level] = _gap(half[0], half[1]) * 1e3
        run_levels.append(run)
        floor_levels.append(floor)
    value, floor = _mean_se([sum(r.values()) / len(r) for r in run_levels]), _mean_se(
        [sum(f.values()) / len(f) for f in floor_levels])
    per_level = {level: _mean_se([r[level] for r in run_levels]) for level in resolutions}
    floor_per_level = {level: _mean_se([f[level] for f in floor_levels]) for level in resolutions}
    return {"value": value[0], "se": value[1], "floor": floor[0], "floor_se": floor[1],
            "per_level": {k: v[0] for k, v in per_level.items()},
            "per_level_se": {k: v[1] for k, v in per_level.items()},
            "floor_per_level": {k: v[0] for k, v in floor_per_level.items()},
            "floor_per_level_se": {k: v[1] for k, v in floor_per_level.items()},
            "splits": splits, "split_values": value[2], "floor_split_values": floor[2], "n_used": n}


def _mean_se(values: list[float]) -> tuple[float, float | None, list[float]]:
    """The mean of one value per split, its standard error (None from one split) and the values."""
    if len(values) < 2:
        return values[0], None, values
    return statistics.mean(values), statistics.stdev(values) / len(values) ** 0.5, values
