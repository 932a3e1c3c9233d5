"""score: compare a run's generated images with the training paintings; writes <run>/score/.

- SWD needs no weights and is always computed.
- The untouched photos, when the data has them, are scored the same way once per data source
  (<workdir>/baselines/<source>-photos/): the baseline a submission has to beat.
- A nearest-neighbour check in a weight-free descriptor finds near-copies of training paintings
  (what MiFID punishes) and draws the closest pairs in nearest.png.
- FID, KID and MiFID need the Inception weights; without them the report says so, and why.
  Features are extracted once: the paintings' are cached in the workdir (keyed by their shards,
  the extractor and the weights), a run's beside the run, so re-scoring costs only the math.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

from . import prepare, records
from .artifacts import fingerprint, require_stamp, run_stage, write_json_atomic
from .config import Config
from .download import source_id
from .errors import PainterError
from .decode import load_rgb
from .images import COMPETITION_SIZE, read_jpegs, save_grid
from .layout import NEAREST, SAMPLES, SCORE, Workdir
from .metrics.inception import FeatureCache, Weights, find_weights, inception_scores
from .metrics.nearest import nearest_pairs, save_pairs_png
from .metrics.swd import swd_with_floor as swd_over_splits
from .devices import resolve_device

VERSION = 4  # 4: SWD over score.splits splits, with standard errors
NEAREST_PAIRS = 8


def swd_with_floor(real: torch.Tensor, fake: torch.Tensor, sc) -> dict:
    """SWD against the paintings with its floor and standard errors, over score.splits splits (metrics.swd)."""
    try:
        return swd_over_splits(real, fake, sc.seed, sc.splits, progress=True)
    except ValueError as exc:
        raise PainterError(str(exc)) from None


def summary_lines(report: dict) -> list[str]:
    swd, numbers = report["swd"], records.score_numbers(report)
    levels = ", ".join(f"{k}px {v:.2f}" for k, v in swd["per_level"].items())
    lines = [f"score: {report['run']}: {report['n_scored']} of {report['n_generated']} generated images "
             f"vs {report['n_reference']} paintings",
             f"  SWD    {records.plus_minus(numbers['swd'], numbers['swd_se'], 3):>17}   (x1e3, lower is better; "
             f"the mean of {swd['splits']} splits ± its standard error; floor "
             f"{records.plus_minus(numbers['swd_floor'], numbers['swd_floor_se'], 3)} = paintings vs paintings; "
             f"{swd['n_used']} vs {swd['n_used']} images a split; per level {levels})"]
    baseline = report.get("photos_baseline")
    if baseline:
        photos = records.plus_minus(baseline["swd"], baseline.get("swd_se"), 3)
        verdict = {"ahead": "beats them", "behind": "does not beat them",
                   "tied": "is level with them (the difference is within the uncertainty)"}[
            records.compare(numbers["swd"], numbers["swd_se"], baseline["swd"], baseline.get("swd_se"))]
        lines.append(f"         {'':17}   the untouched photos score {photos}: this run {verdict}")
    inc = report["inception"]
    if inc["computed"]:
        features = inc["features"]
        lines += [f"  FID    {records.plus_minus(inc['fid'], inc.get('fid_se'), 3):>17}   ({inc['n_fake']} images vs "
                  f"{inc['n_real']}, ± from {inc.get('bootstraps', 0)} resamples of them; features: "
                  f"generated {features['generated']}, reference {features['reference']})",
                  f"  KID    {inc['kid']:17.5f}   (sd {inc['kid_std']:.5f} over {inc['kid_subsets']} subsets of "
                  f"{inc['kid_subset_size']})",
                  f"  MiFID  {records.plus_minus(inc['mifid'], inc.get('mifid_se'), 3):>17}   (memorization distance "
                  f"d = {inc['memorization_distance']:.4f}; "
                  f"penalised when d < 0.1)"]
    else:
        lines.append(f"  FID, KID, MiFID: not computed: {inc['reason']}")
    near = report["nearest"]
    closest = near["closest"][0] if near["closest"] else None
    lines.append(f"  copies {near['n_copies']:9d}   (generated images within {near['copy_threshold']} of a painting"
                 + (f"; closest {closest['fake_file']} at {closest['distance']:.4f}" if closest else "")
                 + "; see nearest.png)")
    if near["n_copies"]:
        lines.append(f"  WARNING: {near['n_copies']} generated image(s) look like copies of training paintings; "
                     "MiFID punishes memorization")
    return lines


def score_images(fake: torch.Tensor, names: list[str], real: torch.Tensor, real_names: list[str], out: Path, sc,
                 weights, device, *,
                 real_cache: FeatureCache, real_key: dict, fake_cache: FeatureCache | None, fake_key: dict) -> dict:
    """The score report of uint8 256 px images `fake` (files `names`) against the paintings `real` (`real_names`):
    SWD with its floor, the copy check (nearest.png in `out`), FID/KID/MiFID when `weights`."""
    swd = swd_with_floor(real, fake, sc)
    nearest = nearest_pairs(real, fake, top=NEAREST_PAIRS)
    nearest["closest"] = [{**pair, "fake_file": names[pair["fake"]], "real_file": real_names[pair["real"]]}
                          for pair in nearest["closest"]]
    save_pairs_png(real, fake, nearest, out / NEAREST, top=NEAREST_PAIRS)
    if weights is None:
        inception = {"computed": False, "reason": "disabled by score.inception = false"}
    else:
        inception = inception_scores(real, fake, weights, sc.batch_size, device, seed=sc.seed,
                                     real_cache=real_cache, real_key=real_key, fake_cache=fake_cache,
                                     fake_key=fake_key)
    return {"n_scored": len(fake), "n_reference": len(real), "swd": swd, "nearest": nearest, "inception": inception,
            "device": str(device)}


def headline(report: dict) -> dict:
    """The numbers a score stamp carries."""
    numbers = records.score_numbers(report)
    return {"swd": numbers["swd"], "swd_se": numbers["swd_se"], "swd_floor": numbers["swd_floor"],
            "fid": numbers["fid"], "mifid": numbers["mifid"], "near_copies": numbers["copies"]}


def seeded_sample(files: list[Path], count: int, seed: int) -> list[Path]:
    """At most `count` of `files`, a seeded choice kept in order (keeps CPU scoring affordable)."""
    if len(files) <= count:
        return files
    order = torch.randperm(len(files), generator=torch.Generator().manual_seed(seed))
    return [files[i] for i in sorted(order[:count].tolist())]


def photos_baseline(cfg: Config, wd: Workdir, weights, *, force: bool = False, log=print) -> dict | None:
    """Score the untouched photos as if they were a run's images: the baseline a translation must beat.
    Cached per data source under <workdir>/baselines/; None when the data has no photos."""
    raw = wd.raw(source_id(cfg.data.source))
    raw_stamp = require_stamp(raw, "download", "painter download")
    files = sorted(p for p in (raw / "photo_jpg").glob("*") if p.is_file())
    if not files:
        return None
    reference = prepare.shards_dir(cfg, wd, COMPETITION_SIZE)
    reference_stamp = require_stamp(reference, "reference shards", "painter prepare")
    sc = cfg.score
    inputs = {"version": VERSION, "score": cfg.section("score"),
              "download": {"fingerprint": raw_stamp["fingerprint"]},
              "reference": {"fingerprint": reference_stamp["fingerprint"]},
              "inception_weights": weights.identity() if weights else None}

    def build(out: Path) -> dict:
        started = time.perf_counter()
        device = resolve_device(cfg.run.device)
        picked = seeded_sample(files, sc.max_images, sc.seed)
        with ThreadPoolExecutor(max_workers=4) as pool:  # PIL releases the GIL while decoding
            decoded = list(pool.map(_photo_or_none, picked))
        kept = [(path, array) for path, array in zip(picked, decoded) if array is not None]
        if not kept:
            raise PainterError(f"none of the {len(picked)} photos in {raw / 'photo_jpg'} could be decoded")
        photos = torch.from_numpy(np.stack([array for _, array in kept])).permute(0, 3, 1, 2).contiguous()
        real, real_names = prepare.load_shards(reference, device), prepare.shard_sources(reference)
        report = {"run": "untouched photos", "source": cfg.data.source, "n_generated": len(files),
                  **score_images(photos.to(device), [path.name for path, _ in kept], real, real_names, out, sc, weights,
                                 device,
                                 real_cache=FeatureCache(wd.reference_features),
                                 real_key={"images": reference_stamp["fingerprint"]}, fake_cache=None, fake_key={}),
                  "seconds": round(time.perf_counter() - started, 1)}
        write_json_atomic(out / SCORE, report)
        save_grid(photos[:64].float().div(127.5).sub(1), out / SAMPLES)
        log(f"score: untouched photos: SWD {report['swd']['value']:.3f} ({len(kept)} photos)")
        return headline(report)

    return run_stage("score photos", wd.baseline(source_id(cfg.data.source)), inputs, build, force=force, log=log)


def _photo_or_none(path: Path):
    try:
        return load_rgb(path, COMPETITION_SIZE)[0]
    except ValueError:
        return None  # prepare names unreadable files; the baseline simply leaves them out


def run(cfg: Config, wd: Workdir, *, force: bool = False, inception_weights: str | None = None,
        weights: Weights | None = None, log=print) -> dict:
    """weights: the Inception weights already found (and checked) by the caller, else found here."""
    folder = wd.run_folder(cfg.run.name)
    generated = folder.images
    generated_stamp = require_stamp(generated, "generated images", "painter generate")
    reference = prepare.shards_dir(cfg, wd, COMPETITION_SIZE)
    reference_stamp = require_stamp(reference, "reference shards", "painter prepare")
    sc = cfg.score
    if weights is None and sc.inception:
        weights = find_weights(inception_weights)
    try:
        baseline = photos_baseline(cfg, wd, weights, log=log)
    except PainterError as exc:  # the run's own score does not depend on the photos
        log(f"score: the untouched photos are not scored: {exc}")
        baseline = None
    inputs = {"version": VERSION, "score": cfg.section("score"),
              "generate": {"fingerprint": generated_stamp["fingerprint"]},
              "reference": {"fingerprint": reference_stamp["fingerprint"]},
              "inception_weights": weights.identity() if weights else None,
              "photos_baseline": {"fingerprint": baseline["fingerprint"]} if baseline else None}

    def build(out: Path) -> dict:
        started = time.perf_counter()
        device = resolve_device(cfg.run.device)
        files = sorted(generated.glob("*.jpg"))
        if not files:
            raise PainterError(f"no generated images in {generated}; re-run `painter generate --force`")
        picked = seeded_sample(files, sc.max_images, sc.seed)
        try:
            fake = read_jpegs(picked, device, desc="score: generated")
        except ValueError as exc:
            raise PainterError(f"generated image {exc}; re-run `painter generate --force`") from None
        real, real_names = prepare.load_shards(reference, device), prepare.shard_sources(reference)
        report = {"run": cfg.run.name, "n_generated": len(files),
                  **score_images(fake, [p.name for p in picked], real, real_names, out, sc, weights, device,
                                 real_cache=FeatureCache(wd.reference_features),
                                 real_key={"images": reference_stamp["fingerprint"]},
                                 fake_cache=FeatureCache(folder.features, keep_one=True),
                                 fake_key={"images": generated_stamp["fingerprint"],
                                           "files": fingerprint([p.name for p in picked])}),
                  "seconds": round(time.perf_counter() - started, 1)}
        if baseline:
            report["photos_baseline"] = {"name": wd.baseline(source_id(cfg.data.source)).name, **baseline["summary"]}
        write_json_atomic(out / SCORE, report)
        for line in summary_lines(report):
            log(line)
        return headline(report) | ({"photos_swd": baseline["summary"]["swd"]} if baseline else {})

    return run_stage("score", folder.score, inputs, build, force=force, log=log)
