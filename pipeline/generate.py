"""generate: write 256x256 RGB JPEGs from the trained (EMA) generator into <run>/images/.

What image i is made from is the architecture's business (pipeline/archs/): noise vector i of one
seeded stream for the from-noise family; for a translation architecture, photo i of the 256 px
photo shards in their fixed order (generate.count = 0: one image per photo; fewer: a seeded subset;
more: the photos mirrored, then again, fill the rest).

Fast and safe to interrupt:
- batches run on the device in the same mixed precision as training, through a copy of the
  generator with its batch norms folded into the convolutions and in channels-last layout;
- JPEGs are encoded on the GPU (torchvision/nvJPEG) when there is one, else by a pool of CPU
  threads (torchvision's encoder releases the GIL), and written by the same pool while the next
  batch is generated;
- every file is written atomically, so a killed run leaves only complete images, and running the
  same command again writes only the missing ones;
- image i comes from input i, so the set does not depend on the batch size, on resuming, or on
  which images were already there. (JPEG bytes from the GPU and CPU encoders differ slightly; on
  one device the output is bit-identical.)
"""

from __future__ import annotations

import copy
import os
import signal
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import torch
from torch import nn
from torch.nn.utils import parametrize
from torchvision.io import encode_jpeg

from . import archs, prepare
from .archs.dcgan import NoiseInputs
from .artifacts import clear_folder, fingerprint, read_json, require_stamp, run_stage, write_json_atomic
from .config import Config
from .devices import autocast_dtype, generator_batch, resolve_device
from .errors import Stopped
from .images import COMPETITION_SIZE, to_uint8_256
from .layout import Workdir
from .progress import progress_bar

VERSION = 2
PROGRESS_NAME = "_progress.json"  # which inputs the images already in the folder were made from
WORKERS = min(8, os.cpu_count() or 1)
MAX_PENDING_BATCHES = 3  # bounds memory while encoding and writing lag behind the generator


def image_name(index: int) -> str:
    return f"{index:05d}.jpg"


def load_generator(path: Path, device: torch.device) -> tuple[torch.nn.Module, dict]:
    """The generator saved in generator.pt or best.pt, in eval mode on `device`, and the file's description."""
    saved = torch.load(path, map_location="cpu", weights_only=True)
    generator = archs.get(saved["arch"]).load_generator(saved)
    return generator.to(device).eval(), {k: v for k, v in saved.items() if k != "state_dict"}


def for_inference(generator: torch.nn.Module) -> torch.nn.Module:
    """A copy of `generator` (in eval mode) that makes the same images faster: each batch norm folded
    into the convolution before it, and the channels-last layout, which oneDNN's CPU convolutions
    and CUDA's tensor cores prefer (DCGAN at 64 px: 1.5x faster on a 2-core CPU in fp32). Outputs
    differ by float rounding only: DCGAN < 2e-7, a trained FastGAN < 2e-5 (one 8-bit level in 0.007%
    of its pixel values)."""
    generator = copy.deepcopy(generator).eval()
    for sequence in [m for m in generator.modules() if isinstance(m, nn.Sequential)]:
        for index in range(len(sequence) - 1):
            conv, norm = sequence[index], sequence[index + 1]
            if _foldable(conv, norm):
                # y = (conv(x) - mean) / sqrt(var + eps) * gamma + beta, per output channel
                scale = norm.weight / torch.sqrt(norm.running_var + norm.eps)
                out_axis = 1 if isinstance(conv, nn.ConvTranspose2d) else 0
                shape = [1] * conv.weight.dim()
                shape[out_axis] = -1
                conv.weight = nn.Parameter(conv.weight.detach() * scale.reshape(shape))
                bias = conv.bias.detach() if conv.bias is not None else torch.zeros_like(norm.running_mean)
                conv.bias = nn.Parameter(((bias - norm.running_mean) * scale + norm.bias).detach())
                sequence[index + 1] = nn.Identity()
    return generator.to(memory_format=torch.channels_last)


def _foldable(conv: nn.Module, norm: nn.Module) -> bool:
    return (type(conv) in (nn.Conv2d, nn.ConvTranspose2d) and conv.groups == 1 and not parametrize.is_parametrized(conv)
            and not hasattr(conv, "weight_orig")  # spectral norm recomputes the weight each call
            and type(norm) is nn.BatchNorm2d and norm.affine and norm.running_var is not None)


def encode_on_gpu(batch: torch.Tensor, quality: int) -> list[bytes] | None:
    """nvJPEG through torchvision; None when this torchvision/GPU cannot (the CPU pool takes over)."""
    try:
        encoded = encode_jpeg(list(batch), quality=quality)
    except (RuntimeError, NotImplementedError):
        return None
    return [data.cpu().numpy().tobytes() for data in encoded]


def write_file(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)  # a killed run never leaves a truncated .jpg


