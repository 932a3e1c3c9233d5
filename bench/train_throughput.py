"""Training throughput: painter's `train` stage against the PyTorch DCGAN tutorial's training loop.

Both sides train the same generator and discriminator (built by painter's `pipeline.archs.dcgan`) on
the same 300 Monet JPEGs, at the same resolution, batch size, widths and number of generator
steps, on the same device. What differs is what each side does around the models:

- painter: decodes the paintings once (`prepare`, untimed), keeps them as uint8 on the device and
  draws batches there; measured through `pipeline.train.run` and its metrics.csv.
- reference: the tutorial's loop as written: an ImageFolder decoded and transformed by a
  DataLoader with 2 workers every epoch, one `.to(device)` per batch, `.item()` of the losses
  every iteration.

Each side runs in its own Python process, so neither inherits the other's global torch state
(thread pools, cuDNN flags, cached GPU memory). Results are merged into a JSON file keyed by
(device, resolution, batch), so CPU and GPU runs live side by side. See bench/README.md.

    python bench/train_throughput.py [--resolutions 64 256] [--steps-64 N] [--steps-256 N]
                                     [--batch 64] [--channels 64] [--out bench/results/train_throughput.json]
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # measure this checkout's pipeline, not some other installed copy

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
DEFAULT_OUT = REPO / "bench" / "results" / "train_throughput.json"
PAINTER_CONFIG = REPO / "configs" / "dcgan.toml"

LATENT_DIM = 100       # the tutorial's nz
TUTORIAL_WORKERS = 2   # the tutorial's `workers = 2`
TUTORIAL_LR, TUTORIAL_BETAS = 2e-4, (0.5, 0.999)
NEVER = 10 ** 9        # sample_every / checkpoint_every past the last step: the tutorial's loop saves nothing either

# Generator steps when no --steps-N flag is given. On a 2-core CPU a 256 px step with 64 channels
# takes about 30 s (and painter spends about 3 min after its loop re-estimating batch-norm
# statistics at 256 px), so CPU runs stay tiny; a GPU can afford enough steps for stable numbers.
DEFAULT_STEPS = {
    "cpu": {32: 20, 64: 20, 128: 6, 256: 2},
    "cuda": {32: 1000, 64: 1000, 128: 500, 256: 250},
}


def warmup_steps(steps: int) -> int:
    """Steps left out of the timing on both sides (first-call allocations, cuDNN set-up).

    It is also painter's `train.log_every`, so that a metrics.csv row ends exactly where the
    warm-up does and the timed steps are the same ones on both sides.
    """
    return max(1, min(10, steps // 4))


# ----------------------------------------------------------------------------------------------
# painter's side


# Keys the benchmark sets itself: they define the comparison, so --painter-set may not change them.
BENCH_KEYS = ("data.source", "data.resolution", "run.name", "run.device", "model.arch", "model.latent_dim",
              "model.g_channels", "model.d_channels", "train.steps", "train.batch_size", "train.log_every",
              "train.sample_every", "train.checkpoint_every")


def painter_overrides(args, resolution: int, steps: int, device: str) -> list[str]:
    # Only keys of painter's stable interface; everything else (learning rates, mixed precision,
    # EMA, augmentation...) stays as configs/dcgan.toml and painter's defaults say, since that is
    # what is being measured. --painter-set adds more, e.g. to switch such features off.
    values = [json.dumps(str(args.data)),  # a TOML string, whatever the path holds
              resolution, f"bench-{resolution}px", device, "dcgan", LATENT_DIM, args.channels, args.channels,
              steps, args.batch, warmup_steps(steps), NEVER, NEVER]
    return [f"{key}={value}" for key, value in zip(BENCH_KEYS, values)] + list(args.painter_set)


def painter_rate(metrics_csv: Path, warmup: int, steps: int, batch: int) -> dict:
    """Images per second over the steps after the warm-up, from painter's own metrics.csv.

    Why metrics.csv rather than a stopwatch around train.run: train.run also loads and verifies
    the shards, builds the models and, after the loop, re-estimates batch-norm statistics and
    draws sample grids (minutes at 256 px on a CPU). Those are one-off costs; the reference is
    not charged for its set-up either. Each row's img_per_s covers the wall-clock time since the
    previous row (the windows are back to back), so rows after the warm-up add up to the
    wall-clock time of exactly the steps the reference side times. We sum images and seconds
    rather than take a median of rows: a median would hide periodic costs, and the reference's
    total includes its own (worker start-up every epoch).
    """
    with open(metrics_csv, newline="") as fh:
        rows = [(int(row["step"]), float(row["img_per_s"])) for row in csv.DictReader(fh)]
    logged = [step for step, _ in rows]
    if not logged or warmup not in logged or logged[-1] != steps:
        raise SystemExit(f"{metrics_csv}: expected rows at step {warmup} (end of warm-up) and {steps} "
                         f"(last step), found steps {logged}; has the meaning of train.log_every changed?")
    if any(img_per_s <= 0 for _, img_per_s in rows):
        raise SystemExit(f"{metrics_csv}: img_per_s rounded to 0; too slow to measure this way")
    images = seconds = 0.0
    previous = warmup
    for step, img_per_s in rows:
        if step <= warmup:
            continue
        window_images = (step - previous) * batch
        images += window_images
        seconds += window_images / img_per_s
        previous = step
    return {"img_per_s": images / seconds, "timed_steps": steps - warmup,
            "timed_images": int(images), "seconds": seconds}


def painter_data(args, resolution: int, steps: int, device: str, scratch: Path) -> None:
    """painter's download and prepare stages, untimed and cached across resolutions (real runs pay
    them once). They run in the driver, so the training process starts as clean as the reference's
    and no threads or memory left by JPEG decoding weigh on it."""
    from pipeline import download, prepare
    from pipeline.config import load_config
    from pipeline.layout import Workdir

    cfg = load_config(PAINTER_CONFIG, painter_overrides(args, resolution, steps, device))
    wd = Workdir(scratch / "painter-workdir")
    download.run(cfg, wd)
    prepare.run(cfg, wd)


def painter_side(args) -> dict:
    from pipeline import train
    from pipeline.config import load_config
    from pipeline.layout import Workdir

    warmup = warmup_steps(args.steps)
    cfg = load_config(PAINTER_CONFIG, painter_overrides(args, args.resolution, args.steps, args.device))
    wd = Workdir(args.scratch / "painter-workdir")
    train.run(cfg, wd, force=True)
    folder = wd.run_folder(cfg.run.name)
    result = painter_rate(folder.metrics, warmup, args.steps, args.batch)
    # What painter actually ran with, so numbers stay interpretable when its defaults change.
    result["painter_config"] = {name: _as_dict(getattr(cfg, name, None)) for name in ("model", "train")}
    result["precision"] = json.loads(folder.train_summary.read_text())["precision"]
    return result


def _as_dict(section) -> dict | None:
    if dataclasses.is_dataclass(section):
        return dataclasses.asdict(section)
    return dict(vars(section)) if section is not None and hasattr(section, "__dict__") else None


# ----------------------------------------------------------------------------------------------
# the reference: the PyTorch DCGAN tutorial's loop (beginner/dcgan_faces_tutorial)


def reference_side(args) -> dict:
    import torch
    from torch import nn
    from torch.utils.data import DataLoader
    from torchvision import datasets, transforms

    from pipeline import archs
    from pipeline.archs.dcgan import DCGANDiscriminator, dcgan_init

    device = torch.device(args.device)
    warmup = warmup_steps(args.steps)
    torch.manual_seed(0)

    res = args.resolution
    dataset = datasets.ImageFolder(
        root=str(args.scratch / "imagefolder"),
        transform=transforms.Compose([
            transforms.Resize(res),
            transforms.CenterCrop(res),
            transforms.ToTensor(),
            transforms.Normalize((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
        ]))
    print(f"reference: {len(dataset)} images in ImageFolder (classes {dataset.classes})", flush=True)
    dataloader = DataLoader(dataset, batch_size=args.batch, shuffle=True, num_workers=TUTORIAL_WORKERS)

    # painter's own models (already DCGAN-initialised), so only the loop around them differs.
    # painter's D returns logits: BCEWithLogitsLoss is the tutorial's Sigmoid + BCELoss in one op.
    netG = archs.get("dcgan").build_generator(res, {"latent_dim": LATENT_DIM, "channels": args.channels}).to(device)
    netD = DCGANDiscriminator(res, args.channels, "batch")
    netD.apply(dcgan_init)
    netD = netD.to(device)
    criterion = nn.BCEWithLogitsLoss()
    optimizerD = torch.optim.Adam(netD.parameters(), lr=TUTORIAL_LR, betas=TUTORIAL_BETAS)
    optimizerG = torch.optim.Adam(netG.parameters(), lr=TUTORIAL_LR, betas=TUTORIAL_BETAS)
    real_label, fake_label = 1.0, 0.0
    G_losses, D_losses = [], []
    # Names below follow the tutorial's (netD, errD_real, D_x...) so the two read side by side.

    def sync():  # the clock must see finished GPU work, not queued work
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    iters, timed_images, started, ended = 0, 0, None, None
    while ended is None:  # epochs, until as many generator steps as painter's side
        for data in dataloader:
            # Discriminator: a real batch labelled 1, then a generated batch (detached) labelled 0.
            netD.zero_grad()
            real_cpu = data[0].to(device)
            b_size = real_cpu.size(0)
            label = torch.full((b_size,), real_label, dtype=torch.float, device=device)
            output = netD(real_cpu).view(-1)
            errD_real = criterion(output, label)
            errD_real.backward()
            D_x = output.sigmoid().mean().item()

            noise = torch.randn(b_size, LATENT_DIM, 1, 1, device=device)
            fake = netG(noise)
            label.fill_(fake_label)
            output = netD(fake.detach()).view(-1)
            errD_fake = criterion(output, label)
            errD_fake.backward()
            D_G_z1 = output.sigmoid().mean().item()
            errD = errD_real + errD_fake
            optimizerD.step()

            # Generator: the same generated batch, through the updated D, labelled 1.
            netG.zero_grad()
            label.fill_(real_label)
            output = netD(fake).view(-1)
            errG = criterion(output, label)
            errG.backward()
            D_G_z2 = output.sigmoid().mean().item()
            optimizerG.step()

            # The tutorial prints every 50 iterations and keeps both losses every iteration.
            if iters % 50 == 0:
                print(f"reference: [{iters}/{args.steps}] loss_D {errD.item():.4f} loss_G {errG.item():.4f} "
                      f"D(x) {D_x:.4f} D(G(z)) {D_G_z1:.4f} / {D_G_z2:.4f}", flush=True)
            G_losses.append(errG.item())
            D_losses.append(errD.item())

            iters += 1
            if iters == warmup:
                sync()
                started = time.perf_counter()
            elif iters > warmup:
                timed_images += b_size  # real images consumed: an epoch's last batch is smaller
            if iters == args.steps:
                sync()
                ended = time.perf_counter()  # before the loader's workers are shut down
                break
    seconds = ended - started
    return {"img_per_s": timed_images / seconds, "timed_steps": args.steps - warmup,
            "timed_images": timed_images, "seconds": seconds}


# ----------------------------------------------------------------------------------------------
# the driver


def run_side(side: str, args, resolution: int, steps: int, device: str, scratch: Path) -> dict:
    """Run one side in a fresh interpreter and return what it measured."""
    result_file = scratch / f"{side}-{resolution}px.json"
    command = [sys.executable, str(Path(__file__).resolve()), "--side", side,
               "--resolution", str(resolution), "--steps", str(steps), "--batch", str(args.batch),
               "--channels", str(args.channels), "--device", device, "--data", str(args.data),
               "--scratch", str(scratch), "--result", str(result_file)]
    command += [f"--painter-set={item}" for item in args.painter_set]
    print(f"\n== {side}: {resolution}px, {steps} steps ({warmup_steps(steps)} warm-up), batch {args.batch}, "
          f"{args.channels} channels, {device}", flush=True)
    if subprocess.run(command, cwd=REPO).returncode != 0:
        raise SystemExit(f"train_throughput: the {side} side failed at {resolution}px (see above)")
    result = json.loads(result_file.read_text())
    print(f"== {side}: {result['img_per_s']:.2f} img/s ({result['timed_images']} images in "
          f"{result['seconds']:.2f} s over {result['timed_steps']} steps)", flush=True)
    return result


def check_painter_config(args, steps: dict[int, int], device: str) -> None:
    """Fail before any training when painter would refuse its config (a bad --painter-set, say)."""
    from pipeline.config import load_config
    from pipeline.errors import PainterError

    for item in args.painter_set:
        if item.partition("=")[0].strip() in BENCH_KEYS:
            raise SystemExit(f"--painter-set {item}: the benchmark sets this key itself (use the matching flag)")
    try:
        for res, n in steps.items():
            load_config(PAINTER_CONFIG, painter_overrides(args, res, n, device))
    except PainterError as exc:
        raise SystemExit(f"painter refuses the benchmark's config: {exc}") from None


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


# The CPU features that decide how fast torch runs there: bf16 autocast is only fast with native bf16.
SPEED_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_bf16")


def device_label(device_name: str) -> str:
    """A case's device: the GPU's name, or the CPU with whether it has native bf16 (results differ)."""
    if device_name != "cpu":
        return device_name
    from pipeline.devices import cpu_has_native_bf16

    return "cpu, native bf16" if cpu_has_native_bf16() else "cpu, no native bf16"


def machine_info(device_name: str) -> dict:
    """The machine a result came from, for every benchmark's JSON."""
    import torch

    from pipeline.devices import cpu_has_native_bf16

    try:
        present = set(Path("/proc/cpuinfo").read_text().split())
    except OSError:
        present = set()
    return {"cpu": cpu_model(), "cores": os.cpu_count(), "native_bf16": cpu_has_native_bf16(),
            "cpu_flags": [flag for flag in SPEED_FLAGS if flag in present], "torch": torch.__version__,
            "device": device_name}


