"""train: fit the configured architecture on the prepared shards; writes <run>/train/ (generator,
samples, metrics, plots).

The architecture (pipeline/archs/) owns its networks and its training step; this module owns the
loop around it, the same for every architecture:
- the uint8 shards (the paintings, and the photos for a translation architecture) are loaded
  onto the training device once and batches are drawn and augmented there: no DataLoader, no
  per-step host-to-device copies;
- nothing is lost when a run stops: the whole training state (networks, EMA, optimisers, loss
  scalers, every RNG stream, the step) is checkpointed atomically every `train.checkpoint_every`
  generator steps and on SIGTERM/SIGINT, and `painter train` with the same config resumes from it;
- a NaN or inf loss stops the run before it can overwrite the last good checkpoint;
- every `train.eval_every` steps the EMA generator is evaluated and the best kept as best.pt;
- with $PAINTER_DEADLINE (seconds since the epoch, as `date +%s` prints; the Kaggle kernel sets it
  from its session limit) training stops early enough for generate, score and submit to finish by
  then, judged from this run's own speed (see `Deadline`);
- under `torchrun --nproc_per_node=K` each process trains one replica with DistributedDataParallel
  (nccl on GPUs, gloo on CPUs) on its own batches; only rank 0 writes files.
"""

from __future__ import annotations

import csv
import os
import signal
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import torch
import torch.distributed as dist

from . import archs, prepare, tensorboard_log
from .artifacts import (Workdir, clear_folder, fingerprint, read_stamp, require_stamp, run_stage, write_json_atomic,
                        write_torch_atomic)
from .config import Config
from .devices import Process, any_rank, start_process_group
from .errors import PainterError, Stopped
from .images import save_grid
from .plots import plot_losses
from .progress import progress_bar

VERSION = 4
EVAL_FIELDS = ["swd", "fid", "kid"]  # on evaluation steps only
DEADLINE_ENV = "PAINTER_DEADLINE"
# A preset's schedule can take days on a CPU: once its speed is known, say so and what to do instead.
SLOW_CPU_MEASURE_S = 60.0  # of training, before the estimate
SLOW_CPU_HOURS = 2.0  # longer than this left gets the hint


class TrainingStopped(Stopped):
    """Stopped by a signal after saving a checkpoint."""


class Deadline:
    """When training must stop so that everything after it still finishes by a wall-clock deadline.

    What follows training (the last evaluation, generate, score, the zip) is estimated from this
    run's own speed: seconds per image of its evaluations (making and scoring images, as generate and
    score do), or before the first one, seconds per training image (a training step makes, judges
    and back-propagates each image: an over-estimate). Generate, score and the copy check each pass
    over every image, hence AFTER_PASSES, plus AFTER_FIXED for loading, saving and zipping."""

    AFTER_PASSES = 3
    AFTER_FIXED = 120.0

    def __init__(self, at: float, images_after: int):
        self.at, self.images_after = at, images_after
        self.per_image: float | None = None  # measured by evaluations
        self.per_training_image: float | None = None

    @classmethod
    def from_env(cls, images_after: int) -> "Deadline | None":
        raw = os.environ.get(DEADLINE_ENV, "").strip()
        if not raw:
            return None
        try:
            return cls(float(raw), images_after)
        except ValueError:
            raise PainterError(f"{DEADLINE_ENV}={raw!r}: expected seconds since the epoch, as `date +%s` "
                               "prints") from None

    def reserve(self) -> float:
        """Seconds to keep for everything after training."""
        per_image = self.per_image if self.per_image is not None else self.per_training_image or 0.0
        return self.AFTER_FIXED + self.AFTER_PASSES * per_image * self.images_after

    def reached(self) -> bool:
        return time.time() + self.reserve() >= self.at


def images_after_training(cfg: Config, data: dict) -> int:
    """How many images generate will make: generate.count, or one per photo when a translation
    architecture's count is 0."""
    return cfg.generate.count or len(data.get("photos", ()))


def train_dir(cfg: Config, wd: Workdir) -> Path:
    return wd.run_folder(cfg.run.name).train


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


def _metrics_rows_until(path: Path, step: int) -> list[dict]:
    if not path.exists():
        return []
    with open(path, newline="") as fh:
        return [row for row in csv.DictReader(fh) if int(row["step"]) <= step]


def _precision(trainer) -> str:
    return str(trainer.amp_dtype).replace("torch.", "") if trainer.amp_dtype else "float32"


