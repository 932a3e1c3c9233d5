"""CycleGAN training throughput: painter's `train` stage against a loop run the way the reference
implementation (junyanz/pytorch-CycleGAN-and-pix2pix: train.py, models/cycle_gan_model.py,
data/unaligned_dataset.py) runs it.

Both sides train the same four networks, built by painter's `pipeline.archs.nets` with painter's
settings and seeded identically, at batch 1, on the same photos and paintings, for the same number of
steps, on the same device. What differs is the loop around the networks:

- painter: `configs/cyclegan.toml` as it is (mixed precision where the device has it, random crops
  of 256 px uint8 shards on the device, photo/painting pairs batched per generator, EMA); measured
  through `pipeline.train.run` and its metrics.csv.
- reference: every step a DataLoader (shuffled, REFERENCE_WORKERS workers) decodes one photo and one
  painting JPEG with PIL and resizes, crops, flips and normalises each; one `.to(device)` per image;
  fp32; the reference's optimisation order with separate calls per network; the losses read back
  every REFERENCE_PRINT_FREQ iterations.

Each side runs in its own Python process. Results are merged into a JSON file keyed by
(device, crop, channels, blocks). See bench/README.md.

    python bench/cyclegan_throughput.py [--steps N] [--crop PX] [--channels C] [--blocks B]
                                        [--device auto|cpu|cuda] [--out bench/results/cyclegan_throughput.json]
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import itertools
import json
import random
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import DataLoader
from torch.utils.flop_counter import FlopCounterMode
from torchvision import transforms

# train_throughput sits beside this file (sys.path[0] when run as a script) and puts the repository
# first on sys.path, so the `pipeline` imported below is this checkout's.
from train_throughput import (add_common_arguments, device_label, machine_info, painter_rate, read_cases,
                              warmup_steps, write_json_atomic)

from pipeline import download, prepare, train
from pipeline.archs.nets import ImagePool, PatchDiscriminator, ResnetGenerator
from pipeline.layout import Workdir
from pipeline.config import load_config
from pipeline.devices import cpu_has_native_bf16
from pipeline.errors import PainterError

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "bench" / "results" / "cyclegan_throughput.json"
PAINTER_CONFIG = REPO / "configs" / "cyclegan.toml"

PHOTOS = 300    # the first photos by file name: enough for the reference's epoch of max(photos, paintings) pairs
NEVER = 10 ** 9  # sample_every / checkpoint_every past the last step: the timed loops save nothing

# The reference's settings (its options' defaults for a CycleGAN run).
REFERENCE_WORKERS = 2        # its num_threads is 4; 2 because the development machine has 2 cores
REFERENCE_PRINT_FREQ = 100   # its print_freq: every 100 iterations train.py reads all losses back
REFERENCE_LR, REFERENCE_BETAS = 2e-4, (0.5, 0.999)
REFERENCE_POOL = 50
LAMBDA_CYCLE, LAMBDA_IDENTITY = 10.0, 0.5
REFERENCE_LOAD, REFERENCE_CROP = 286, 256  # resize to 286, random 256 crop; scaled for smaller crops

DEFAULTS = {  # per device: a 2-core CPU runs a few small steps; a GPU runs the preset's own size
    "cpu": {"steps": 30, "crop": 128, "channels": 32, "blocks": 6},
    "cuda": {"steps": 300, "crop": 256, "channels": 64, "blocks": 9},
}

# Dense bf16 peak TFLOPS by GPU name (fp16 for the T4, which has no bf16), for model FLOP utilisation.
PEAK_TFLOPS = [
    (r"\bH200\b", 989.0),
    (r"\bH100\b.*(SXM|HBM3)", 989.0),  # the SXM part; the PCIe and NVL parts have lower peaks
    (r"\bA100\b", 312.0),
    (r"\bL4\b", 121.0),
    (r"\bT4\b", 65.0),
]


def peak_tflops(device_name: str) -> float | None:
    for pattern, tflops in PEAK_TFLOPS:
        if re.search(pattern, device_name):
            return tflops
    return None


def reference_load_size(crop: int) -> int:
    """The reference resizes 256 px images to 286 before a 256 crop; keep that ratio at other crops."""
    return int(crop * REFERENCE_LOAD / REFERENCE_CROP + 0.5)


# ----------------------------------------------------------------------------------------------
# painter's side


# Keys the benchmark sets itself: they define the comparison, so --painter-set may not change them.
BENCH_KEYS = ("data.source", "run.name", "run.device", "model.arch", "model.g_channels", "model.d_channels",
              "cyclegan.blocks", "cyclegan.crop", "train.steps", "train.batch_size", "train.log_every",
              "train.eval_every", "train.sample_every", "train.checkpoint_every")


def painter_overrides(args) -> list[str]:
    # Everything else (mixed precision, EMA, flips, loss weights...) stays as configs/cyclegan.toml and
    # painter's defaults say, since that is what is measured; --painter-set adds more.
    values = [json.dumps(str(args.scratch / "data")), "bench-cyclegan", args.device, "cyclegan",
              args.channels, args.channels, args.blocks, args.crop, args.steps, 1, warmup_steps(args.steps),
              0, NEVER, NEVER]
    return [f"{key}={value}" for key, value in zip(BENCH_KEYS, values)] + list(args.painter_set)


def painter_config(args):
    return load_config(PAINTER_CONFIG, painter_overrides(args))


def painter_data(args) -> None:
    """painter's download and prepare stages, untimed, in the driver (see train_throughput)."""
    cfg, wd = painter_config(args), Workdir(args.scratch / "painter-workdir")
    download.run(cfg, wd)
    prepare.run(cfg, wd)


