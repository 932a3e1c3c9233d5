"""train: fit a GAN on the prepared shards; writes <run>/train/ (generator, samples, metrics, plots).

The uint8 shards are loaded onto the training device once and batches are drawn there, so
no DataLoader sits between the data and the GPU. Batch indices and noise come from a seeded
CPU generator: the same config draws the same batches on any device. A checkpoint is written
atomically every `train.checkpoint_every` steps and a killed run resumes from it.
"""

from __future__ import annotations

import csv
import io
import shutil
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm import tqdm

from . import prepare
from .artifacts import Workdir, fingerprint, require_stamp, run_stage, write_bytes_atomic, write_json_atomic
from .config import Config
from .errors import PainterError
from .images import save_grid
from .models import build_discriminator, build_generator, recalibrate_batchnorm
from .plots import plot_losses

VERSION = 1
METRICS_FIELDS = ["step", "loss_d", "loss_g", "d_real", "d_fake", "img_per_s", "seconds"]
GRID_SIZE = 64


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise PainterError(f"run.device = {name!r} but CUDA is not available here; use --set run.device=cpu")
    try:
        return torch.device(name)
    except RuntimeError:
        raise PainterError(f"run.device = {name!r} is not a device; use auto, cpu, cuda or cuda:N") from None


def train_dir(cfg: Config, wd: Workdir) -> Path:
    return wd.run(cfg.run.name) / "train"


def _save_torch(obj, path: Path) -> None:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    write_bytes_atomic(path, buffer.getvalue())


def _clear(folder: Path) -> None:
    for path in folder.iterdir():
        shutil.rmtree(path) if path.is_dir() else path.unlink()


def _metrics_rows_until(path: Path, step: int) -> list[dict]:
    if not path.exists():
        return []
    with open(path, newline="") as fh:
        return [row for row in csv.DictReader(fh) if int(row["step"]) <= step]


