"""train: fit the configured architecture on the prepared shards; writes <run>/train/ (generator,
samples, metrics, plots).

The architecture (pipeline/archs/) owns its networks and its training step; this module owns the
loop around it, the same for every architecture, and reads top to bottom (`_train`): a step, then at
a tick (a log step, an evaluation, the last step) the finite check, the log row with the evaluation,
the sample grid, the stop, the checkpoint. Its parts live in their own modules:
- checkpoint.py: the whole training state (networks, EMA, optimisers, loss scalers, every rank's
  random streams, the step) saved atomically every `train.checkpoint_every` generator steps, on
  SIGTERM/SIGINT and at the end; `painter train` with the same config resumes from it, on another
  device, precision or number of processes too;
- stopping.py: when to stop early: `train.max_minutes`, $PAINTER_DEADLINE (seconds since the epoch,
  as `date +%s` prints; the Kaggle kernel sets it from its session limit: training stops early enough
  for generate, score and submit to finish by then), a signal, a NaN or inf loss (which stops the run
  before it can overwrite the last good checkpoint);
- train_log.py: a logged step's metrics.csv row, TensorBoard scalars and progress bar;
- evaluate.py: every `train.eval_every` steps the EMA generator is scored and the best kept as best.pt.
The uint8 shards (the paintings, and the photos for a translation architecture) are loaded onto the
training device once and batches are drawn and augmented there: no DataLoader, no per-step
host-to-device copies. Under `torchrun --nproc_per_node=K` each process trains one replica with
DistributedDataParallel (nccl on GPUs, gloo on CPUs) on its own batches; only rank 0 writes files.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import torch
import torch.distributed as dist

from . import archs, layout, prepare, tensorboard_log
from .artifacts import (fingerprint, read_stamp, require_stamp, run_stage, write_bytes_atomic, write_json_atomic,
                        write_torch_atomic)
from .checkpoint import Checkpoints, Progress, RunIdentity, precision
from .config import Config
from .devices import Process, start_process_group
from .errors import PainterError
from .images import save_grid
from .layout import Workdir
from .plots import losses_png
from .stopping import DEADLINE_ENV, Deadline, Divergence, Stop, Stopper, TrainingStopped
from .train_log import StepLog

VERSION = 4


def images_after_training(cfg: Config, data: dict) -> int:
    """How many images generate will make: generate.count, or one per photo when a translation
    architecture's count is 0."""
    return cfg.generate.count or len(data.get("photos", ()))


def fit(cfg: Config, out: Path, shards: dict[str, Path], identity: RunIdentity, *, fresh: bool,
        hint_slow_cpu: bool = True, on_evaluation=None, log=print) -> dict:
    process, device = start_process_group(cfg.run.device)
    try:
        return _fit(cfg, out, shards, identity, process, device, fresh=fresh, hint_slow_cpu=hint_slow_cpu,
                    on_evaluation=on_evaluation, log=log)
    finally:
        # Left to interpreter shutdown, gloo's worker threads can abort the process (SIGABRT).
        if process.world > 1 and dist.is_initialized():
            dist.destroy_process_group()


