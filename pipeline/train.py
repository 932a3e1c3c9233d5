"""train: fit a GAN on the prepared shards; writes <run>/train/ (generator, samples, metrics, plots).

The uint8 shards are loaded onto the training device once and batches are drawn and augmented
there: no DataLoader, no per-step host-to-device copies. Batch indices and noise come from a
seeded generator on the training device, so a config draws the same batches on every run.

Nothing is lost when a run stops: the whole training state (networks, EMA, optimisers, loss
scalers, every RNG stream, the step) is checkpointed atomically every `train.checkpoint_every`
generator steps and on SIGTERM/SIGINT, and `painter train` with the same config resumes from it.
A NaN or inf loss stops the run before it can overwrite the last good checkpoint.

Under `torchrun --nproc_per_node=K` each process trains one replica with DistributedDataParallel
(nccl on GPUs, gloo on CPUs) on its own batches; only rank 0 writes files.
"""

from __future__ import annotations

import copy
import csv
import os
import signal
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from . import prepare
from .artifacts import (Workdir, clear_folder, fingerprint, read_stamp, require_stamp, run_stage, write_json_atomic,
                        write_torch_atomic)
from .augment import diff_augment, parse_policy, random_hflip
from .config import Config
from .errors import PainterError
from .images import save_grid
from .losses import discriminator_loss, generator_loss, gradient_penalty
from .models import build_discriminator, build_generator, recalibrate_batchnorm
from .plots import plot_losses

VERSION = 3
METRICS_FIELDS = ["step", "loss_d", "loss_g", "gp", "w_estimate", "d_real", "d_fake", "img_per_s", "seconds",
                  "swd", "fid", "kid"]  # the last three on evaluation steps only
GRID_SIZE = 64
WARMUP_CRITIC_STEPS = 100  # WGAN (Arjovsky et al. 2017): for the first 25 and every 500th generator step


class TrainingStopped(PainterError):
    """Stopped by a signal after saving a checkpoint; the exit code says which signal."""

    def __init__(self, message: str, signum: int):
        super().__init__(message)
        self.exit_code = 128 + signum


