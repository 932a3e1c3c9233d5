"""train_log: what training shows and keeps of its steps, behind one `StepLog`.

A logged step (every `train.log_every` steps, each evaluation and the last) becomes one row of
metrics.csv, the same values as TensorBoard scalars (tensorboard_log, with `train.tensorboard`) and the
progress bar's numbers; a sample grid is saved as samples/step_NNNNNN.png and shown in TensorBoard. A
resumed run first cuts metrics.csv back to its checkpoint's step, so no step appears twice. On a CPU,
once the speed is known, a schedule that would take hours gets an estimate and what to do instead.
Under torchrun only rank 0's log is enabled; the others' does nothing.
"""

from __future__ import annotations

import csv
import os
import time
from pathlib import Path
from typing import Callable

import torch

from . import layout, tensorboard_log
from .images import save_grid
from .metrics import EVAL_METRICS
from .progress import progress_bar

# A preset's schedule can take days on a CPU: once its speed is known, say so and what to do instead.
SLOW_CPU_MEASURE_S = 60.0  # of training, before the estimate
SLOW_CPU_HOURS = 2.0  # longer than this left gets the hint
SLOW_CPU_ADVICE = (f"On a CPU, make all CONFIG=configs/{layout.CPU_PRESET} trains CUT sized for one (about 2 h on "
                   "2 cores); for other architectures see the README's \"CPU-sized overrides\". On a GPU: "
                   "`painter kernel push`. Ctrl-C saves a checkpoint, and the same command resumes.")


def hours_text(hours: float) -> str:
    return f"{hours:.0f} h" if hours < 48 else f"{hours / 24:.1f} days"


def _rows_until(path: Path, step: int) -> list[dict]:
    if not path.exists():
        return []
    with open(path, newline="") as fh:
        return [row for row in csv.DictReader(fh) if int(row["step"]) <= step]


class StepLog:
    """The log of one training session, from `start_step` (a resumed run's) to `steps`; a context
    manager around the loop, which iterates over `bar`."""

    def __init__(self, folder: Path, trainer, *, steps: int, start_step: int, start_seconds: float, world: int,
                 enabled: bool, tensorboard: bool, log):
        self.folder, self.trainer, self.log = Path(folder), trainer, log
        self.steps, self.start_step, self.start_seconds, self.world = steps, start_step, start_seconds, world
        self.enabled, self.tensorboard = enabled, tensorboard
        self.fields = ["step", *trainer.columns, "img_per_s", "seconds", *EVAL_METRICS]
        self.hint_slow_cpu = False
        if enabled:
            (self.folder / layout.SAMPLE_GRIDS).mkdir(exist_ok=True)
            rows = _rows_until(self.folder / layout.METRICS, start_step)
            with open(self.folder / layout.METRICS, "w", newline="") as fh:
                csv.DictWriter(fh, self.fields).writeheader()
                csv.DictWriter(fh, self.fields).writerows(rows)

    def __enter__(self) -> "StepLog":
        self.board = tensorboard_log.Board(self.folder, enabled=self.tensorboard and self.enabled,
                                           resumed_step=self.start_step, eval_fields=EVAL_METRICS)
        self.file = open(self.folder / layout.METRICS, "a", newline="") if self.enabled else open(os.devnull, "w")
        self.writer = csv.DictWriter(self.file, self.fields)
        self.bar = progress_bar(range(self.start_step, self.steps), initial=self.start_step, total=self.steps,
                                desc="train", unit="step", disable=not self.enabled)
        self.window_start, self.window_images = time.perf_counter(), 0
        return self

    def __exit__(self, exc_type, *exc) -> None:
        self.file.close()
        self.board.close()
        if exc_type is None:  # a run that fails leaves its bar where it stood
            self.bar.close()

    def hint_when_slow(self, on: bool) -> None:
        """Whether to estimate the time left once SLOW_CPU_MEASURE_S of training are done (a CPU run that
        neither a time budget nor a deadline bounds)."""
        self.hint_slow_cpu = on and self.enabled

    def count(self, done: int, seconds: float, images: int) -> None:
        """After every step: `images` per process made in it; `seconds` of training so far."""
        self.window_images += images * self.world
        if self.hint_slow_cpu and seconds - self.start_seconds >= SLOW_CPU_MEASURE_S:
            self.hint_slow_cpu = False
            hours_left = (self.steps - done) * (seconds - self.start_seconds) / (done - self.start_step) / 3600
            if hours_left > SLOW_CPU_HOURS:
                with self.bar.external_write_mode():
                    self.log(f"train: the {self.steps - done:,} steps left take about {hours_text(hours_left)} on "
                             f"this CPU. {SLOW_CPU_ADVICE}")

    def row(self, done: int, seconds: float, stats: dict, evaluate: Callable[[], dict] | None = None) -> None:
        """A logged step: the trainer's columns of `stats`, the speed since the last row, and the scores of
        `evaluate()` (called after the speed is measured)."""
        now = time.perf_counter()
        row = {"step": done, "img_per_s": float(f"{self.window_images / (now - self.window_start):.4g}"),
               "seconds": round(seconds, 2), **self.trainer.log_row(stats)}
        if evaluate is not None:
            row.update(evaluate())
        self.writer.writerow(row)
        self.file.flush()
        self.board.row(row)
        self.board.flush()
        self.bar.set_postfix(loss_d=row["loss_d"], loss_g=row["loss_g"], img_s=row["img_per_s"], refresh=False)
        self.window_start, self.window_images = now, 0

    def grid(self, done: int, images: Callable[[], torch.Tensor]) -> None:
        """The sample grid of step `done`, made by `images()` (only where the log is enabled)."""
        if not self.enabled:
            return
        path = self.folder / layout.SAMPLE_GRIDS / f"step_{done:06d}.png"
        save_grid(images(), path)
        self.board.image(path, done)
