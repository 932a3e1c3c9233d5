"""Generate and score throughput: painter's stages against the naive references, side by side.

generate: painter's `write_images` (device batches in training's mixed precision, uint8 upsampling,
JPEG encoding on the GPU or in a thread pool, parallel atomic writes) against a naive loop: the
same generator and batch size in fp32, float bicubic upsampling, then PIL encoding and saving one
file at a time. Both write the same number of 256 px JPEGs at quality 95.

score: FID and KID of the generated images against the 300 Monet paintings. painter
(`pipeline.metrics.inception`: torchvision decoding, channels_last Inception, reference features
cached in the workdir) against torch-fidelity's `fidelity` command line on the two folders. Both
use the same Inception network: the real weights when a local file is given (--inception-weights),
else one randomly initialised `inception-v3-compat` saved in torch-fidelity's format; its cost does
not depend on its weights. painter is timed cold (reference features extracted) and warm (cached,
as for every run after the first). Each score side runs in its own Python process and is timed
from the outside, start-up included, as a user would run it. Both FIDs are recorded: they must agree.

    python bench/score_throughput.py [--count 2000] [--score-count 500] [--device auto]
                                     [--inception-weights PATH] [--out bench/results/score_throughput.json]

Results are merged into the JSON file keyed by (device, count, score_count). See bench/README.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from unittest import mock

import torch
import torch.nn.functional as F
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from pipeline.config import ScoreConfig  # noqa: E402
from pipeline.devices import autocast_dtype  # noqa: E402
from pipeline.generate import write_images  # noqa: E402
from pipeline.metrics import inception  # noqa: E402
from pipeline import archs  # noqa: E402
from train_throughput import device_label, machine_info, read_cases, write_json_atomic  # noqa: E402

DEFAULT_DATA = REPO.parent / "shared" / "data"
DEFAULT_OUT = REPO / "bench" / "results" / "score_throughput.json"
RESOLUTION, LATENT_DIM, CHANNELS, BATCH, QUALITY = 64, 100, 64, 250, 95
SCORE_BATCH = ScoreConfig().batch_size  # painter's default, used by both sides


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def naive_generate(generator, out: Path, count: int, seed: int, device: torch.device) -> None:
    """The loop of a typical notebook: fp32 batches, then PIL saves one file at a time."""
    noise = torch.randn(count, LATENT_DIM, generator=torch.Generator().manual_seed(seed))
    index = 0
    with torch.no_grad():
        for start in range(0, count, BATCH):
            images = generator(noise[start:start + BATCH].to(device))
            images = F.interpolate(images, size=256, mode="bicubic", align_corners=False)
            pixels = images.add(1).mul(127.5).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).cpu()
            for array in pixels.numpy():
                Image.fromarray(array).save(out / f"{index:05d}.jpg", quality=QUALITY)
                index += 1


def time_generate(side: str, generator, out: Path, count: int, device: torch.device) -> float:
    out.mkdir(parents=True)
    sync(device)
    started = time.perf_counter()
    if side == "painter":
        write_images(generator, out, count, 0, BATCH, QUALITY, device, log=lambda _: None)
    else:
        naive_generate(generator, out, count, 0, device)
    sync(device)
    return time.perf_counter() - started


def random_inception_weights(path: Path, paintings: list[Path]) -> None:
    """A randomly initialised inception-v3-compat, saved like the real weights (legacy pickle).

    Its batch-norm statistics are set from a few paintings: with the defaults (mean 0, variance 1)
    activations fade layer by layer and every image gets nearly the same features, which would make
    the FID cross-check between the two sides meaningless. The cost per image is unchanged.
    """
    import torch_fidelity.feature_extractor_inceptionv3 as tf_inception

    from pipeline.images import read_jpegs

    with mock.patch.object(tf_inception, "load_state_dict_from_url", lambda *a, **k: None), \
            mock.patch.object(tf_inception.FeatureExtractorInceptionV3, "load_state_dict", lambda self, sd: None):
        torch.manual_seed(0)
        model = tf_inception.FeatureExtractorInceptionV3(inception.INCEPTION, ["2048"])
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.reset_running_stats()
            module.momentum = None  # a plain average over the calibration batch
    model.train()
    with torch.no_grad():
        model(read_jpegs(paintings, torch.device("cpu"), desc="calibrate"))
    torch.save(model.state_dict(), path, _use_new_zipfile_serialization=False)


def painter_score(fake_dir: Path, real_dir: Path, weights: Path, cache: Path, device: str) -> dict:
    """Child process: painter's FID/KID path on two folders (the paintings standing in for the shards)."""
    from pipeline.images import read_jpegs

    device = torch.device(device)
    fake = read_jpegs(sorted(fake_dir.glob("*.jpg")), device, desc="fake")
    real = read_jpegs(sorted(real_dir.glob("*.jpg")), device, desc="real")
    result = inception.inception_scores(
        real, fake, inception.Weights(weights, "bench"), SCORE_BATCH, device,
        real_cache=inception.FeatureCache(cache), real_key={"images": str(real_dir)})
    return {"fid": result["fid"], "kid": result["kid"], "reference": result["features"]["reference"]}