@dataclass
class Process:
    rank: int = 0
    world: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise PainterError(f"run.device = {name!r} but CUDA is not available here; use --set run.device=cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise PainterError(f"run.device = {name!r} is not a device; use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", local_rank)
    return device


def start_process_group(device_name: str) -> tuple[Process, torch.device]:
    """Join torchrun's process group when launched by it; a plain run is one process."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = resolve_device(device_name, local_rank)
    if world == 1:
        return Process(), device
    if not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return Process(dist.get_rank(), dist.get_world_size()), device


def cpu_has_native_bf16() -> bool:
    """AVX512-BF16 or AMX: there bf16 autocast trains ~1.8x faster than fp32 (measured, AMD EPYC)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def autocast_dtype(device: torch.device) -> torch.dtype | None:
    """Mixed precision for `device`: bf16 on GPUs that have it and on bf16-capable CPUs, fp16 on
    older GPUs (Kaggle's T4), None (fp32) on other CPUs."""
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16 if cpu_has_native_bf16() else None


def train_dir(cfg: Config, wd: Workdir) -> Path:
    return wd.run(cfg.run.name) / "train"


@contextmanager
def _stop_on_signals():
    """Turn SIGTERM/SIGINT into a flag the loop checks, so it can checkpoint before stopping."""
    caught: dict[str, int | None] = {"signal": None}
    if threading.current_thread() is not threading.main_thread():
        yield caught
        return

    def handler(signum, frame):
        caught["signal"] = signum

    previous = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield caught
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def critic_steps(step: int, n_critic: int, warmup: bool) -> int:
    """Critic steps for generator step `step` (0-based); counted in generator steps, never epochs."""
    if warmup and (step < 25 or step % 500 == 0):
        return WARMUP_CRITIC_STEPS
    return n_critic


class Trainer:
    """Networks, optimisers and RNG streams of one run; state_dict() is the whole checkpoint."""

    def __init__(self, cfg: Config, data: torch.Tensor, device: torch.device, process: Process):
        tc, mc = cfg.train, cfg.model
        self.cfg, self.tc, self.arch, self.data, self.device = cfg, tc, mc.arch, data, device
        self.resolution = data.shape[-1]
        cuda = device.type == "cuda"
        self.memory_format = torch.channels_last if cuda and tc.channels_last else torch.contiguous_format
        torch.manual_seed(tc.seed + process.rank)  # augmentation RNG; each rank its own
        self.sampler = torch.Generator(device=device).manual_seed(tc.seed + 7919 * process.rank)
        self.fixed_noise = torch.randn(GRID_SIZE, mc.latent_dim, generator=torch.Generator().manual_seed(tc.seed + 1))

        self.g = build_generator(mc.arch, self.resolution, mc.latent_dim, mc.g_channels)
        self.d = build_discriminator(mc.arch, self.resolution, mc.d_channels)
        self.g.to(device, memory_format=self.memory_format)
        self.d.to(device, memory_format=self.memory_format)
        self.ema = copy.deepcopy(self.g).eval().requires_grad_(False) if tc.ema_decay > 0 else None
        self.opt_g, self.opt_d = self._optimizer(self.g, tc.lr_g), self._optimizer(self.d, tc.lr_d)

        # bf16 needs no loss scaling; fp16 (e.g. Kaggle's T4) does. CPUs without native bf16 stay in fp32.
        self.amp_dtype = autocast_dtype(device) if tc.amp else None
        scaling = self.amp_dtype == torch.float16
        self.scaler_g = torch.amp.GradScaler("cuda", enabled=scaling)
        self.scaler_d = torch.amp.GradScaler("cuda", enabled=scaling)

        self.g_run: torch.nn.Module = self.g
        self.d_run: torch.nn.Module = self.d
        if process.world > 1:
            ids = [device.index] if cuda else None
            self.g_run = DistributedDataParallel(self.g, device_ids=ids)
            self.d_run = DistributedDataParallel(self.d, device_ids=ids)
        if tc.compile:
            self.g_run = torch.compile(self.g_run)
            if tc.gp_weight == 0:  # compiled graphs do not support the penalty's double backward
                self.d_run = torch.compile(self.d_run)
        self.policy = parse_policy(tc.diffaugment)

    def _optimizer(self, net: torch.nn.Module, lr: float) -> torch.optim.Optimizer:
        if self.tc.optimizer == "rmsprop":
            return torch.optim.RMSprop(net.parameters(), lr=lr)
        return torch.optim.Adam(net.parameters(), lr=lr, betas=(self.tc.beta1, self.tc.beta2))

    def _autocast(self):
        return torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.amp_dtype is not None)

    def real_batch(self) -> torch.Tensor:
        idx = torch.randint(self.data.shape[0], (self.tc.batch_size,), generator=self.sampler, device=self.device)
        real = self.data[idx].float().div_(127.5).sub_(1.0)
        real = real.contiguous(memory_format=self.memory_format)
        return random_hflip(real) if self.tc.hflip else real

    def noise(self) -> torch.Tensor:
        return torch.randn(self.tc.batch_size, self.g.latent_dim, generator=self.sampler, device=self.device)

    def critic_steps(self, step: int) -> int:
        return critic_steps(step, self.tc.n_critic, self.tc.critic_warmup)

    def train_step(self, step: int) -> dict[str, torch.Tensor]:
        """One generator step and its critic steps; returns device tensors (no host sync)."""
        n_critic = self.critic_steps(step)
        for i in range(n_critic):
            last = i == n_critic - 1
            real = diff_augment(self.real_batch(), self.policy)
            with torch.set_grad_enabled(last), self._autocast():
                fake = self.g_run(self.noise())  # the last one is reused, with its graph, by the generator step
            with self._autocast():
                d_real = self.d_run(real)
                d_fake = self.d_run(diff_augment(fake.detach(), self.policy))
            loss_d = discriminator_loss(self.arch, d_real, d_fake)
            gp = torch.zeros((), device=self.device)
            if self.tc.gp_weight > 0:
                gp = gradient_penalty(self.d_run, real, diff_augment(fake.detach(), self.policy))
                loss_d = loss_d + self.tc.gp_weight * gp
            self.opt_d.zero_grad(set_to_none=True)
            self.scaler_d.scale(loss_d).backward()
            self.scaler_d.step(self.opt_d)
            self.scaler_d.update()
            if self.tc.clip > 0:
                with torch.no_grad():
                    for p in self.d.parameters():
                        p.clamp_(-self.tc.clip, self.tc.clip)

        with self._autocast():
            loss_g = generator_loss(self.arch, self.d_run(diff_augment(fake, self.policy)))
        self.opt_g.zero_grad(set_to_none=True)
        self.scaler_g.scale(loss_g).backward()
        self.scaler_g.step(self.opt_g)
        self.scaler_g.update()
        self.update_ema(step)
        d_real, d_fake = d_real.float().mean().detach(), d_fake.float().mean().detach()
        return {"loss_d": loss_d.detach(), "loss_g": loss_g.detach(), "gp": gp.detach(),
                "d_real": d_real, "d_fake": d_fake, "images": n_critic * self.tc.batch_size}

    @torch.no_grad()
    def update_ema(self, step: int) -> None:
        if self.ema is None:
            return
        decay = min(self.tc.ema_decay, (1 + step) / (10 + step))  # short runs: don't stay near init
        torch._foreach_lerp_(list(self.ema.parameters()), list(self.g.parameters()), 1 - decay)
        for ema_buffer, buffer in zip(self.ema.buffers(), self.g.buffers()):
            ema_buffer.copy_(buffer)  # batch-norm statistics follow the live generator

    @property
    def sampling_generator(self) -> torch.nn.Module:
        return self.ema if self.ema is not None else self.g

    @torch.no_grad()
    def samples(self) -> torch.Tensor:
        g = self.sampling_generator
        was_training = g.training
        g.eval()
        images = g(self.fixed_noise.to(self.device))
        g.train(was_training)
        return images

    def state_dict(self) -> dict:
        state = {"g": self.g.state_dict(), "d": self.d.state_dict(),
                 "opt_g": self.opt_g.state_dict(), "opt_d": self.opt_d.state_dict(),
                 "scaler_g": self.scaler_g.state_dict(), "scaler_d": self.scaler_d.state_dict(),
                 "sampler": self.sampler.get_state(), "torch_rng": torch.get_rng_state()}
        if self.ema is not None:
            state["ema"] = self.ema.state_dict()
        if self.device.type == "cuda":
            state["cuda_rng"] = torch.cuda.get_rng_state(self.device)
        return state

    def load_state_dict(self, state: dict) -> None:
        self.g.load_state_dict(state["g"])
        self.d.load_state_dict(state["d"])
        self.opt_g.load_state_dict(state["opt_g"])
        self.opt_d.load_state_dict(state["opt_d"])
        self.scaler_g.load_state_dict(state["scaler_g"])
        self.scaler_d.load_state_dict(state["scaler_d"])
        self.sampler.set_state(state["sampler"])
        torch.set_rng_state(state["torch_rng"])
        if self.ema is not None:
            self.ema.load_state_dict(state["ema"])
        if self.device.type == "cuda" and "cuda_rng" in state:
            torch.cuda.set_rng_state(state["cuda_rng"], self.device)