def fit(cfg: Config, out: Path, shards: Path, run_fingerprint: str, *, fresh: bool, log=print) -> dict:
    device = resolve_device(cfg.run.device)
    tc, mc = cfg.train, cfg.model
    torch.manual_seed(tc.seed)
    data = prepare.load_shards(shards, device)
    n_images, resolution = data.shape[0], data.shape[-1]

    g = build_generator(mc.arch, resolution, mc.latent_dim, mc.g_channels).to(device)
    d = build_discriminator(mc.arch, resolution, mc.d_channels).to(device)
    opt_g = torch.optim.Adam(g.parameters(), lr=tc.lr_g, betas=(tc.beta1, tc.beta2))
    opt_d = torch.optim.Adam(d.parameters(), lr=tc.lr_d, betas=(tc.beta1, tc.beta2))
    sampler = torch.Generator().manual_seed(tc.seed)
    fixed_noise = torch.randn(GRID_SIZE, mc.latent_dim, generator=torch.Generator().manual_seed(tc.seed + 1))

    checkpoint_path = out / "checkpoint.pt"
    start_step, seconds = 0, 0.0
    checkpoint = torch.load(checkpoint_path, weights_only=True) if checkpoint_path.exists() else None
    if checkpoint is not None and checkpoint["fingerprint"] == run_fingerprint and not fresh:
        g.load_state_dict(checkpoint["g"])
        d.load_state_dict(checkpoint["d"])
        opt_g.load_state_dict(checkpoint["opt_g"])
        opt_d.load_state_dict(checkpoint["opt_d"])
        sampler.set_state(checkpoint["sampler"])
        torch.set_rng_state(checkpoint["torch_rng"])
        start_step, seconds = checkpoint["step"], checkpoint["seconds"]
        log(f"train: resuming from step {start_step} of {tc.steps}")
    else:
        _clear(out)  # another config's files must not mix with this run's
    (out / "samples").mkdir(exist_ok=True)
    (out / "config.toml").write_text(cfg.to_toml())

    metrics_path = out / "metrics.csv"
    rows = _metrics_rows_until(metrics_path, start_step)
    with open(metrics_path, "w", newline="") as fh:
        csv.DictWriter(fh, METRICS_FIELDS).writeheader()
        csv.DictWriter(fh, METRICS_FIELDS).writerows(rows)

    def save_checkpoint(step: int) -> None:
        _save_torch({"fingerprint": run_fingerprint, "step": step, "seconds": seconds,
                     "g": g.state_dict(), "d": d.state_dict(),
                     "opt_g": opt_g.state_dict(), "opt_d": opt_d.state_dict(),
                     "sampler": sampler.get_state(), "torch_rng": torch.get_rng_state()}, checkpoint_path)

    def save_samples(path: Path) -> None:
        g.eval()
        with torch.no_grad():
            save_grid(g(fixed_noise.to(device)), path)
        g.train()

    ones = torch.ones(tc.batch_size, device=device)
    zeros = torch.zeros(tc.batch_size, device=device)
    window_start, window_images = time.perf_counter(), 0
    bar = tqdm(range(start_step, tc.steps), initial=start_step, total=tc.steps, desc="train", unit="step")
    with open(metrics_path, "a", newline="") as metrics_file:
        writer = csv.DictWriter(metrics_file, METRICS_FIELDS)
        for step in bar:
            t0 = time.perf_counter()
            idx = torch.randint(n_images, (tc.batch_size,), generator=sampler)
            z = torch.randn(tc.batch_size, mc.latent_dim, generator=sampler)
            real = data[idx.to(device)].float().div_(127.5).sub_(1.0)
            fake = g(z.to(device))

            d_real, d_fake = d(real), d(fake.detach())
            loss_d = (F.binary_cross_entropy_with_logits(d_real, ones)
                      + F.binary_cross_entropy_with_logits(d_fake, zeros))
            opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            opt_d.step()

            loss_g = F.binary_cross_entropy_with_logits(d(fake), ones)
            opt_g.zero_grad(set_to_none=True)
            loss_g.backward()
            opt_g.step()

            window_images += tc.batch_size
            done = step + 1
            if done % tc.log_every == 0 or done == tc.steps:
                now = time.perf_counter()
                row = {"step": done, "loss_d": round(loss_d.item(), 5), "loss_g": round(loss_g.item(), 5),
                       "d_real": round(torch.sigmoid(d_real).mean().item(), 4),
                       "d_fake": round(torch.sigmoid(d_fake).mean().item(), 4),
                       "img_per_s": round(window_images / (now - window_start), 1),
                       "seconds": round(seconds + now - t0, 2)}
                writer.writerow(row)
                metrics_file.flush()
                bar.set_postfix(loss_d=row["loss_d"], loss_g=row["loss_g"], img_s=row["img_per_s"])
                window_start, window_images = now, 0
            seconds += time.perf_counter() - t0
            if done % tc.sample_every == 0:
                save_samples(out / "samples" / f"step_{done:06d}.png")
            if done % tc.checkpoint_every == 0 and done < tc.steps:
                save_checkpoint(done)
    bar.close()
    save_checkpoint(tc.steps)

    # Generation runs in eval mode: give it exact batch-norm statistics of the final generator.
    recalibrate_batchnorm(g, mc.latent_dim, seed=tc.seed)
    _save_torch({"arch": mc.arch, "resolution": resolution, "latent_dim": mc.latent_dim,
                 "g_channels": mc.g_channels, "state_dict": g.state_dict()}, out / "generator.pt")
    save_samples(out / "samples.png")
    plot_losses(metrics_path, out / "losses.png", title=f"{cfg.run.name}: {mc.arch} {resolution}px")
    summary = {"arch": mc.arch, "resolution": resolution, "steps": tc.steps, "images": n_images,
               "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
               "seconds": round(seconds, 1), "img_per_s": round(tc.steps * tc.batch_size / max(seconds, 1e-9), 1),
               "final_loss_d": round(loss_d.item(), 4) if tc.steps > start_step else None,
               "final_loss_g": round(loss_g.item(), 4) if tc.steps > start_step else None}
    write_json_atomic(out / "summary.json", summary)
    return summary


def run(cfg: Config, wd: Workdir, *, force: bool = False, log=print) -> dict:
    shards = prepare.shards_dir(cfg, wd, cfg.data.resolution)
    shard_stamp = require_stamp(shards, "shards", "painter prepare")
    inputs = {"version": VERSION, "model": cfg.section("model"), "train": cfg.section("train"),
              "shards": {"fingerprint": shard_stamp["fingerprint"]}}
    run_fp = fingerprint(inputs)
    return run_stage("train", train_dir(cfg, wd), inputs,
                     lambda out: fit(cfg, out, shards, run_fp, fresh=force, log=log),
                     force=force, in_place=True, log=log)
