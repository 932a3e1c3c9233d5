"""score: compare a run's generated images with the training paintings; writes <run>/score/score.json.

SWD needs no weights and is always computed. FID, KID and MiFID need the Inception weights;
without them the report says so, and why, instead of a number.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from . import prepare
from .artifacts import Workdir, require_stamp, run_stage, write_json_atomic
from .config import Config
from .errors import PainterError
from .generate import images_dir
from .images import COMPETITION_SIZE, load_rgb
from .metrics.inception import find_weights, inception_scores
from .metrics.swd import sliced_wasserstein_distance
from .train import resolve_device

VERSION = 1


def score_dir(cfg: Config, wd: Workdir) -> Path:
    return wd.run(cfg.run.name) / "score"


def read_images(files: list[Path], size: int = COMPETITION_SIZE) -> torch.Tensor:
    def load(path: Path) -> np.ndarray:
        try:
            return load_rgb(path, size)[0]
        except ValueError as exc:
            raise PainterError(f"generated image {path} is unreadable ({exc}); re-run `painter generate --force`")

    with ThreadPoolExecutor(max_workers=4) as pool:
        arrays = list(tqdm(pool.map(load, files), total=len(files), desc="score: read", unit="img"))
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()


def summary_lines(report: dict) -> list[str]:
    swd = report["swd"]
    levels = ", ".join(f"{k}px {v:.2f}" for k, v in swd["per_level"].items())
    lines = [f"score: {report['run']}: {report['n_scored']} of {report['n_generated']} generated images "
             f"vs {report['n_reference']} paintings",
             f"  SWD    {swd['value']:9.3f}   (x1e3, lower is better; {swd['n_used']} generated vs "
             f"{swd['n_used']} paintings; per level {levels})"]
    inc = report["inception"]
    if inc["computed"]:
        lines += [f"  FID    {inc['fid']:9.3f}   ({inc['n_fake']} images vs {inc['n_real']})",
                  f"  KID    {inc['kid']:9.5f}   (+- {inc['kid_std']:.5f}, subsets of {inc['kid_subset_size']})",
                  f"  MiFID  {inc['mifid']:9.3f}   (memorization distance d = {inc['memorization_distance']:.4f})"]
    else:
        lines.append(f"  FID, KID, MiFID: not computed: {inc['reason']}")
    return lines


def run(cfg: Config, wd: Workdir, *, force: bool = False, inception_weights: str | None = None,
        log=print) -> dict:
    generated = images_dir(cfg, wd)
    generated_stamp = require_stamp(generated, "generated images", "painter generate")
    reference = prepare.shards_dir(cfg, wd, COMPETITION_SIZE)
    reference_stamp = require_stamp(reference, "reference shards", "painter prepare")
    sc = cfg.score
    weights = find_weights(inception_weights) if sc.inception else None
    inputs = {"version": VERSION, "score": cfg.section("score"),
              "generate": {"fingerprint": generated_stamp["fingerprint"]},
              "reference": {"fingerprint": reference_stamp["fingerprint"]},
              "inception_weights": weights.identity() if weights else None}

    def build(out: Path) -> dict:
        started = time.perf_counter()
        device = resolve_device(cfg.run.device)
        files = sorted(generated.glob("*.jpg"))
        if not files:
            raise PainterError(f"no generated images in {generated}; re-run `painter generate --force`")
        picked = files
        if len(files) > sc.max_images:  # a seeded sample keeps CPU scoring affordable
            order = torch.randperm(len(files), generator=torch.Generator().manual_seed(sc.seed))
            picked = [files[i] for i in sorted(order[:sc.max_images].tolist())]
        fake = read_images(picked)
        real = prepare.load_shards(reference)
        swd = sliced_wasserstein_distance(real.to(device), fake.to(device), seed=sc.seed, progress=True)
        if weights is None:
            inception = {"computed": False, "reason": "disabled by score.inception = false"}
        else:
            inception = inception_scores(real, fake, weights, sc.batch_size, device, sc.seed)
        report = {"run": cfg.run.name, "n_generated": len(files), "n_scored": len(picked),
                  "n_reference": len(real),
                  "swd": {"value": swd["swd"], "per_level": swd["swd_per_level"],
                          "n_used": swd["n_used"]},
                  "inception": inception,
                  "device": str(device), "seconds": round(time.perf_counter() - started, 1)}
        write_json_atomic(out / "score.json", report)
        for line in summary_lines(report):
            log(line)
        return {"swd": swd["swd"], "fid": inception.get("fid"), "mifid": inception.get("mifid")}

    return run_stage("score", score_dir(cfg, wd), inputs, build, force=force, log=log)