def _fit(cfg: Config, out: Path, shards: dict[str, Path], identity: RunIdentity, process: Process,
         device: torch.device, *, fresh: bool, hint_slow_cpu: bool, on_evaluation, log) -> dict:
    """Build, resume, train, finish: the run's files are written by rank 0 (under torchrun the other
    ranks' logs, evaluations and files are switched off, and they take part in the collectives only)."""
    tc, arch = cfg.train, archs.get(cfg.model.arch)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed shapes: let cuDNN pick the fastest kernels
    data = {domain: prepare.load_shards(folder, device) for domain, folder in shards.items()}
    trainer = arch.trainer(cfg, data, device, process)

    checkpoints = Checkpoints(out / layout.CHECKPOINT, identity, trainer, process, device)
    progress = checkpoints.resume(fresh=fresh, steps=tc.steps, log=log)
    if process.main:
        (out / layout.TRAIN_CONFIG).write_text(cfg.to_toml())
    steplog = StepLog(out, trainer, steps=tc.steps, start_step=progress.step, start_seconds=progress.seconds,
                      world=process.world, enabled=process.main, tensorboard=tc.tensorboard, log=log)
    evaluator = _evaluator(cfg, trainer, log) if tc.eval_every and process.main else None
    deadline = Deadline.from_env(images_after_training(cfg, data))
    if deadline is not None:
        log(f"train: everything after training must end by {time.strftime('%H:%M:%S', time.localtime(deadline.at))} "
            f"({DEADLINE_ENV}); training stops in time for it")
    evaluations = _Evaluations(cfg, trainer, out, progress, evaluator, deadline, on_evaluation)
    stopper = Stopper(tc.steps, tc.log_every, tc.max_minutes, deadline, process, device,
                      start_step=progress.step, start_seconds=progress.seconds)
    steplog.hint_when_slow(hint_slow_cpu and device.type == "cpu" and not tc.max_minutes and deadline is None)
    divergence = Divergence(process, device, trainer.divergence_hint)

    stats, stop = _train(cfg, trainer, progress, checkpoints, stopper, steplog, evaluations, divergence, log)
    divergence.check(progress.step, checkpoints.saved_step)
    checkpoints.save(progress)
    summary = _summary(cfg, trainer, data, process, device, progress, stats, stop)
    if process.main:
        _write_final(cfg, out, trainer)
        write_json_atomic(out / layout.TRAIN_SUMMARY, summary)
    return summary


def _train(cfg: Config, trainer, progress: Progress, checkpoints: Checkpoints, stopper: Stopper,
           steplog: StepLog, evaluations: "_Evaluations", divergence: Divergence, log) -> tuple[dict, Stop | None]:
    """The loop: a step, then, at a tick (a log step, an evaluation, the last step): the finite check, the
    log row with the evaluation, the sample grid, the stop, the checkpoint. Updates `progress` in place;
    returns the last step's stats and the stop that finished training early (or None)."""
    tc = cfg.train
    stats: dict = {}
    with stopper, steplog:
        for step in steplog.bar:
            started = time.perf_counter()
            stats = trainer.train_step(step)
            progress.seconds += time.perf_counter() - started
            progress.step = done = step + 1
            divergence.watch(stats)
            steplog.count(done, progress.seconds, stats["images"])
            stop = stopper.check(done, progress.seconds, stats["images"])
            last = done == tc.steps or (stop is not None and stop.finishes)
            evaluate_now = bool(tc.eval_every) and (done % tc.eval_every == 0 or last)
            if done % tc.log_every == 0 or last or evaluate_now:
                divergence.check(done, checkpoints.saved_step)
                steplog.row(done, progress.seconds, stats, evaluations.evaluate if evaluate_now else None)
            if done % tc.sample_every == 0:
                steplog.grid(done, trainer.samples)
            if stop is not None and stop.finishes:
                log(stop.message)
                return stats, stop  # the final checkpoint and files follow
            if stop is not None or (done % tc.checkpoint_every == 0 and done < tc.steps):
                divergence.check(done, checkpoints.saved_step)
                checkpoints.save(progress)
            if stop is not None:
                raise TrainingStopped(stop.message, stop.signal)
    return stats, None