def write_images(generator: torch.nn.Module, out: Path, count: int, seed: int, batch_size: int,
                 jpeg_quality: int, device: torch.device, amp: bool = True, log=print, inputs=None) -> int:
    """Write the images of indices 0..count-1 that are not in `out` yet; returns how many were written.

    Image i is generator(inputs.batch([i])); by default inputs are noise vectors from one seeded stream."""
    inputs = inputs if inputs is not None else NoiseInputs(count, generator.latent_dim, seed)
    for leftover in out.glob("*.tmp"):
        leftover.unlink()
    todo = [i for i in range(count) if not (out / image_name(i)).exists()]
    if len(todo) < count:
        log(f"generate: resuming: {count - len(todo)} of {count} images are already written")
    dtype = autocast_dtype(device) if amp else None
    gpu_encoder = device.type == "cuda"
    batch_size = generator_batch(batch_size, device)
    generator = for_inference(generator)

    def encode_and_write(index: int, pixels: torch.Tensor) -> None:
        write_file(out / image_name(index), encode_jpeg(pixels, quality=jpeg_quality).numpy().tobytes())

    pending: deque[list[Future]] = deque()
    with ThreadPoolExecutor(max_workers=WORKERS) as pool, \
            progress_bar(total=count, initial=count - len(todo), desc="generate", unit="img") as bar:
        def finish_oldest() -> None:
            for future in pending.popleft():
                future.result()  # re-raises a failed write (a full disk, say) here
                bar.update(1)

        done = 0
        while done < len(todo):
            indices = todo[done:done + batch_size]
            try:
                with torch.inference_mode(), torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
                    batch = to_uint8_256(generator(inputs.batch(indices, device)))
            except torch.OutOfMemoryError:
                # A translation generator at 256 px holds tens of MB per image: on a small GPU (a T4) a
                # batch may not fit. Halve it rather than lose a run that has trained for hours.
                if batch_size == 1:
                    raise
                batch_size = max(1, batch_size // 2)
                if device.type == "cuda":
                    torch.cuda.empty_cache()
                log(f"generate: out of memory; going on with {batch_size} images at a time "
                    f"(--set generate.batch_size={batch_size} starts there)")
                continue
            done += len(indices)
            encoded = encode_on_gpu(batch, jpeg_quality) if gpu_encoder else None
            if gpu_encoder and encoded is None:
                log("generate: this torchvision cannot encode JPEGs on the GPU; encoding on the CPU")
                gpu_encoder = False
            if encoded is not None:
                pending.append([pool.submit(write_file, out / image_name(i), data)
                                for i, data in zip(indices, encoded)])
            else:
                batch = batch.cpu()
                pending.append([pool.submit(encode_and_write, i, pixels) for i, pixels in zip(indices, batch)])
            while len(pending) > MAX_PENDING_BATCHES:
                finish_oldest()
        while pending:
            finish_oldest()
    return len(todo)


def photo_shards(cfg: Config, wd: Workdir) -> Path:
    """The 256 px photos a translation architecture turns into the submission."""
    return prepare.shards_dir(cfg, wd, COMPETITION_SIZE, "photos")


def run(cfg: Config, wd: Workdir, *, force: bool = False, log=print) -> dict:
    folder = wd.run_folder(cfg.run.name)
    train_stamp = require_stamp(folder.train, "trained generator", "painter train")
    inputs = {"version": VERSION, "generate": cfg.section("generate"),
              "train": {"fingerprint": train_stamp["fingerprint"]}}
    translates = archs.get(cfg.model.arch).consumes == "photos"
    if translates:
        inputs["photos"] = {"fingerprint": require_stamp(photo_shards(cfg, wd), "photo shards",
                                                         "painter prepare")["fingerprint"]}
    gc = cfg.generate

    def build(out: Path) -> dict:
        # Works in place so that an interrupted run resumes; images made from other inputs go first.
        progress = read_json(out / PROGRESS_NAME)
        wanted = fingerprint(inputs)
        if force or progress is None or progress.get("fingerprint") != wanted:
            clear_folder(out)
            write_json_atomic(out / PROGRESS_NAME, {"fingerprint": wanted})
        device = resolve_device(cfg.run.device)
        best_wanted = gc.checkpoint == "best" and folder.best_generator.is_file()
        source = folder.best_generator if best_wanted else folder.generator
        best = read_json(folder.best_record) if best_wanted else None
        log(f"generate: from {source.name}" + (f" (step {best['step']}, {best['metric']} {best['value']})"
                                              if best else ""))
        generator, saved = load_generator(source, device)
        photos = prepare.load_shards(photo_shards(cfg, wd), device) if translates else None
        count = gc.count or len(photos)
        sources = archs.get(saved["arch"]).inputs(count, gc.seed, saved["spec"], photos=photos)
        for note in sources.notes():
            log(f"generate: {note}")
        try:
            written = write_images(generator, out, count, gc.seed, gc.batch_size, gc.jpeg_quality, device,
                                   gc.amp, log, inputs=sources)
        except KeyboardInterrupt:  # Ctrl-C: every image written so far is complete (renamed into place)
            have = len(list(out.glob("*.jpg")))
            raise Stopped(f"generate: stopped by SIGINT with {have} of {count} images written. Run the same "
                          "command to resume.", signal.SIGINT) from None
        (out / PROGRESS_NAME).unlink()
        return {"count": count, "size": COMPETITION_SIZE, "generator": source.name, "written_this_run": written,
                "device": str(device), "made_from": sources.notes() or ["noise"]}

    return run_stage("generate", folder.images, inputs, build, force=force, in_place=True, log=log)
