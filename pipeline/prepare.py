"""prepare: decode the images once into uint8 NCHW tensor shards with a manifest.

The paintings always; the photos too when the configured architecture translates photos. Training
loads the shards straight onto its device; score uses the 256 px paintings as the reference set and
generate translates the 256 px photos, so both the training and the 256 px resolutions are prepared.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import threading
import time
from collections import deque
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import torch

from . import archs
from .artifacts import require_stamp, run_stage, sha256_file, write_json_atomic, write_torch_atomic
from .config import Config
from .decode import COMPETITION_SIZE, MAX_PIXELS, decode_file
from .download import source_id
from .errors import PainterError
from .layout import SHARDS_MANIFEST, Workdir
from .progress import progress_bar

VERSION = 1
SHARD_BYTES = 64 << 20      # keeps each file small enough to load, verify and copy quickly
IN_FLIGHT = 32              # files handed to the decoding workers ahead of the one being packed
FOLDERS = {"paintings": "monet_jpg", "photos": "photo_jpg"}  # each domain's folder in the competition's layout


def resolutions(cfg: Config) -> list[int]:
    return sorted({cfg.data.resolution, COMPETITION_SIZE})  # the latter is score's reference set


def shards_dir(cfg: Config, wd: Workdir, resolution: int, domain: str = "paintings") -> Path:
    return wd.shards(source_id(cfg.data.source), resolution, domain)


def domains(cfg: Config) -> list[str]:
    """The paintings, and the photos when the architecture translates them."""
    return ["paintings", "photos"] if archs.get(cfg.model.arch).consumes == "photos" else ["paintings"]


def pack(files: list[Path], resolution: int, out: Path, log=print, desc: str | None = None,
         max_pixels: int = MAX_PIXELS, final: Path | None = None) -> dict:
    """Decode `files` into shards in `out` with a manifest of what was packed, changed, skipped and
    said on the way; one summary line goes to `log`, naming the manifest in `final` (where `out` is
    moved once complete) or `out`.

    Peak memory stays bounded whatever the folder holds: each worker decodes one file at a time (at
    most `max_pixels`, see decode.py), and the images go straight into one shard's buffer (64 MB),
    written when full."""
    desc = desc or f"prepare {resolution}px"
    per_shard = max(1, SHARD_BYTES // (3 * resolution * resolution))
    skipped, changed, warned, sources, shards = [], [], [], [], []
    shard = torch.empty((per_shard, 3, resolution, resolution), dtype=torch.uint8)  # filled in place
    filled = 0

    def write_shard() -> None:
        nonlocal filled
        name = f"shard-{len(shards):05d}.pt"
        # a slice would save the whole buffer's storage: the last, partial shard is copied out
        write_torch_atomic(out / name, shard if filled == per_shard else shard[:filled].clone())
        shards.append({"file": name, "count": filled, "sha256": sha256_file(out / name)})
        filled = 0

    with ProcessPoolExecutor(max_workers=min(4, os.cpu_count() or 1), mp_context=_worker_context(),
                             initializer=_exit_with_parent, initargs=(os.getpid(),)) as pool:
        results = _decoded_in_order(pool, files, resolution, max_pixels)
        for path, decoded in progress_bar(results, total=len(files), desc=desc, unit="img"):
            if decoded.messages:
                warned.append({"file": path.name, "messages": decoded.messages})
            if decoded.error:
                skipped.append({"file": path.name, "reason": decoded.error})
                continue
            if decoded.notes:
                changed.append({"file": path.name, "changes": decoded.notes})
            shard[filled] = torch.from_numpy(decoded.array).permute(2, 0, 1)
            filled += 1
            sources.append(path.name)
            if filled == per_shard:
                write_shard()
    if not sources:
        raise PainterError(f"no usable image among {len(files)} files in {files[0].parent if files else 'the source'}"
                           " (expected RGB JPEGs such as the competition's monet_jpg/)")
    if filled:
        write_shard()
    manifest = {"count": len(sources), "resolution": resolution, "shards": shards, "sources": sources,
                "skipped": skipped, "changed": changed, "warnings": warned, "max_pixels": max_pixels}
    write_json_atomic(out / SHARDS_MANIFEST, manifest)
    log(summary_line(desc, manifest, final or out))
    return {"count": len(sources), "resolution": resolution, "skipped": len(skipped)}


def summary_line(desc: str, manifest: dict, folder: Path) -> str:
    """'prepare 64px: 312 packed, 4 skipped (a.jpg, b.png, c.tif, ...), 2 with warnings: see .../manifest.json'"""
    line = f"{desc}: {manifest['count']} packed"
    if manifest["skipped"]:
        names = [item["file"] for item in manifest["skipped"]]
        line += f", {len(names)} skipped ({', '.join(names[:3])}{', ...' if len(names) > 3 else ''})"
    if manifest["warnings"]:
        line += f", {len(manifest['warnings'])} with warnings"
    if manifest["skipped"] or manifest["warnings"] or manifest["changed"]:
        line += f": see {folder / 'manifest.json'}"
    return line


def _decoded_in_order(pool: ProcessPoolExecutor, files: list[Path], resolution: int, max_pixels: int):
    """(path, Decoded) in the order of `files`, with at most IN_FLIGHT files submitted and not yet
    taken: Executor.map would submit them all, and decoded images would pile up whenever writing a
    shard falls behind the workers."""
    waiting: deque = deque()
    for path in files:
        waiting.append((path, pool.submit(decode_file, path, resolution, max_pixels)))
        if len(waiting) == IN_FLIGHT:
            path, future = waiting.popleft()
            yield path, future.result()
    for path, future in waiting:
        yield path, future.result()


def _exit_with_parent(parent: int) -> None:
    """In each worker: exit once prepare is gone. A prepare killed with -9 cannot stop its workers,
    and they would otherwise wait for work forever."""
    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, daemon=True).start()


def _worker_context():
    """fork where the platform has it (no re-import of torch in each worker); spawn elsewhere."""
    return multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn")


def shard_sources(folder: Path) -> list[str]:
    """The file names of a prepared folder's images, in the shards' order."""
    return json.loads((folder / SHARDS_MANIFEST).read_text())["sources"]


def load_shards(folder: Path, device: str | torch.device = "cpu") -> torch.Tensor:
    """All images of a prepared folder as one uint8 N x 3 x R x R tensor, checked against the manifest."""
    require_stamp(folder, "shards", "painter prepare")
    manifest = json.loads((folder / SHARDS_MANIFEST).read_text())
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
        if domain == "paintings" and not files:
            raise PainterError(f"the data source {cfg.data.source!r} has no paintings ({FOLDERS[domain]}/ is empty "
                               f"in {raw}); expected the competition's layout, monet_jpg/ and photo_jpg/")
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
            shards = shards_dir(cfg, wd, resolution, domain)
            stamps[domain][resolution] = run_stage(
                f"{name} {resolution}px", shards, inputs,
                lambda out, r=resolution, f=files, n=name, d=shards: pack(f, r, out, log, desc=f"{n} {r}px", final=d),
                force=force, log=log)
    return stamps
