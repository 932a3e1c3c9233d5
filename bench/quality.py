"""Quality on the real paintings: every architecture with and without DiffAugment, equal budget.

Each run trains on the 300 Monet paintings (../shared/data) at 64 px for the same number of real
images shown to the discriminator (critic steps x batch: WGAN's five critic steps and its warm-up
count against its budget). Runs are ordinary cached painter runs in a work directory, so an
interrupted benchmark resumes where it stopped.

Scoring is SWD at the training resolution, on the EMA generator's raw output, so upsampling to
256 px does not blur the differences between architectures. SWD's value depends on the sample
size, so both sides use 150 images: the floor is SWD between the two halves of the paintings, and
a run's score is the mean over 13 disjoint chunks of 150 of its 2,000 generated images, each
against one half of the paintings. Writes bench/results/quality.json and a 4x4 sample grid per run
under bench/results/quality/.

    python bench/quality.py [--budget 100000] [--workdir /tmp/painter-quality] [--device cpu]
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from pipeline import archs, download, prepare, train  # noqa: E402
from pipeline.archs.dcgan import critic_steps  # noqa: E402
from pipeline.artifacts import write_json_atomic  # noqa: E402
from pipeline.config import load_config  # noqa: E402
from pipeline.generate import load_generator  # noqa: E402
from pipeline.images import save_grid  # noqa: E402
from pipeline.layout import Workdir  # noqa: E402
from pipeline.metrics.swd import sliced_wasserstein_distance  # noqa: E402
from train_throughput import machine_info  # noqa: E402  (bench/ is on sys.path when run as a script)

DATA = REPO.parent / "shared" / "data"
RESULTS = REPO / "bench" / "results"
POLICY = "color,translation,cutout"
GENERATED, CHUNK = 2000, 150
SETTINGS = ["data.resolution=64", "model.g_channels=32", "model.d_channels=32", "train.batch_size=32",
            "train.log_every=50", "train.sample_every=1000000", "train.checkpoint_every=250"]


def generator_steps_for(budget: int, batch: int, n_critic: int, warmup: bool) -> tuple[int, int]:
    """Generator steps whose critic steps first show `budget` real images, and the images shown."""
    steps, seen = 0, 0
    while seen < budget:
        seen += batch * critic_steps(steps, n_critic, warmup)
        steps += 1
    return steps, seen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--budget", type=int, default=100_000, help="real images shown to D per run")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/painter-quality"))
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    wd = Workdir(args.workdir)
    (RESULTS / "quality").mkdir(parents=True, exist_ok=True)

    base = load_config(None, [f"data.source={DATA}", *SETTINGS])
    download.run(base, wd)
    prepare.run(base, wd)
    real = prepare.load_shards(prepare.shards_dir(base, wd, 64))
    halves = real[::2], real[1::2]  # file names are hashes: an interleaved split is a random one
    floor = sliced_wasserstein_distance(halves[0], halves[1])["swd"]
    print(f"floor (paintings, half vs half): SWD {floor:.2f}")

    runs = []
    for arch in [a.name for a in archs.all_architectures() if a.consumes == "noise"]:
        for policy in ("", POLICY):
            name = f"{arch}{'-diffaugment' if policy else ''}"
            cfg = load_config(REPO / "configs" / f"{arch}.toml",
                              [f"data.source={DATA}", *SETTINGS, f"run.name={name}", f"run.device={args.device}",
                               f"train.diffaugment={policy}"])
            cfg.train.steps, seen = generator_steps_for(args.budget, cfg.train.batch_size, cfg.train.n_critic,
                                                        cfg.train.critic_warmup)
            stamp = train.run(cfg, wd)
            generator = load_generator(wd.run_folder(cfg.run.name).generator, torch.device("cpu"))[0]
            noise = torch.randn(GENERATED, cfg.model.latent_dim, generator=torch.Generator().manual_seed(0))
            with torch.no_grad():
                images = torch.cat([generator(z) for z in noise.split(250)])
            fake = images.add(1).mul(127.5).round().clamp(0, 255).to(torch.uint8)
            scores = torch.tensor([sliced_wasserstein_distance(halves[i % 2], chunk, seed=i)["swd"]
                                   for i, chunk in enumerate(fake.split(CHUNK)) if len(chunk) == CHUNK])
            grid = RESULTS / "quality" / f"{name}.png"
            save_grid(images[:16], grid, nrow=4)
            summary = stamp["summary"]
            runs.append({"run": name, "arch": arch, "diffaugment": bool(policy), "generator_steps": cfg.train.steps,
                         "images_seen": seen,
                         "train_seconds": summary["seconds"], "precision": summary.get("precision"),
                         "swd": round(float(scores.mean()), 3), "swd_std": round(float(scores.std()), 3),
                         "swd_chunks": len(scores), "sample_grid": str(grid.relative_to(RESULTS))})
            print(f"{name:22s} steps {cfg.train.steps:5d}  SWD {scores.mean():7.2f} +- {scores.std():.2f}  "
                  f"({summary['seconds']:.0f} s)")

    runs.sort(key=lambda r: r["swd"])
    write_json_atomic(RESULTS / "quality.json", {
        "benchmark": "quality", "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine_info(train.resolve_device(args.device).type),
        "data": "300 Monet paintings (gan-getting-started monet_jpg)", "resolution": 64,
        "budget_images_seen": args.budget, "settings": SETTINGS,
        "swd": f"x1e3 at 64 px (levels 64, 32, 16), {CHUNK} vs {CHUNK} images; runs: mean +- std over chunks",
        "floor_swd_real_vs_real": round(floor, 3), "runs": runs})
    print(f"wrote {RESULTS / 'quality.json'}")


if __name__ == "__main__":
    main()
