"""Weight-free memorisation check: each generated image's nearest training painting.

Kaggle's MiFID divides FID by the generated images' distance to the training paintings, so a
generator that hands back near-copies of paintings is punished. The real check needs Inception
weights, which are not always available; this one needs none. Every image becomes a tiny colour
layout (16x16 area average, each channel's mean removed, unit length) and every generated image
is matched to its nearest painting by cosine distance. Re-encoding, brightness shifts and
down/up-scaling barely move that descriptor, while distinct paintings stay far apart, so a
small distance means "this is that painting", not "this looks Monet-like".

Limits: the descriptor is aligned to the pixel grid, so a copy shifted by a pixel or two, or
mirrored, can slip under the radar; and a flat (single-colour) image has no layout at all, gets
a zero descriptor and is never counted as a copy of anything.
"""

from __future__ import annotations

import io
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: runs on servers and Kaggle
import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ..artifacts import write_bytes_atomic

DESCRIPTOR_SIZE = 16
DESCRIPTOR = "16x16 area-average RGB, per-image channel means removed, L2-normalised (768-d)"
DISTANCE = "1 - cosine"
# Calibrated on the 300 Kaggle Monet paintings (256x256 JPEGs), 2-core CPU, size 16:
# - distinct paintings, leave-one-out nearest distance: min 0.0357, 3rd smallest (= 1st
#   percentile) 0.0383, 5th 0.0775, 5th percentile 0.133, median 0.341. The two smallest are
#   near-duplicate pairs inside the Monet set itself (eb3cc5c559/fb806a2a1c: the same garden
#   painting in two colour reproductions; 66a144f547/7952021d2f: two Creuse-valley canvases
#   with the same composition). Without them the minimum is 0.0775.
# - 1000 Kaggle photos against the paintings: min 0.086, 1st percentile 0.117.
# - copies of all 300 paintings, worst case: JPEG q75/q90 0.0001, brightness +-10 levels
#   0.0005, 256->64->256 resize 0.0024 (PIL bilinear; 0.0011 area/bilinear, 0.0009 bicubic),
#   all three stacked 0.0029.
# 0.01 sits about 3.5x above the worst copy and 3.5x below the closest distinct pair.
# Not caught: nearest-neighbour resizing (up to 0.065) and 1-2 px shifts (up to 0.017 / 0.059).
COPY_THRESHOLD = 0.01
# A 256 px chunk of 128 images is 100 MB as float: 10,000 images never need more than that.
CHUNK = 128
# Centred descriptor with RMS under half a grey level: a flat image, no layout to compare.
FLAT_RMS = 0.5


def _check_images(images: torch.Tensor, name: str) -> None:
    if not isinstance(images, torch.Tensor) or images.dim() != 4 or images.shape[1] != 3:
        shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise ValueError(f"{name}: expected an N x 3 x H x W tensor, got {shape}")
    if images.dtype != torch.uint8:
        raise ValueError(f"{name}: expected uint8 pixels (0..255), got {images.dtype}")


def _block_means(chunk: torch.Tensor, size: int) -> torch.Tensor:
    """Area average of a uint8 chunk down to size x size, as float32."""
    n, c, h, w = chunk.shape
    bh, bw = h // size, w // size
    if bh and bw and bh * size == h and bw * size == w and bw <= 128:
        # Exact block sums in integers: about twice as fast on CPU as converting the chunk
        # to float first (bw * 255 fits int16 for blocks up to 128 px wide).
        rows = chunk.reshape(n, c, h, size, bw).sum(-1, dtype=torch.int16)
        sums = rows.reshape(n, c, size, bh, size).sum(3, dtype=torch.int32)
        return sums.float() / (bh * bw)
    return F.adaptive_avg_pool2d(chunk.float(), size)


def descriptors(images: torch.Tensor, size: int = DESCRIPTOR_SIZE) -> torch.Tensor:
    """N x (3 * size * size) float32 unit vectors (zero for flat images), on images' device.

    images: uint8 N x 3 x H x W. Processed CHUNK images at a time to bound memory.
    """
    _check_images(images, "images")
    if size < 1:
        raise ValueError(f"size must be positive, got {size}")
    out = torch.empty(images.shape[0], 3 * size * size, dtype=torch.float32, device=images.device)
    for start in range(0, images.shape[0], CHUNK):
        small = _block_means(images[start:start + CHUNK], size)
        # Removing each channel's mean makes a uniform brightness or colour cast irrelevant.
        small = (small - small.mean(dim=(2, 3), keepdim=True)).flatten(1)
        norm = small.norm(dim=1, keepdim=True)
        flat = norm <= FLAT_RMS * math.sqrt(small.shape[1])
        out[start:start + CHUNK] = torch.where(flat, torch.zeros_like(small), small / norm.clamp_min(1e-12))
    return out


