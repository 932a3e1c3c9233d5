"""prepare: decode the images once into uint8 NCHW tensor shards with a manifest.

The paintings always; the photos too when the configured architecture translates photos. Training
loads the shards straight onto its device; score uses the 256 px paintings as the reference set and
generate translates the 256 px photos, so both the training and the 256 px resolutions are prepared.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

from . import archs
from .artifacts import Workdir, require_stamp, run_stage, sha256_file, write_json_atomic, write_torch_atomic
from .config import Config
from .download import source_id
from .errors import PainterError
from .images import COMPETITION_SIZE, load_rgb
from .progress import progress_bar

VERSION = 1
SHARD_BYTES = 64 << 20      # keeps each file small enough to load, verify and copy quickly
FOLDERS = {"paintings": "monet_jpg", "photos": "photo_jpg"}  # each domain's folder in the competition's layout


def resolutions(cfg: Config) -> list[int]:
    return sorted({cfg.data.resolution, COMPETITION_SIZE})  # the latter is score's reference set


def shards_dir(cfg: Config, wd: Workdir, resolution: int, domain: str = "paintings") -> Path:
    return wd.shards(source_id(cfg.data.source), resolution, domain)


def domains(cfg: Config) -> list[str]:
    """The paintings, and the photos when the architecture translates them."""
    return ["paintings", "photos"] if archs.get(cfg.model.arch).consumes == "photos" else ["paintings"]


def pack(files: list[Path], resolution: int, out: Path, log=print, desc: str | None = None) -> dict:
    per_shard = max(1, SHARD_BYTES // (3 * resolution * resolution))
    skipped, changed, images, sources = [], [], [], []
    with ThreadPoolExecutor(max_workers=4) as pool:  # PIL releases the GIL while decoding
        results = pool.map(lambda p: _try_load(p, resolution), files)
        for path, (array, notes, error) in progress_bar(zip(files, results), total=len(files),
                                                desc=desc or f"prepare {resolution}px", unit="img"):
            if error:
                skipped.append({"file": path.name, "reason": error})
                continue
            if notes:
                changed.append({"file": path.name, "changes": notes})
            images.append(array)
            sources.append(path.name)
    for item in skipped:
        log(f"  skipped {item['file']}: {item['reason']}")
    if not images:
        raise PainterError(f"no usable image among {len(files)} files in {files[0].parent if files else 'the source'}"
                           " (expected RGB JPEGs such as the competition's monet_jpg/)")

    shards = []
    for start in range(0, len(images), per_shard):
        batch = torch.from_numpy(np.stack(images[start:start + per_shard])).permute(0, 3, 1, 2).contiguous()
        name = f"shard-{len(shards):05d}.pt"
        write_torch_atomic(out / name, batch)
        shards.append({"file": name, "count": len(batch), "sha256": sha256_file(out / name)})
    manifest = {"count": len(images), "resolution": resolution, "shards": shards,
                "sources": sources, "skipped": skipped, "changed": changed}
    write_json_atomic(out / "manifest.json", manifest)
    return {"count": len(images), "resolution": resolution, "skipped": len(skipped)}


def _try_load(path: Path, resolution: int):
    try:
        array, notes = load_rgb(path, resolution)
        return array, notes, None
    except ValueError as exc:
        return None, None, str(exc)


def load_shards(folder: Path, device: str | torch.device = "cpu") -> torch.Tensor:
    """All images of a prepared folder as one uint8 N x 3 x R x R tensor, checked against the manifest."""
    require_stamp(folder, "shards", "painter prepare")
    manifest = json.loads((folder / "manifest.json").read_text())
    parts = []
    for shard in manifest["shards"]:
        path = folder / shard["file"]
        if not path.is_file() or sha256_file(path) != shard["sha256"]:
            raise PainterError(f"shard {path} is missing or corrupt; re-run `painter prepare --force`")
        parts.append(torch.load(path, weights_only=True))
    return torch.cat(parts).to(device)


def run(cfg: Config, wd: Workdir, *, force: bool = False, log=print) -> dict[str, dict[int, dict]]:
    """{domain: {resolution: stamp}}."""
    raw = wd.raw(source_id(cfg.data.source))
    raw_stamp = require_stamp(raw, "download", "painter download")
    stamps: dict[str, dict[int, dict]] = {}
    for domain in domains(cfg):
        folder = raw / FOLDERS[domain]
        files = sorted(p for p in folder.iterdir() if p.is_file()) if folder.is_dir() else []
        if domain == "photos" and not files:
            raise PainterError(f"{cfg.model.arch} translates photos into paintings, but the data source "
                               f"{cfg.data.source!r} has no photos ({FOLDERS[domain]}/ is missing or empty in {raw}); "
                               "use the competition's data (monet_jpg/ and photo_jpg/), or a from-noise "
                               "architecture such as dcgan")
        name = "prepare" if domain == "paintings" else f"prepare {domain}"
        stamps[domain] = {}
        for resolution in resolutions(cfg):
            inputs = {"version": VERSION, "resolution": resolution,
                      "download": {"fingerprint": raw_stamp["fingerprint"]}}
            if domain != "paintings":
                inputs["domain"] = domain
            stamps[domain][resolution] = run_stage(
                f"{name} {resolution}px", shards_dir(cfg, wd, resolution, domain), inputs,
                lambda out, r=resolution, f=files, n=name: pack(f, r, out, log, desc=f"{n} {r}px"),
                force=force, log=log)
    return stamps