def _metrics_rows_until(path: Path, step: int) -> list[dict]:
    if not path.exists():
        return []
    with open(path, newline="") as fh:
        return [row for row in csv.DictReader(fh) if int(row["step"]) <= step]


def _any_rank(flag: bool, process: Process, device: torch.device) -> bool:
    if process.world == 1:
        return flag
    value = torch.tensor([int(flag)], device=device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item())


def fit(cfg: Config, out: Path, shards: Path, run_fingerprint: str, *, fresh: bool, log=print) -> dict:
    process, device = start_process_group(cfg.run.device)
    try:
        return _fit(cfg, out, shards, run_fingerprint, process, device, fresh=fresh, log=log)
    finally:
        # Left to interpreter shutdown, gloo's worker threads can abort the process (SIGABRT).
        if process.world > 1 and dist.is_initialized():
            dist.destroy_process_group()


def _fit(cfg: Config, out: Path, shards: Path, run_fingerprint: str, process: Process, device: torch.device,
         *, fresh: bool, log) -> dict:
    tc = cfg.train
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed shapes: let cuDNN pick the fastest kernels
    trainer = Trainer(cfg, prepare.load_shards(shards, device), device, process)

    checkpoint_path = out / "checkpoint.pt"
    if process.world > 1:
        dist.barrier()  # every rank reads the checkpoint before rank 0 may clear the folder
    checkpoint = torch.load(checkpoint_path, map_location="cpu", weights_only=True) \
        if checkpoint_path.exists() else None
    start_step, seconds, best = 0, 0.0, None
    if checkpoint is not None and checkpoint["fingerprint"] == run_fingerprint and not fresh:
        trainer.load_state_dict(checkpoint["trainer"])
        start_step, seconds, best = checkpoint["step"], checkpoint["seconds"], checkpoint.get("best")
        log(f"train: resuming from step {start_step} of {tc.steps}")
    elif process.main:
        clear_folder(out)  # another config's files must not mix with this run's
    if process.world > 1:
        dist.barrier()

    metrics_path = out / "metrics.csv"
    if process.main:
        (out / "samples").mkdir(exist_ok=True)
        (out / "config.toml").write_text(cfg.to_toml())
        rows = _metrics_rows_until(metrics_path, start_step)
        with open(metrics_path, "w", newline="") as fh:
            csv.DictWriter(fh, METRICS_FIELDS).writeheader()
            csv.DictWriter(fh, METRICS_FIELDS).writerows(rows)

    def save_checkpoint(step: int) -> None:
        if process.main:
            write_torch_atomic(checkpoint_path, {"fingerprint": run_fingerprint, "step": step, "seconds": seconds,
                                                 "trainer": trainer.state_dict(), "best": best})

    evaluator = _evaluator(cfg, trainer, log) if tc.eval_every and process.main else None

    def evaluate(step: int) -> dict:
        """Scores of the EMA generator now; the best one so far is saved as best.pt (main process)."""
        nonlocal best
        if evaluator is None:
            return {}
        scores, model = evaluator.evaluate(trainer.sampling_generator)
        value = scores[evaluator.metric]
        if best is None or value < best["value"]:
            best = {"step": step, "metric": evaluator.metric, "value": value}
            write_torch_atomic(out / "best.pt", _generator_file(cfg, trainer.resolution, model))
            write_json_atomic(out / "best.json", best)
        return scores

    diverged = torch.zeros((), dtype=torch.bool, device=device)
    last_checkpoint = start_step

    def check_finite(step: int) -> None:
        if _any_rank(bool(diverged.item()), process, device):
            kept = f"the checkpoint of step {last_checkpoint} is kept" if last_checkpoint else "no checkpoint was kept"
            raise PainterError(f"training diverged: a loss became NaN or inf by step {step}; {kept}. "
                               "Lower train.lr_g/lr_d, or try wgan-gp or sngan, then run again.")

    stats: dict = {}
    window_start, window_images = time.perf_counter(), 0
    bar = tqdm(range(start_step, tc.steps), initial=start_step, total=tc.steps, desc="train", unit="step",
               disable=not process.main)
    with _stop_on_signals() as caught, open(metrics_path, "a", newline="") if process.main else \
            open(os.devnull, "w") as metrics_file:
        writer = csv.DictWriter(metrics_file, METRICS_FIELDS)
        done = start_step
        for step in bar:
            t0 = time.perf_counter()
            stats = trainer.train_step(step)
            diverged |= ~torch.isfinite(stats["loss_d"] + stats["loss_g"])
            window_images += stats["images"] * process.world
            done = step + 1
            seconds += time.perf_counter() - t0
            # An equal wall-clock budget: every rank stops at the same logged step.
            out_of_time = bool(tc.max_minutes) and done % tc.log_every == 0 and \
                _any_rank(seconds >= tc.max_minutes * 60, process, device)
            last = done == tc.steps or out_of_time
            evaluate_now = tc.eval_every and (done % tc.eval_every == 0 or last)
            if done % tc.log_every == 0 or last or evaluate_now:
                check_finite(done)
                now = time.perf_counter()
                row = {"step": done, "img_per_s": round(window_images / (now - window_start), 1),
                       "seconds": round(seconds, 2),
                       **{k: round(stats[k].item(), 5) for k in ("loss_d", "loss_g", "d_real", "d_fake")}}
                if tc.gp_weight > 0:
                    row["gp"] = round(stats["gp"].item(), 5)
                if cfg.model.arch in ("wgan", "wgan-gp"):
                    row["w_estimate"] = round(row["d_real"] - row["d_fake"], 5)  # the critic's Wasserstein estimate
                if evaluate_now:
                    row.update(evaluate(done))
                writer.writerow(row)
                metrics_file.flush()
                bar.set_postfix(loss_d=row["loss_d"], loss_g=row["loss_g"], img_s=row["img_per_s"])
                window_start, window_images = now, 0
            if process.main and done % tc.sample_every == 0:
                save_grid(trainer.samples(), out / "samples" / f"step_{done:06d}.png")
            if out_of_time:
                log(f"train: {tc.max_minutes:g} min of training reached at step {done} of {tc.steps}")
                break
            if done % tc.checkpoint_every == 0 and done < tc.steps:
                check_finite(done)
                save_checkpoint(done)
                last_checkpoint = done
            # A lone process checks every step; ranks agree at each log step so none is left waiting.
            if (process.world == 1 or done % tc.log_every == 0) and \
                    _any_rank(caught["signal"] is not None, process, device) and done < tc.steps:
                check_finite(done)
                save_checkpoint(done)
                name = signal.Signals(caught["signal"] or signal.SIGTERM).name
                raise TrainingStopped(f"train: stopped by {name} at step {done} of {tc.steps}; checkpoint "
                                      "saved. Run the same command to resume.", caught["signal"] or signal.SIGTERM)
    bar.close()
    check_finite(done)
    save_checkpoint(done)

    summary = {"arch": cfg.model.arch, "resolution": trainer.resolution, "steps": done,
               "images": trainer.data.shape[0], "world_size": process.world,
               "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
               "precision": str(trainer.amp_dtype).replace("torch.", "") if trainer.amp_dtype else "float32",
               "seconds": round(seconds, 1),
               "final_loss_d": round(stats["loss_d"].item(), 4) if stats else None,
               "final_loss_g": round(stats["loss_g"].item(), 4) if stats else None}
    if process.world > 1:
        # DDP keeps replicas identical; check it rather than trust it.
        checksum = torch.stack([p.detach().double().sum() for p in trainer.g.parameters()]).sum().reshape(1)
        gathered = [torch.zeros_like(checksum) for _ in range(process.world)]
        dist.all_gather(gathered, checksum)
        summary["ranks_in_sync"] = all(torch.equal(gathered[0], other) for other in gathered)
    if not process.main:
        return summary

    # Generation runs in eval mode: give it exact batch-norm statistics of the final generator.
    final = trainer.sampling_generator
    recalibrate_batchnorm(final, cfg.model.latent_dim, seed=tc.seed)
    write_torch_atomic(out / "generator.pt", _generator_file(cfg, trainer.resolution, final))
    if best is not None:
        summary["best"] = best
    save_grid(trainer.samples(), out / "samples.png")
    plot_losses(metrics_path, out / "losses.png", title=f"{cfg.run.name}: {cfg.model.arch} {trainer.resolution}px")
    write_json_atomic(out / "summary.json", summary)
    return summary