class _Evaluations:
    """The EMA generator scored every train.eval_every steps and at the last (rank 0); the best so far is
    saved as best.pt with its record best.json, and kept in `progress` for the checkpoint."""

    def __init__(self, cfg: Config, trainer, out: Path, progress: Progress, evaluator, deadline: Deadline | None,
                 on_evaluation=None):
        self.cfg, self.trainer, self.out, self.progress = cfg, trainer, out, progress
        self.evaluator = evaluator  # None: no evaluations (train.eval_every = 0, or a rank other than 0)
        self.deadline = deadline  # told how long evaluating an image takes
        self.on_evaluation = on_evaluation  # told (step, scores) after each evaluation: a Ray Tune trial reports them

    def evaluate(self) -> dict:
        if self.evaluator is None:
            return {}
        started = time.perf_counter()
        scores, model = self.evaluator.evaluate(self.trainer.sampling_generator)
        if self.deadline is not None:
            self.deadline.per_image = (time.perf_counter() - started) / self.evaluator.n
        value, best = scores[self.evaluator.metric], self.progress.best
        if best is None or value < best["value"]:
            self.progress.best = {"step": self.progress.step, "metric": self.evaluator.metric, "value": value}
            arch = self.trainer.arch
            write_torch_atomic(self.out / layout.BEST_GENERATOR,
                               arch.generator_file(self.cfg, self.trainer.resolution, model))
            write_json_atomic(self.out / layout.BEST_RECORD, self.progress.best)
        if self.on_evaluation is not None:
            self.on_evaluation(self.progress.step, scores)
        return scores


def _evaluator(cfg: Config, trainer, log):
    from .evaluate import Evaluator
    from .metrics.inception import find_weights

    try:
        weights = find_weights()
    except PainterError as exc:
        log(f"train: evaluating with SWD only: {exc}")
        weights = None
    if weights is not None and weights.path is None:
        weights = None  # a download in the middle of training is not worth the risk
    arch, spec, tc = trainer.arch, trainer.arch.generator_spec(cfg), cfg.train
    count = min(tc.eval_images, len(trainer.data["paintings"]))  # one painting to compare per image
    inputs = arch.inputs(count, tc.seed + 2, spec, photos=trainer.data.get("photos"))
    return Evaluator(trainer.data["paintings"], inputs, tc.seed, weights,
                     finalize=lambda model: arch.finalize(model, spec, seed=tc.seed))


def _summary(cfg: Config, trainer, data: dict, process: Process, device: torch.device, progress: Progress,
             stats: dict, stop: Stop | None) -> dict:
    tc, arch = cfg.train, trainer.arch
    summary = {"arch": arch.name, "consumes": arch.consumes, "resolution": trainer.resolution, "steps": progress.step,
               "images": len(data["paintings"]), "world_size": process.world,
               "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
               "precision": precision(trainer),
               "seconds": round(progress.seconds, 1), "planned_steps": tc.steps,
               "stopped": stop.reason if stop is not None else None,
               "final_loss_d": round(stats["loss_d"].item(), 4) if stats else None,
               "final_loss_g": round(stats["loss_g"].item(), 4) if stats else None}
    if "photos" in data:
        summary["photos"] = len(data["photos"])
    if process.world > 1:
        summary["ranks_in_sync"] = _ranks_in_sync(trainer, process)
    if progress.best is not None:
        summary["best"] = progress.best
    return summary


def _ranks_in_sync(trainer, process: Process) -> bool:
    """DDP keeps replicas identical; check it rather than trust it: every network's weights and the
    buffers that must agree (spectral norm's vectors...), not batch norm's per-rank statistics."""
    checksum = torch.stack([t.detach().double().sum() for net in trainer.networks.values()
                            for name, t in [*net.named_parameters(), *net.named_buffers()]
                            if not name.endswith(("running_mean", "running_var", "num_batches_tracked"))])
    gathered = [torch.zeros_like(checksum) for _ in range(process.world)]
    dist.all_gather(gathered, checksum)
    return all(torch.equal(gathered[0], other) for other in gathered)


def _write_final(cfg: Config, out: Path, trainer) -> None:
    """generator.pt, the final sample grid and the loss plot (rank 0)."""
    arch, final = trainer.arch, trainer.sampling_generator
    # Generation runs in eval mode: give it, for example, exact batch-norm statistics of the final generator.
    arch.finalize(final, arch.generator_spec(cfg), seed=cfg.train.seed)
    write_torch_atomic(out / layout.GENERATOR, arch.generator_file(cfg, trainer.resolution, final))
    save_grid(trainer.samples(), out / layout.SAMPLES)
    write_bytes_atomic(out / layout.LOSSES, losses_png(out / layout.METRICS,
                                                      title=f"{cfg.run.name}: {arch.name} {trainer.resolution}px"))


