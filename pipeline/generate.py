"""generate: write `generate.count` 256x256 RGB JPEGs from the trained generator into <run>/images/."""

from __future__ import annotations

import io
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch
import torch.nn.functional as F
from PIL import Image
from tqdm import tqdm

from .artifacts import Workdir, require_stamp, run_stage
from .config import Config
from .images import COMPETITION_SIZE
from .models import build_generator
from .train import resolve_device, train_dir

VERSION = 1


def images_dir(cfg: Config, wd: Workdir) -> Path:
    return wd.run(cfg.run.name) / "images"


def load_generator(path: Path, device: torch.device) -> torch.nn.Module:
    saved = torch.load(path, map_location="cpu", weights_only=True)
    g = build_generator(saved["arch"], saved["resolution"], saved["latent_dim"], saved["g_channels"])
    g.load_state_dict(saved["state_dict"])
    return g.to(device).eval()


def to_uint8_256(images: torch.Tensor) -> torch.Tensor:
    """[-1, 1] N x 3 x R x R -> uint8 N x 256 x 256 x 3 (HWC, ready for PIL); bicubic when upsampling."""
    if images.shape[-1] != COMPETITION_SIZE:
        images = F.interpolate(images, size=(COMPETITION_SIZE, COMPETITION_SIZE), mode="bicubic",
                               align_corners=False, antialias=images.shape[-1] > COMPETITION_SIZE)
    return images.add(1).mul(127.5).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).cpu()


def write_images(generator: torch.nn.Module, out: Path, count: int, seed: int, batch_size: int,
                 jpeg_quality: int, device: torch.device) -> None:
    # Noise for every image is drawn up front from one seeded CPU stream, so image i is the
    # same whatever the batch size or device.
    noise = torch.randn(count, generator.latent_dim, generator=torch.Generator().manual_seed(seed))

    def encode(item: tuple[int, torch.Tensor]) -> None:
        index, pixels = item
        buffer = io.BytesIO()
        Image.fromarray(pixels.numpy()).save(buffer, format="JPEG", quality=jpeg_quality)
        (out / f"{index:05d}.jpg").write_bytes(buffer.getvalue())

    # PIL releases the GIL while encoding, so threads overlap encoding with the next batch.
    with ThreadPoolExecutor(max_workers=4) as pool, tqdm(total=count, desc="generate", unit="img") as bar:
        for start in range(0, count, batch_size):
            with torch.no_grad():
                batch = to_uint8_256(generator(noise[start:start + batch_size].to(device)))
            for _ in pool.map(encode, enumerate(batch, start)):
                bar.update(1)


def run(cfg: Config, wd: Workdir, *, force: bool = False, log=print) -> dict:
    trained = train_dir(cfg, wd)
    train_stamp = require_stamp(trained, "trained generator", "painter train")
    inputs = {"version": VERSION, "generate": cfg.section("generate"),
              "train": {"fingerprint": train_stamp["fingerprint"]}}
    gc = cfg.generate

    def build(out: Path) -> dict:
        device = resolve_device(cfg.run.device)
        generator = load_generator(trained / "generator.pt", device)
        write_images(generator, out, gc.count, gc.seed, gc.batch_size, gc.jpeg_quality, device)
        return {"count": gc.count, "size": COMPETITION_SIZE}

    return run_stage("generate", images_dir(cfg, wd), inputs, build, force=force, log=log)