def read_cases(out: Path) -> list[dict]:
    """Cases already in the results file; checked before any training so a bad file costs nothing."""
    if not out.exists():
        return []
    try:
        cases = json.loads(out.read_text())["cases"]
        assert isinstance(cases, list)
        return cases
    except (json.JSONDecodeError, KeyError, TypeError, AssertionError):
        raise SystemExit(f"{out} exists but is not a results file of this benchmark; "
                         "move it away or choose another --out") from None


def case_key(case: dict) -> tuple:
    return (case["device"], case["resolution"], case["batch"])


def write_json_atomic(path: Path, obj) -> None:
    """Readers (and a run killed half-way) never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "w") as fh:
            fh.write(json.dumps(obj, indent=2) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def print_table(cases: list[dict]) -> None:
    header = ("device", "res", "batch", "steps", "painter img/s", "reference img/s", "painter/reference")
    rows = [(c["device"], str(c["resolution"]), str(c["batch"]), str(c["steps"]),
             f"{c['painter_img_per_s']:.2f}", f"{c['reference_img_per_s']:.2f}", f"{c['ratio']:.2f}x")
            for c in cases]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths))))


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description="painter's training throughput against the PyTorch DCGAN tutorial's loop, "
                    "on the same images, models, batch size and device.")
    parser.add_argument("--resolutions", type=int, nargs="+", default=[64, 256], choices=[32, 64, 128, 256],
                        metavar="RES", help="training resolutions in pixels (default: 64 256)")
    parser.add_argument("--steps-64", type=int, help="generator steps at 64 px (default: 20 on CPU, 1000 on GPU)")
    parser.add_argument("--steps-256", type=int, help="generator steps at 256 px (default: 2 on CPU, 250 on GPU)")
    parser.add_argument("--batch", type=int, default=64, help="batch size (default: 64)")
    parser.add_argument("--channels", type=int, default=64,
                        help="generator and discriminator width, the tutorial's ngf/ndf (default: 64)")
    add_common_arguments(parser, "monet_jpg/", DEFAULT_OUT)
    parser.add_argument("--resolution", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--steps", type=int, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def add_common_arguments(parser, data_holds: str, out: Path) -> None:
    """The options every painter-against-a-reference benchmark takes, and its child processes' own."""
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto",
                        help="auto: CUDA when available, else CPU (default)")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA,
                        help=f"folder holding {data_holds} (default: ../shared/data beside the repo)")
    parser.add_argument("--painter-set", action="append", default=[], metavar="KEY=VALUE",
                        help="extra painter config override, repeatable (e.g. train.amp=false to compare "
                             "like for like); keys the benchmark sets itself are refused")
    parser.add_argument("--out", type=Path, default=out,
                        help=f"results JSON, merged with what is there (default: bench/results/{out.name})")
    # Internal: one side, run in a child process by the driver.
    parser.add_argument("--side", choices=["painter", "reference"], help=argparse.SUPPRESS)
    parser.add_argument("--scratch", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--result", type=Path, help=argparse.SUPPRESS)


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.side:  # child process: measure one side, hand the numbers back through a file
        result = (painter_side if args.side == "painter" else reference_side)(args)
        args.result.write_text(json.dumps(result))
        return

    import torch

    monet = args.data.resolve() / "monet_jpg"
    if not monet.is_dir():
        raise SystemExit(f"no paintings at {monet}; pass --data FOLDER (a folder holding monet_jpg/)")
    args.data = args.data.resolve()
    device = "cuda" if args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available()) else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda, but CUDA is not available here")
    device_name = device_label(torch.cuda.get_device_name(0) if device == "cuda" else "cpu")
    flags = {64: args.steps_64, 256: args.steps_256}
    steps = {res: flags[res] if flags.get(res) is not None else DEFAULT_STEPS[device][res]
             for res in args.resolutions}
    if any(n < 2 for n in steps.values()):
        raise SystemExit("each resolution needs at least 2 steps: one warm-up step and one timed step")
    check_painter_config(args, steps, device)
    previous_cases = read_cases(args.out)
    machine = machine_info(device_name)

    cases = []
    with tempfile.TemporaryDirectory(prefix="painter-bench-") as tmp:
        scratch = Path(tmp)
        # ImageFolder wants root/<class>/*.jpg; a link to monet_jpg alone keeps photo_jpg out.
        (scratch / "imagefolder").mkdir()
        (scratch / "imagefolder" / "monet_jpg").symlink_to(monet, target_is_directory=True)
        for res in args.resolutions:
            print(f"\n== painter's data at {res}px (untimed)", flush=True)
            painter_data(args, res, steps[res], device, scratch)
            painter = run_side("painter", args, res, steps[res], device, scratch)
            reference = run_side("reference", args, res, steps[res], device, scratch)
            cases.append({
                "device": device_name, "resolution": res, "batch": args.batch, "steps": steps[res],
                "painter_img_per_s": round(painter["img_per_s"], 2),
                "reference_img_per_s": round(reference["img_per_s"], 2),
                "ratio": round(painter["img_per_s"] / reference["img_per_s"], 3),
                "painter_precision": painter["precision"], "reference_precision": "float32",
                "channels": args.channels, "latent_dim": LATENT_DIM, "warmup_steps": warmup_steps(steps[res]),
                "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                "machine": machine,  # cases from other machines keep theirs after a merge
                "painter_set": args.painter_set,
                "painter_config": painter.get("painter_config"),
            })

    new_keys = {case_key(c) for c in cases}
    merged = sorted([c for c in previous_cases if case_key(c) not in new_keys] + cases, key=case_key)
    write_json_atomic(args.out, {
        "benchmark": "train_throughput",
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine,
        "cases": merged,
    })
    print(f"\ntrain_throughput: painter vs the DCGAN tutorial's loop ({args.channels} channels); "
          f"ratio > 1 means painter is faster")
    print_table(cases)
    print(f"results: {args.out}")


if __name__ == "__main__":
    main()