def seconds_per_step(cfg: Config, device: torch.device, steps: int = 2) -> float:
    """A training step's seconds for `cfg` on `device` (one process), timed after a warm-up step on random
    images of the configured size: what a schedule will take, known before the data is even downloaded."""
    arch = archs.get(cfg.model.arch)
    count = max(cfg.train.batch_size, 16)
    images = lambda: torch.randint(0, 256, (count, 3, cfg.data.resolution, cfg.data.resolution), dtype=torch.uint8)
    data = {"paintings": images(), **({"photos": images()} if arch.consumes == "photos" else {})}
    with torch.random.fork_rng(devices=[]):  # the trainer seeds the global RNG; the run's own stays as it was
        trainer = arch.trainer(cfg, data, device, Process())
        trainer.train_step(0)["loss_g"].item()
        started = time.perf_counter()
        for step in range(1, steps + 1):
            trainer.train_step(step)["loss_g"].item()
    return (time.perf_counter() - started) / steps


def shard_folders(cfg: Config, wd: Workdir, resolution: int) -> dict[str, Path]:
    """The prepared folders training reads: the paintings, and the photos when the architecture translates."""
    folders = {"paintings": prepare.shards_dir(cfg, wd, resolution)}
    if archs.get(cfg.model.arch).consumes == "photos":
        folders["photos"] = prepare.shards_dir(cfg, wd, resolution, "photos")
    return folders


def run(cfg: Config, wd: Workdir, *, force: bool = False, hint_slow_cpu: bool = True, on_evaluation=None,
        log=print) -> dict:
    """Train `cfg`'s run unless it is up to date; `hint_slow_cpu` False leaves out the estimate a long CPU
    run gets after its first minute (`painter run` gave one before it started); `on_evaluation(step, scores)`
    is called after each evaluation (a Ray Tune trial reports them)."""
    if cfg.train.tensorboard:
        tensorboard_log.require()  # before anything is trained or written
    shards = shard_folders(cfg, wd, cfg.data.resolution)
    shard_stamps = {domain: require_stamp(folder, "shards" if domain == "paintings" else "photo shards",
                                          "painter prepare") for domain, folder in shards.items()}
    # TensorBoard only watches: switching it on or off neither re-trains nor restarts a run.
    train_keys = {key: value for key, value in cfg.section("train").items() if key != "tensorboard"}
    inputs = {"version": VERSION, "model": cfg.section("model"), "train": train_keys,
              "shards": {"fingerprint": shard_stamps["paintings"]["fingerprint"]}}
    if cfg.options is not None:
        inputs[cfg.model.arch] = cfg.section(cfg.model.arch)
    if "photos" in shards:
        inputs["photos"] = {"fingerprint": shard_stamps["photos"]["fingerprint"]}
    run_fp = fingerprint(inputs)
    # train.max_minutes only says when to stop: a checkpoint of the same steps under another limit is resumed
    # while it is below this one (checkpoint.RunIdentity)
    steps_inputs = {**inputs, "train": {key: value for key, value in train_keys.items() if key != "max_minutes"}}
    identity = RunIdentity(run_fp, fingerprint(steps_inputs), cfg.train.max_minutes * 60)
    out = wd.run_folder(cfg.run.name).train
    if int(os.environ.get("RANK", "0")) != 0:
        # torchrun's other ranks train alongside rank 0 but write nothing, stamp included.
        stamp = read_stamp(out)
        if stamp is not None and stamp["fingerprint"] == run_fp and not force:
            return stamp  # rank 0 skips too
        return {"summary": fit(cfg, out, shards, identity, fresh=force, log=lambda *_: None)}
    return run_stage("train", out, inputs,
                     lambda folder: fit(cfg, folder, shards, identity, fresh=force, hint_slow_cpu=hint_slow_cpu,
                                        on_evaluation=on_evaluation, log=log),
                     force=force, in_place=True, log=log)