def _on_cpu(state):
    """`state` (nested dicts and lists of tensors) with every tensor on the CPU."""
    if isinstance(state, torch.Tensor):
        return state.cpu()
    if isinstance(state, dict):
        return {key: _on_cpu(value) for key, value in state.items()}
    if isinstance(state, (list, tuple)):
        return type(state)(_on_cpu(value) for value in state)
    return state


def fit(cfg: Config, out: Path, shards: dict[str, Path], run_fingerprint: str, *, fresh: bool, log=print) -> dict:
    process, device = start_process_group(cfg.run.device)
    try:
        return _fit(cfg, out, shards, run_fingerprint, process, device, fresh=fresh, log=log)
    finally:
        # Left to interpreter shutdown, gloo's worker threads can abort the process (SIGABRT).
        if process.world > 1 and dist.is_initialized():
            dist.destroy_process_group()


def _fit(cfg: Config, out: Path, shards: dict[str, Path], run_fingerprint: str, process: Process,
         device: torch.device, *, fresh: bool, log) -> dict:
    tc, arch = cfg.train, archs.get(cfg.model.arch)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed shapes: let cuDNN pick the fastest kernels
    data = {domain: prepare.load_shards(folder, device) for domain, folder in shards.items()}
    trainer = arch.trainer(cfg, data, device, process)

    checkpoint_path = out / "checkpoint.pt"
    if process.world > 1:
        dist.barrier()  # every rank reads the checkpoint before rank 0 may clear the folder
    checkpoint = torch.load(checkpoint_path, map_location="cpu", weights_only=True) \
        if checkpoint_path.exists() else None
    start_step, seconds, best = 0, 0.0, None
    if checkpoint is not None and checkpoint["fingerprint"] == run_fingerprint and not fresh:
        # Under torchrun each rank takes back its own streams; saved by another number of processes,
        # a rank other than 0 keeps the fresh ones it was seeded with. Written on another kind of device
        # or in another precision, the weights and optimisers carry over; random streams (a CPU's and a
        # GPU's differ in form) and loss scales start afresh.
        machine = {"device": device.type, "precision": _precision(trainer)}
        saved_on = {key: checkpoint.get(key, machine[key]) for key in machine}
        same_machine = saved_on == machine
        rank_streams = checkpoint.get("rank_streams") or [checkpoint["trainer"]]
        own = rank_streams[process.rank] if len(rank_streams) == process.world or process.rank == 0 else None
        trainer.load_state_dict(checkpoint["trainer"], streams=False, scalers=same_machine)
        if own is not None and same_machine:
            trainer.load_streams(own)
        start_step, seconds, best = checkpoint["step"], checkpoint["seconds"], checkpoint.get("best")
        log(f"train: resuming from step {start_step} of {tc.steps}" + ("" if same_machine else
            f" (written on {saved_on['device']} in {saved_on['precision']}, now on {machine['device']} in "
            f"{machine['precision']}: the weights and optimisers carry over, random streams and loss scales "
            "start afresh)"))
    elif process.main:
        clear_folder(out)  # another config's files must not mix with this run's
    if process.world > 1:
        dist.barrier()

    metrics_path = out / "metrics.csv"
    fields = ["step", *trainer.columns, "img_per_s", "seconds", *EVAL_FIELDS]
    if process.main:
        (out / "samples").mkdir(exist_ok=True)
        (out / "config.toml").write_text(cfg.to_toml())
        rows = _metrics_rows_until(metrics_path, start_step)
        with open(metrics_path, "w", newline="") as fh:
            csv.DictWriter(fh, fields).writeheader()
            csv.DictWriter(fh, fields).writerows(rows)

    def save_checkpoint(step: int) -> None:
        """Every rank calls it at the same step; rank 0 writes, with each rank's own random streams."""
        rank_streams = None
        if process.world > 1:
            rank_streams = [None] * process.world
            dist.all_gather_object(rank_streams, _on_cpu(trainer.streams()))  # not onto rank 0's GPUs
        if process.main:
            write_torch_atomic(checkpoint_path, {"fingerprint": run_fingerprint, "step": step, "seconds": seconds,
                                                 "trainer": trainer.state_dict(), "best": best,
                                                 "rank_streams": rank_streams, "device": device.type,
                                                 "precision": _precision(trainer)})

    evaluator = _evaluator(cfg, trainer, log) if tc.eval_every and process.main else None
    deadline = Deadline.from_env(images_after_training(cfg, data))
    if deadline is not None and process.main:
        log(f"train: everything after training must end by {time.strftime('%H:%M:%S', time.localtime(deadline.at))} "
            f"({DEADLINE_ENV}); training stops in time for it")

    def evaluate(step: int) -> dict:
        """Scores of the EMA generator now; the best one so far is saved as best.pt (main process)."""
        nonlocal best
        if evaluator is None:
            return {}
        started = time.perf_counter()
        scores, model = evaluator.evaluate(trainer.sampling_generator)
        if deadline is not None:
            deadline.per_image = (time.perf_counter() - started) / evaluator.n
        value = scores[evaluator.metric]
        if best is None or value < best["value"]:
            best = {"step": step, "metric": evaluator.metric, "value": value}
            write_torch_atomic(out / "best.pt", arch.generator_file(cfg, trainer.resolution, model))
            write_json_atomic(out / "best.json", best)
        return scores

    diverged = torch.zeros((), dtype=torch.bool, device=device)
    last_checkpoint = start_step

    def check_finite(step: int) -> None:
        if any_rank(bool(diverged.item()), process, device):
            kept = f"the checkpoint of step {last_checkpoint} is kept" if last_checkpoint else "no checkpoint was kept"
            raise PainterError(f"training diverged: a loss became NaN or inf by step {step}; {kept}. "
                               f"{trainer.divergence_hint}, then run again.")

    stats: dict = {}
    resumed_seconds = seconds  # this session's speed only, for the deadline
    hint_slow_cpu = device.type == "cpu" and process.main and not tc.max_minutes and deadline is None
    window_start, window_images = time.perf_counter(), 0
    bar = progress_bar(range(start_step, tc.steps), initial=start_step, total=tc.steps, desc="train", unit="step",
               disable=not process.main)
    with _stop_on_signals() as caught, open(metrics_path, "a", newline="") if process.main else \
            open(os.devnull, "w") as metrics_file, \
            tensorboard_log.Board(out, enabled=tc.tensorboard and process.main, resumed_step=start_step,
                                  eval_fields=EVAL_FIELDS) as board:
        writer = csv.DictWriter(metrics_file, fields)
        done, stopped = start_step, None
        for step in bar:
            t0 = time.perf_counter()
            stats = trainer.train_step(step)
            diverged |= ~torch.isfinite(stats["loss_d"] + stats["loss_g"])
            window_images += stats["images"] * process.world
            done = step + 1
            seconds += time.perf_counter() - t0
            if deadline is not None:
                deadline.per_training_image = (seconds - resumed_seconds) / ((done - start_step) * stats["images"])
            if hint_slow_cpu and seconds - resumed_seconds >= SLOW_CPU_MEASURE_S:
                hint_slow_cpu = False
                hours_left = (tc.steps - done) * (seconds - resumed_seconds) / (done - start_step) / 3600
                if hours_left > SLOW_CPU_HOURS:
                    left = f"{hours_left:.0f} h" if hours_left < 48 else f"{hours_left / 24:.1f} days"
                    with bar.external_write_mode():
                        log(f"train: the {tc.steps - done:,} steps left take about {left} on this CPU. "
                            "For a CPU-sized run see the README's \"CPU-sized overrides\" (smaller widths, crops, "
                            "fewer steps, or train.max_minutes); for a GPU, `painter kernel push`. Ctrl-C saves a "
                            "checkpoint, and the same command resumes.")
            # An equal wall-clock budget or a deadline: every rank stops at the same logged step, when
            # rank 0 says so (only it measures evaluations).
            stop_for = None  # (summary's "stopped", the log's reason)
            checks_time = done % tc.log_every == 0 and (tc.max_minutes or deadline is not None)
            if checks_time and tc.max_minutes and seconds >= tc.max_minutes * 60:
                stop_for = ("max_minutes", f"{tc.max_minutes:g} min of training reached")
            elif checks_time and deadline is not None and deadline.reached():
                stop_for = ("deadline", f"stopping for the deadline ({deadline.reserve() / 60:.1f} min kept for "
                                        f"generating and scoring {deadline.images_after} images)")
            out_of_time = bool(checks_time) and any_rank(process.main and stop_for is not None, process, device)
            last = done == tc.steps or out_of_time
            evaluate_now = tc.eval_every and (done % tc.eval_every == 0 or last)
            if done % tc.log_every == 0 or last or evaluate_now:
                check_finite(done)
                now = time.perf_counter()
                row = {"step": done, "img_per_s": float(f"{window_images / (now - window_start):.4g}"),
                       "seconds": round(seconds, 2), **trainer.log_row(stats)}
                if evaluate_now:
                    row.update(evaluate(done))
                writer.writerow(row)
                metrics_file.flush()
                board.row(row)
                board.flush()
                bar.set_postfix(loss_d=row["loss_d"], loss_g=row["loss_g"], img_s=row["img_per_s"], refresh=False)
                window_start, window_images = now, 0
            if process.main and done % tc.sample_every == 0:
                grid = out / "samples" / f"step_{done:06d}.png"
                save_grid(trainer.samples(), grid)
                board.image(grid, done)
            if out_of_time:
                if stop_for is not None:  # rank 0, which decided
                    stopped = stop_for[0]
                    log(f"train: {stop_for[1]} at step {done} of {tc.steps}")
                break
            if done % tc.checkpoint_every == 0 and done < tc.steps:
                check_finite(done)
                save_checkpoint(done)
                last_checkpoint = done
            # A lone process checks every step; ranks agree at each log step so none is left waiting.
            if (process.world == 1 or done % tc.log_every == 0) and \
                    any_rank(caught["signal"] is not None, process, device) and done < tc.steps:
                check_finite(done)
                save_checkpoint(done)
                name = signal.Signals(caught["signal"] or signal.SIGTERM).name
                raise TrainingStopped(f"train: stopped by {name} at step {done} of {tc.steps}; checkpoint "
                                      "saved. Run the same command to resume.", caught["signal"] or signal.SIGTERM)
    bar.close()
    check_finite(done)
    save_checkpoint(done)

    summary = {"arch": arch.name, "consumes": arch.consumes, "resolution": trainer.resolution, "steps": done,
               "images": len(data["paintings"]), "world_size": process.world,
               "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
               "precision": _precision(trainer),
               "seconds": round(seconds, 1), "planned_steps": tc.steps, "stopped": stopped,
               "final_loss_d": round(stats["loss_d"].item(), 4) if stats else None,
               "final_loss_g": round(stats["loss_g"].item(), 4) if stats else None}
    if "photos" in data:
        summary["photos"] = len(data["photos"])
    if process.world > 1:
        # DDP keeps replicas identical; check it rather than trust it: every network's weights and the
        # buffers that must agree (spectral norm's vectors...), not batch norm's per-rank statistics.
        checksum = torch.stack([t.detach().double().sum() for net in trainer.networks.values()
                                for name, t in [*net.named_parameters(), *net.named_buffers()]
                                if not name.endswith(("running_mean", "running_var", "num_batches_tracked"))])
        gathered = [torch.zeros_like(checksum) for _ in range(process.world)]
        dist.all_gather(gathered, checksum)
        summary["ranks_in_sync"] = all(torch.equal(gathered[0], other) for other in gathered)
    if not process.main:
        return summary

    # Generation runs in eval mode: give it, for example, exact batch-norm statistics of the final generator.
    final = trainer.sampling_generator
    arch.finalize(final, arch.generator_spec(cfg), seed=tc.seed)
    write_torch_atomic(out / "generator.pt", arch.generator_file(cfg, trainer.resolution, final))
    if best is not None:
        summary["best"] = best
    save_grid(trainer.samples(), out / "samples.png")
    plot_losses(metrics_path, out / "losses.png", title=f"{cfg.run.name}: {arch.name} {trainer.resolution}px")
    write_json_atomic(out / "summary.json", summary)
    return summary


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


def shard_folders(cfg: Config, wd: Workdir, resolution: int) -> dict[str, Path]:
    """The prepared folders training reads: the paintings, and the photos when the architecture translates."""
    folders = {"paintings": prepare.shards_dir(cfg, wd, resolution)}
    if archs.get(cfg.model.arch).consumes == "photos":
        folders["photos"] = prepare.shards_dir(cfg, wd, resolution, "photos")
    return folders


def run(cfg: Config, wd: Workdir, *, force: bool = False, log=print) -> dict:
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
    if int(os.environ.get("RANK", "0")) != 0:
        # torchrun's other ranks train alongside rank 0 but write nothing, stamp included.
        stamp = read_stamp(train_dir(cfg, wd))
        if stamp is not None and stamp["fingerprint"] == run_fp and not force:
            return stamp  # rank 0 skips too
        return {"summary": fit(cfg, train_dir(cfg, wd), shards, run_fp, fresh=force, log=lambda *_: None)}
    return run_stage("train", train_dir(cfg, wd), inputs,
                     lambda out: fit(cfg, out, shards, run_fp, fresh=force, log=log),
                     force=force, in_place=True, log=log)