def painter_step_rate(metrics_csv: Path, warmup: int, steps: int) -> dict:
    """Images per second over the steps after the warm-up, from metrics.csv's `seconds` column: the
    time spent inside training steps, cumulative, to 0.01 s.

    For a CPU only. There a CycleGAN step takes seconds, and img_per_s, rounded to 0.1, cannot tell
    0.05 from 0.15 img/s; but a CPU step is finished when it returns, so the steps' own time is their
    wall-clock time less painter's logging between steps (milliseconds). On CUDA steps return before
    the GPU has finished them: there img_per_s (wall clock, tens of images per second) is the measure.
    """
    with open(metrics_csv, newline="") as fh:
        seconds = {int(row["step"]): float(row["seconds"]) for row in csv.DictReader(fh)}
    if warmup not in seconds or steps not in seconds:
        raise SystemExit(f"{metrics_csv}: expected rows at steps {warmup} and {steps}, found {sorted(seconds)}")
    timed = steps - warmup
    elapsed = seconds[steps] - seconds[warmup]
    return {"img_per_s": timed / elapsed, "timed_steps": timed, "timed_images": timed, "seconds": elapsed}


def painter_side(args) -> dict:
    cfg = painter_config(args)
    wd = Workdir(args.scratch / "painter-workdir")
    train.run(cfg, wd, force=True)
    folder = wd.run_folder(cfg.run.name)
    if args.device == "cpu":
        result = painter_step_rate(folder.metrics, warmup_steps(args.steps), args.steps)
        result["timing"] = "seconds column"
    else:
        result = painter_rate(folder.metrics, warmup_steps(args.steps), args.steps, batch=1)
        result["timing"] = "img_per_s column"
    result["precision"] = json.loads(folder.train_summary.read_text())["precision"]
    # What painter actually ran with, so numbers stay interpretable when its defaults change.
    result["painter_config"] = {name: cfg.section(name) for name in ("model", "train", "cyclegan")}
    return result


# ----------------------------------------------------------------------------------------------
# the reference's loop