def nearest(real_desc: torch.Tensor, fake_desc: torch.Tensor, exclude_self: bool = False
            ) -> tuple[torch.Tensor, torch.Tensor]:
    """For each row of fake_desc, (distance, index) of its nearest row of real_desc, on CPU.

    exclude_self: fake_desc is real_desc; row i may not match itself (leave-one-out).
    """
    real_desc = real_desc.to(fake_desc.device)
    dists, index = [], []
    # Chunks of 1024 keep the similarity block small even against thousands of paintings.
    for start in range(0, fake_desc.shape[0], 1024):
        sim = fake_desc[start:start + 1024] @ real_desc.T
        if exclude_self:
            rows = torch.arange(sim.shape[0], device=sim.device)
            sim[rows, rows + start] = -math.inf
        best, arg = sim.max(dim=1)
        dists.append((1 - best).clamp(0, 2).cpu())
        index.append(arg.cpu())
    if not dists:
        return torch.empty(0), torch.empty(0, dtype=torch.long)
    return torch.cat(dists), torch.cat(index)


def nearest_pairs(real: torch.Tensor, fake: torch.Tensor, top: int = 8) -> dict:
    """Match every generated image to its nearest painting; a plain-JSON report.

    real: the training paintings, fake: the generated images, both uint8 N x 3 x H x W.
    "closest" lists the `top` generated images nearest to any painting, ascending, with the
    indices into fake and real that save_pairs_png needs.
    """
    _check_images(real, "real")
    _check_images(fake, "fake")
    if real.shape[0] == 0:
        raise ValueError("real: no paintings to compare against")
    real_desc, fake_desc = descriptors(real), descriptors(fake)
    dist, index = nearest(real_desc, fake_desc)
    floor = None
    if real.shape[0] > 1:
        real_loo, _ = nearest(real_desc, real_desc, exclude_self=True)
        floor = round(float(np.median(real_loo.numpy())), 6)
    order = torch.argsort(dist, stable=True)[:max(top, 0)]
    return {
        "descriptor": DESCRIPTOR,
        "distance": DISTANCE,
        "copy_threshold": COPY_THRESHOLD,
        "n_fake": int(fake.shape[0]),
        "n_real": int(real.shape[0]),
        "median_distance": round(float(np.median(dist.numpy())), 6) if len(dist) else None,
        "real_floor": floor,
        "n_copies": int((dist < COPY_THRESHOLD).sum()),
        "closest": [{"fake": int(i), "real": int(index[i]), "distance": round(float(dist[i]), 6)} for i in order],
    }


def _thumbnails(images: torch.Tensor, picks: list[int], px: int = 128) -> np.ndarray:
    """The picked images shrunk (area average) to px x px, as uint8 N x px x px x 3."""
    chosen = images[torch.tensor(picks, dtype=torch.long, device=images.device)].float()
    small = F.adaptive_avg_pool2d(chosen, px) if chosen.shape[-1] > px else chosen
    return small.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()


def save_pairs_png(real: torch.Tensor, fake: torch.Tensor, report: dict, path, top: int = 8) -> None:
    """PNG of the `top` closest pairs from nearest_pairs' report, one row each:
    generated image | its nearest painting, labelled with the distance and their file names (the
    pairs' fake_file and real_file, where the caller added them). Written atomically."""
    pairs = report["closest"][:max(top, 0)]
    threshold = report.get("copy_threshold", COPY_THRESHOLD)
    rows = max(len(pairs), 1)
    fig, axes = plt.subplots(rows, 2, figsize=(3.1, 1.5 * rows + 0.35), dpi=100, squeeze=False)
    if pairs:
        fakes = _thumbnails(fake, [p["fake"] for p in pairs])
        reals = _thumbnails(real, [p["real"] for p in pairs])
        for r, pair in enumerate(pairs):
            left, right = axes[r]
            left.imshow(fakes[r], interpolation="nearest")
            right.imshow(reals[r], interpolation="nearest")
            left.set_title(pair.get("fake_file", f"generated #{pair['fake']}"), fontsize=7)
            right.set_title(pair.get("real_file", f"painting #{pair['real']}"), fontsize=7)
            copy = pair["distance"] < threshold
            left.set_ylabel(f"d={pair['distance']:.4f}" + ("\nCOPY" if copy else ""), fontsize=7,
                            color="red" if copy else "black")
    else:
        axes[0][0].text(0.5, 0.5, "no generated images", ha="center", va="center", fontsize=8)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
        if not pairs:
            ax.set_axis_off()
    fig.suptitle(f"nearest paintings ({report.get('distance', DISTANCE)}; copy < {threshold})", fontsize=8)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    # matplotlib writes RGBA; dropping the unused alpha and optimising keeps the file small.
    with Image.open(buffer) as img:
        rgb = img.convert("RGB")
    small = io.BytesIO()
    rgb.save(small, format="PNG", optimize=True)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(path, small.getvalue())