def _generator_file(cfg: Config, resolution: int, generator: torch.nn.Module) -> dict:
    """What generator.pt and best.pt hold: enough to rebuild the generator without the config."""
    return {"arch": cfg.model.arch, "resolution": resolution, "latent_dim": cfg.model.latent_dim,
            "g_channels": cfg.model.g_channels, "ema": cfg.train.ema_decay > 0, "state_dict": generator.state_dict()}


def _evaluator(cfg: Config, trainer: Trainer, log):
    from .evaluate import Evaluator
    from .metrics.inception import find_weights

    try:
        weights = find_weights()
    except PainterError as exc:
        log(f"train: evaluating with SWD only: {exc}")
        weights = None
    if weights is not None and weights.path is None:
        weights = None  # a download in the middle of training is not worth the risk
    return Evaluator(trainer.data, cfg.model.latent_dim, cfg.train.eval_images, cfg.train.seed, weights)


def run(cfg: Config, wd: Workdir, *, force: bool = False, log=print) -> dict:
    shards = prepare.shards_dir(cfg, wd, cfg.data.resolution)
    shard_stamp = require_stamp(shards, "shards", "painter prepare")
    inputs = {"version": VERSION, "model": cfg.section("model"), "train": cfg.section("train"),
              "shards": {"fingerprint": shard_stamp["fingerprint"]}}
    run_fp = fingerprint(inputs)
    if int(os.environ.get("RANK", "0")) != 0:
        # torchrun's other ranks train alongside rank 0 but write nothing, stamp included.
        stamp = read_stamp(train_dir(cfg, wd))
        if stamp is not None and stamp["fingerprint"] == run_fp and not force:
            return stamp  # rank 0 skips too
        return {"summary": fit(cfg, train_dir(cfg, wd), shards, run_fp, fresh=force, log=lambda *_: None)}
    return run_stage("train", train_dir(cfg, wd), inputs,
                     lambda out: fit(cfg, out, shards, run_fp, fresh=force, log=log),
                     force=force, in_place=True, log=log)