class UnpairedImages:
    """The reference's unaligned dataset: item i is photo i (A) and a painting (B) drawn at random,
    each decoded from its JPEG and transformed on its own; as long as the larger folder."""

    def __init__(self, root: Path, crop: int):
        self.photos = sorted((root / "photo_jpg").iterdir())
        self.paintings = sorted((root / "monet_jpg").iterdir())
        load = reference_load_size(crop)
        self.transform = transforms.Compose([
            transforms.Resize([load, load], transforms.InterpolationMode.BICUBIC),
            transforms.RandomCrop(crop),
            transforms.RandomHorizontalFlip(),
            transforms.ToTensor(),
            transforms.Normalize((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
        ])

    def __len__(self) -> int:
        return max(len(self.photos), len(self.paintings))

    def __getitem__(self, index: int) -> dict:
        photo = self.photos[index % len(self.photos)]
        painting = self.paintings[random.randint(0, len(self.paintings) - 1)]
        return {"A": self.transform(Image.open(photo).convert("RGB")),
                "B": self.transform(Image.open(painting).convert("RGB")),
                "A_paths": str(photo), "B_paths": str(painting)}


def set_requires_grad(nets, flag: bool) -> None:
    for net in nets:
        for parameter in net.parameters():
            parameter.requires_grad = flag


class ReferenceStep:
    """One training iteration in the reference's order, A = photos, B = paintings: G_A turns photos into
    paintings (painter's g), G_B paintings into photos (painter's f), D_A judges paintings (painter's d),
    D_B photos (painter's d_photo)."""

    loss_names = ("D_A", "G_A", "cycle_A", "idt_A", "D_B", "G_B", "cycle_B", "idt_B")

    def __init__(self, G_A, G_B, D_A, D_B, device):
        self.G_A, self.G_B, self.D_A, self.D_B = G_A, G_B, D_A, D_B
        self.optimizer_G = torch.optim.Adam(itertools.chain(G_A.parameters(), G_B.parameters()),
                                            lr=REFERENCE_LR, betas=REFERENCE_BETAS)
        self.optimizer_D = torch.optim.Adam(itertools.chain(D_A.parameters(), D_B.parameters()),
                                            lr=REFERENCE_LR, betas=REFERENCE_BETAS)
        self.fake_A_pool, self.fake_B_pool = ImagePool(REFERENCE_POOL), ImagePool(REFERENCE_POOL)
        self.real_label = torch.tensor(1.0, device=device)
        self.fake_label = torch.tensor(0.0, device=device)

    def gan_loss(self, prediction, target_is_real: bool):
        """LSGAN: squared distance of every patch score to 1 (real) or 0 (generated)."""
        target = self.real_label if target_is_real else self.fake_label
        return F.mse_loss(prediction, target.expand_as(prediction))

    def d_loss(self, D, real, fake):
        loss = 0.5 * (self.gan_loss(D(real), True) + self.gan_loss(D(fake.detach()), False))
        loss.backward()
        return loss

    def __call__(self, real_A, real_B) -> dict:
        losses = {}
        fake_B = self.G_A(real_A)
        rec_A = self.G_B(fake_B)
        fake_A = self.G_B(real_B)
        rec_B = self.G_A(fake_A)

        # Generators, with the discriminators' weights frozen.
        set_requires_grad([self.D_A, self.D_B], False)
        self.optimizer_G.zero_grad()
        weight_identity = LAMBDA_CYCLE * LAMBDA_IDENTITY
        losses["idt_A"] = F.l1_loss(self.G_A(real_B), real_B) * weight_identity
        losses["idt_B"] = F.l1_loss(self.G_B(real_A), real_A) * weight_identity
        losses["G_A"] = self.gan_loss(self.D_A(fake_B), True)
        losses["G_B"] = self.gan_loss(self.D_B(fake_A), True)
        losses["cycle_A"] = F.l1_loss(rec_A, real_A) * LAMBDA_CYCLE
        losses["cycle_B"] = F.l1_loss(rec_B, real_B) * LAMBDA_CYCLE
        loss_G = (losses["G_A"] + losses["G_B"] + losses["cycle_A"] + losses["cycle_B"]
                  + losses["idt_A"] + losses["idt_B"])
        loss_G.backward()
        self.optimizer_G.step()

        # Discriminators, each on real images against a fake drawn from its history pool.
        set_requires_grad([self.D_A, self.D_B], True)
        self.optimizer_D.zero_grad()
        losses["D_A"] = self.d_loss(self.D_A, real_B, self.fake_B_pool.query(fake_B))
        losses["D_B"] = self.d_loss(self.D_B, real_A, self.fake_A_pool.query(fake_A))
        self.optimizer_D.step()
        return losses


def reference_side(args) -> dict:
    device = torch.device(args.device)
    warmup = warmup_steps(args.steps)
    cfg = painter_config(args)  # the networks' settings and seed are painter's
    torch.manual_seed(cfg.train.seed)
    random.seed(cfg.train.seed)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # as the reference sets it for fixed-size crops

    dataset = UnpairedImages(args.scratch / "data", args.crop)
    print(f"reference: {len(dataset.photos)} photos, {len(dataset.paintings)} paintings, resize to "
          f"{reference_load_size(args.crop)} then crop {args.crop}", flush=True)
    loader = DataLoader(dataset, batch_size=1, shuffle=True, num_workers=REFERENCE_WORKERS)

    # Built in painter's order (g, f, d, d_photo) from the same seed: the same initial weights.
    blocks, d_layers = cfg.options.blocks, cfg.options.d_layers
    G_A = ResnetGenerator(cfg.model.g_channels, blocks, antialias=False).to(device)
    G_B = ResnetGenerator(cfg.model.g_channels, blocks, antialias=False).to(device)
    D_A = PatchDiscriminator(cfg.model.d_channels, d_layers).to(device)
    D_B = PatchDiscriminator(cfg.model.d_channels, d_layers).to(device)
    step = ReferenceStep(G_A, G_B, D_A, D_B, device)

    def sync():  # the clock must see finished GPU work, not queued work
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    iters, started, ended = 0, None, None
    while ended is None:  # epochs, until as many steps as painter's side
        for data in loader:
            real_A, real_B = data["A"].to(device), data["B"].to(device)
            losses = step(real_A, real_B)
            iters += 1
            if iters % REFERENCE_PRINT_FREQ == 0:
                values = {name: losses[name].detach().item() for name in step.loss_names}
                print(f"reference: [{iters}/{args.steps}] "
                      + " ".join(f"{name} {value:.3f}" for name, value in values.items()), flush=True)
            if iters == warmup:
                sync()
                started = time.perf_counter()
            if iters == args.steps:
                sync()
                ended = time.perf_counter()  # before the loader's workers are shut down
                break
    seconds = ended - started

    # FLOPs of one more iteration (untimed): forward and backward of every network, batch 1.
    with FlopCounterMode(display=False) as counter:
        step(real_A, real_B)
    timed = args.steps - warmup
    return {"img_per_s": timed / seconds, "timed_steps": timed, "timed_images": timed, "seconds": seconds,
            "flops_per_step": counter.get_total_flops(), "photos": len(dataset.photos),
            "paintings": len(dataset.paintings)}


# ----------------------------------------------------------------------------------------------
# the driver


def run_side(side: str, args) -> dict:
    """Run one side in a fresh interpreter and return what it measured."""
    result_file = args.scratch / f"{side}.json"
    command = [sys.executable, str(Path(__file__).resolve()), "--side", side, "--steps", str(args.steps),
               "--crop", str(args.crop), "--channels", str(args.channels), "--blocks", str(args.blocks),
               "--device", args.device, "--scratch", str(args.scratch), "--result", str(result_file)]
    command += [f"--painter-set={item}" for item in args.painter_set]
    print(f"\n== {side}: crop {args.crop}px, {args.channels} channels, {args.blocks} blocks, {args.steps} steps "
          f"({warmup_steps(args.steps)} warm-up), batch 1, {args.device}", flush=True)
    if subprocess.run(command, cwd=REPO).returncode != 0:
        raise SystemExit(f"cyclegan_throughput: the {side} side failed (see above)")
    result = json.loads(result_file.read_text())
    print(f"== {side}: {result['img_per_s']:.2f} img/s ({result['timed_images']} images in "
          f"{result['seconds']:.2f} s over {result['timed_steps']} steps)", flush=True)
    return result


def link_data(source: Path, target: Path) -> None:
    """The images both sides read: all paintings and the first PHOTOS photos, linked file by file."""
    for folder, limit in (("monet_jpg", None), ("photo_jpg", PHOTOS)):
        files = sorted(p for p in (source / folder).iterdir() if p.is_file())[:limit]
        if not files:
            raise SystemExit(f"no images in {source / folder}")
        (target / folder).mkdir(parents=True)
        for path in files:
            (target / folder / path.name).symlink_to(path)


def check_painter_config(args) -> None:
    """Fail before any work when painter would refuse its config (a bad --painter-set, say)."""
    for item in args.painter_set:
        if item.partition("=")[0].strip() in BENCH_KEYS:
            raise SystemExit(f"--painter-set {item}: the benchmark sets this key itself (use the matching flag)")
    try:
        painter_config(args)
    except PainterError as exc:
        raise SystemExit(f"painter refuses the benchmark's config: {exc}") from None


def case_key(case: dict) -> tuple:
    return (case["device"], case["crop"], case["channels"], case["blocks"])


def print_table(cases: list[dict]) -> None:
    def mfu(value):
        return "-" if value is None else f"{100 * value:.1f}%"

    header = ("device", "crop", "ch", "blocks", "steps", "painter img/s", "reference img/s", "painter/reference",
              "painter MFU", "reference MFU")
    rows = [(c["device"], str(c["crop"]), str(c["channels"]), str(c["blocks"]), str(c["steps"]),
             f"{c['painter_img_per_s']:.2f}", f"{c['reference_img_per_s']:.2f}", f"{c['ratio']:.2f}x",
             mfu(c["painter_mfu"]), mfu(c["reference_mfu"])) for c in cases]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths))))


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description="painter's CycleGAN training throughput against the reference implementation's loop, "
                    "on the same networks, images, batch size (1) and device.")
    parser.add_argument("--steps", type=int, help="training steps per side (default: 30 on CPU, 300 on GPU)")
    parser.add_argument("--crop", type=int, help="training crop in pixels, a multiple of 4 from 32 to 256 "
                                                 "(default: 128 on CPU, 256 on GPU)")
    parser.add_argument("--channels", type=int, help="generator and discriminator width, ngf = ndf "
                                                     "(default: 32 on CPU, 64 on GPU)")
    parser.add_argument("--blocks", type=int, help="residual blocks per generator (default: 6 on CPU, 9 on GPU)")
    add_common_arguments(parser, "monet_jpg/ and photo_jpg/", DEFAULT_OUT)
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.side:  # child process: measure one side, hand the numbers back through a file
        result = (painter_side if args.side == "painter" else reference_side)(args)
        args.result.write_text(json.dumps(result))
        return

    args.data = args.data.resolve()
    if not (args.data / "monet_jpg").is_dir() or not (args.data / "photo_jpg").is_dir():
        raise SystemExit(f"no monet_jpg/ and photo_jpg/ in {args.data}; pass --data FOLDER")
    device = "cuda" if args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available()) else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda, but CUDA is not available here")
    args.device = device
    for name, default in DEFAULTS[device].items():
        if getattr(args, name) is None:
            setattr(args, name, default)
    if args.crop % 4 or not 32 <= args.crop <= 256:
        raise SystemExit("--crop must be a multiple of 4 from 32 to 256")
    if args.steps < 2:
        raise SystemExit("--steps must be at least 2: one warm-up step and one timed step")
    device_name = torch.cuda.get_device_name(0) if device == "cuda" else "cpu"
    previous_cases = read_cases(args.out)
    machine = machine_info(device_name)
    device_name = device_label(device_name)

    with tempfile.TemporaryDirectory(prefix="painter-bench-") as tmp:
        args.scratch = Path(tmp)
        check_painter_config(args)
        link_data(args.data, args.scratch / "data")
        print("\n== painter's data (untimed)", flush=True)
        painter_data(args)
        painter = run_side("painter", args)
        reference = run_side("reference", args)

    flops = reference["flops_per_step"]
    peak = peak_tflops(device_name) if device == "cuda" else None
    if device != "cuda":
        mfu_note = "not computed on a CPU"
    elif peak is None:
        mfu_note = f"no peak known for {device_name!r}: add it to PEAK_TFLOPS"
    else:
        mfu_note = f"against {peak:g} TFLOPS (dense bf16 peak; fp16 on a T4), both sides"

    def mfu(img_per_s: float) -> float | None:  # batch 1: steps per second = images per second
        return None if peak is None else round(flops * img_per_s / (peak * 1e12), 4)

    case = {
        "device": device_name, "crop": args.crop, "channels": args.channels, "blocks": args.blocks,
        "steps": args.steps, "warmup_steps": warmup_steps(args.steps),
        "painter_img_per_s": round(painter["img_per_s"], 2),
        "reference_img_per_s": round(reference["img_per_s"], 2),
        "ratio": round(painter["img_per_s"] / reference["img_per_s"], 3),
        "painter_timing": painter["timing"],
        "painter_precision": painter["precision"], "reference_precision": "float32",
        "cpu_native_bf16": cpu_has_native_bf16(),
        "flops_per_step": flops, "peak_tflops": peak,
        "painter_mfu": mfu(painter["img_per_s"]), "reference_mfu": mfu(reference["img_per_s"]),
        "mfu_note": mfu_note,
        "photos": reference["photos"], "paintings": reference["paintings"],
        "reference_load_size": reference_load_size(args.crop), "reference_workers": REFERENCE_WORKERS,
        "reference_print_freq": REFERENCE_PRINT_FREQ,
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine,  # cases from other machines keep theirs after a merge
        "painter_set": args.painter_set,
        "painter_config": painter["painter_config"],
    }
    merged = sorted([c for c in previous_cases if case_key(c) != case_key(case)] + [case], key=case_key)
    write_json_atomic(args.out, {
        "benchmark": "cyclegan_throughput",
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine,
        "cases": merged,
    })
    print(f"\ncyclegan_throughput: painter ({painter['precision']}) vs the reference's loop (float32), batch 1; "
          f"ratio > 1 means painter is faster; MFU {mfu_note}; {flops / 1e9:.1f} GFLOP per step")
    print_table([case])
    print(f"results: {args.out}")


if __name__ == "__main__":
    main()