def run_painter_score(fake_dir, real_dir, weights, cache, device, scratch: Path) -> tuple[float, dict]:
    result_file = scratch / "painter-score.json"
    command = [sys.executable, str(Path(__file__).resolve()), "--side", "painter-score", "--fake", str(fake_dir),
               "--real", str(real_dir), "--weights", str(weights), "--cache", str(cache), "--device", device,
               "--result", str(result_file)]
    started = time.perf_counter()
    subprocess.run(command, check=True, cwd=REPO)
    return time.perf_counter() - started, json.loads(result_file.read_text())


def run_fidelity(fake_dir, real_dir, weights, device: str, kid_subset: int) -> tuple[float, dict]:
    command = [str(Path(sys.executable).with_name("fidelity")), "--input1", str(fake_dir), "--input2", str(real_dir),
               "--fid", "--kid", "--kid-subset-size", str(kid_subset), "--batch-size", str(SCORE_BATCH),
               "--feature-extractor-weights-path", str(weights), "--json", "--silent", "--no-cache"]
    command += ["--gpu", "0"] if device.startswith("cuda") else ["--cpu"]
    started = time.perf_counter()
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    seconds = time.perf_counter() - started
    metrics = json.loads(output[output.index("{"):])
    return seconds, {"fid": metrics["frechet_inception_distance"], "kid": metrics["kernel_inception_distance_mean"]}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description="painter's generate and score against naive references.")
    parser.add_argument("--count", type=int, default=2000, help="images generated per side (default: 2000)")
    parser.add_argument("--score-count", type=int, default=500,
                        help="generated images scored per side (default: 500; 10000 on a GPU is realistic)")
    parser.add_argument("--device", default="auto", help="auto (CUDA when available), cpu or cuda")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder holding monet_jpg/")
    parser.add_argument("--inception-weights", type=Path,
                        help="real Inception weights (else a randomly initialised network, same cost)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    # Internal: painter's score side, run in a child process by the driver.
    for name in ("--side", "--fake", "--real", "--weights", "--cache", "--result"):
        parser.add_argument(name, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.side == "painter-score":
        result = painter_score(Path(args.fake), Path(args.real), Path(args.weights), Path(args.cache), args.device)
        Path(args.result).write_text(json.dumps(result))
        return

    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          "cpu" if args.device == "auto" else args.device)
    device_name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    real_dir = args.data.resolve() / "monet_jpg"
    if not real_dir.is_dir():
        raise SystemExit(f"no paintings at {real_dir}; pass --data FOLDER (a folder holding monet_jpg/)")
    if not 2 <= args.score_count <= args.count:
        raise SystemExit("--score-count must be between 2 and --count")
    previous_cases = read_cases(args.out)
    machine = machine_info(device_name)
    device_name = device_label(device_name)
    if args.inception_weights:
        inception.check_weights_file(args.inception_weights.resolve(), "--inception-weights")

    with tempfile.TemporaryDirectory(prefix="painter-bench-") as tmp:
        scratch = Path(tmp)
        torch.manual_seed(0)
        generator = archs.get("dcgan").build_generator(RESOLUTION, {"latent_dim": LATENT_DIM, "channels": CHANNELS}).to(device).eval()
        # One untimed warm-up batch each, so neither side pays for lazy initialisation.
        warm_up = min(BATCH, args.count)
        time_generate("painter", generator, scratch / "warm-painter", warm_up, device)
        time_generate("naive", generator, scratch / "warm-naive", warm_up, device)
        seconds = {side: time_generate(side, generator, scratch / f"gen-{side}", args.count, device)
                   for side in ("naive", "painter")}
        print(f"generate: painter {args.count / seconds['painter']:.1f} img/s, "
              f"naive {args.count / seconds['naive']:.1f} img/s", flush=True)

        fake_dir = scratch / "scored"
        fake_dir.mkdir()
        for path in sorted((scratch / "gen-painter").glob("*.jpg"))[:args.score_count]:
            (fake_dir / path.name).symlink_to(path)
        weights = args.inception_weights.resolve() if args.inception_weights else scratch / "random-inception.pth"
        if not args.inception_weights:
            random_inception_weights(weights, sorted(real_dir.glob("*.jpg"))[:32])
        n_real = len(list(real_dir.glob("*.jpg")))
        kid_subset = min(n_real, args.score_count, inception.KID_MAX_SUBSET)
        fidelity_s, fidelity = run_fidelity(fake_dir, real_dir, weights, str(device), kid_subset)
        print(f"score: fidelity CLI {fidelity_s:.1f} s, FID {fidelity['fid']:.6g}", flush=True)
        cold_s, cold = run_painter_score(fake_dir, real_dir, weights, scratch / "cache", str(device), scratch)
        warm_s, warm = run_painter_score(fake_dir, real_dir, weights, scratch / "cache", str(device), scratch)
        assert (cold["reference"], warm["reference"]) == ("extracted", "cached")
        print(f"score: painter cold {cold_s:.1f} s, warm {warm_s:.1f} s, FID {warm['fid']:.6g}", flush=True)

    rate = {side: args.count / s for side, s in seconds.items()}
    case = {
        "device": device_name, "count": args.count, "score_count": args.score_count, "n_real": n_real,
        "generate": {"painter_img_per_s": round(rate["painter"], 1), "naive_img_per_s": round(rate["naive"], 1),
                     "ratio": round(rate["painter"] / rate["naive"], 3),
                     "painter_precision": str(autocast_dtype(device) or torch.float32).removeprefix("torch."),
                     "naive_precision": "float32",
                     "model": f"dcgan {RESOLUTION}px, {CHANNELS} channels, batch {BATCH}, JPEG quality {QUALITY}"},
        "score": {"painter_warm_img_per_s": round(args.score_count / warm_s, 2),
                  "painter_cold_img_per_s": round(args.score_count / cold_s, 2),
                  "fidelity_cli_img_per_s": round(args.score_count / fidelity_s, 2),
                  "ratio": round(fidelity_s / warm_s, 3), "ratio_cold": round(fidelity_s / cold_s, 3),
                  "seconds": {"painter_warm": round(warm_s, 1), "painter_cold": round(cold_s, 1),
                              "fidelity_cli": round(fidelity_s, 1)},
                  "fid": {"painter": warm["fid"], "fidelity_cli": fidelity["fid"],
                          "relative_difference": abs(warm["fid"] - fidelity["fid"]) / abs(fidelity["fid"])},
                  "weights": "real Inception" if args.inception_weights else "random inception-v3-compat",
                  "img_per_s": "generated images scored per second, process start-up included"},
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine,
    }

    def key(c):
        return (c["device"], c["count"], c["score_count"])
    merged = sorted([c for c in previous_cases if key(c) != key(case)] + [case], key=key)
    write_json_atomic(args.out, {"benchmark": "score_throughput",
                                 "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                                 "machine": machine, "cases": merged})
    print(json.dumps(case, indent=2))
    print(f"results: {args.out}")


if __name__ == "__main__":
    main()
