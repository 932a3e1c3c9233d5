"""stopping: when training stops before its last step, and why. The loop asks one `Stopper` after every
step and a `Divergence` before every log row and checkpoint; the rules live here, not in the loop.

- Time: `train.max_minutes` of training steps, or $PAINTER_DEADLINE (`Deadline`: stop while what
  follows training still fits). Looked at on each log step, by rank 0 alone (only it times the
  evaluations); every rank then stops at that step. Training finishes there as at its last step: the
  row is logged and evaluated, the final files written, and the summary's "stopped" says why.
- A signal: SIGTERM or SIGINT (Ctrl-C, Kaggle's end of session, torchrun passing either on) only sets
  a flag. A lone process answers at the step it comes; under torchrun the ranks agree at each log step,
  so none is left waiting in a collective. The loop saves a checkpoint and raises `TrainingStopped`.
- A NaN or inf loss (`Divergence`): the run fails before the bad state can overwrite the last good
  checkpoint.
Nothing stops the last step: a run that reached it is trained, whatever signal came meanwhile.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from dataclasses import dataclass

import torch
import torch.distributed as dist

from .devices import Process, any_rank
from .errors import PainterError, Stopped

DEADLINE_ENV = "PAINTER_DEADLINE"
TIME_LIMITS = ("max_minutes", "deadline")  # the summary's "stopped", in the order they are looked at


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


@dataclass(frozen=True)
class Stop:
    """Why training stops after this step: `reason` is one of TIME_LIMITS (the run finishes) or a
    signal's name (the run is interrupted); `message` is what the log or the error says."""

    reason: str
    message: str
    signal: int | None = None

    @property
    def finishes(self) -> bool:
        return self.signal is None


class Stopper:
    """Asked after every step: should training stop here, and why (a `Stop`, or None)?

    Used as a context manager: inside it SIGTERM and SIGINT set a flag instead of ending the process
    (in the main thread; elsewhere signals cannot be caught and the flag stays unset)."""

    def __init__(self, steps: int, log_every: int, max_minutes: float, deadline: Deadline | None,
                 process: Process, device: torch.device, *, start_step: int, start_seconds: float):
        self.steps, self.log_every, self.max_minutes, self.deadline = steps, log_every, max_minutes, deadline
        self.process, self.device = process, device
        self.start_step, self.start_seconds = start_step, start_seconds  # this session's speed only
        self.caught: int | None = None
        self._previous: dict = {}

    def __enter__(self) -> "Stopper":
        if threading.current_thread() is threading.main_thread():
            self._previous = {s: signal.signal(s, self._catch) for s in (signal.SIGTERM, signal.SIGINT)}
        return self

    def __exit__(self, *exc) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous = {}

    def _catch(self, signum, frame) -> None:
        self.caught = signum

    def check(self, done: int, seconds: float, images: int) -> Stop | None:
        """After step `done` (`seconds` of training so far, `images` per step of this process). Every rank
        calls it after every step; under torchrun they talk only on log steps. The loop acts on the answer
        after that step's log row, grid and checkpoint, so a signal that comes while they are written is
        seen at the next check."""
        if self.deadline is not None:
            self.deadline.per_training_image = (seconds - self.start_seconds) / ((done - self.start_step) * images)
        tick = done % self.log_every == 0
        if self.process.world > 1 and not tick:
            return None
        late = self._time_limit(seconds) if tick and self.process.main else None
        signalled = self.caught is not None
        if self.process.world > 1:
            late, signalled = self._agree(late, signalled)
        if late is not None:
            return Stop(late, f"train: {self._explain(late)} at step {done} of {self.steps}")
        if signalled and done < self.steps:
            signum = self.caught or signal.SIGTERM  # a rank that caught none stops for another's
            name = signal.Signals(signum).name
            return Stop(name, f"train: stopped by {name} at step {done} of {self.steps}; checkpoint saved. "
                              "Run the same command to resume.", signum)
        return None

    def _time_limit(self, seconds: float) -> str | None:
        if self.max_minutes and seconds >= self.max_minutes * 60:
            return "max_minutes"
        if self.deadline is not None and self.deadline.reached():
            return "deadline"
        return None

    def _explain(self, limit: str) -> str:
        if limit == "max_minutes":
            return f"{self.max_minutes:g} min of training reached"
        return (f"stopping for the deadline ({self.deadline.reserve() / 60:.1f} min kept for generating and "
                f"scoring {self.deadline.images_after} images)")

    def _agree(self, late: str | None, signalled: bool) -> tuple[str | None, bool]:
        """Rank 0's time limit and whether any rank caught a signal, the same on every rank (a collective)."""
        votes = torch.tensor([TIME_LIMITS.index(late) + 1 if late else 0, int(signalled)], device=self.device)
        dist.all_reduce(votes, op=dist.ReduceOp.MAX)
        limit, signalled = votes.tolist()
        return (TIME_LIMITS[limit - 1] if limit else None), bool(signalled)


class Divergence:
    """Watches every step's losses for NaN or inf on the device (no wait for it); `check` asks every
    rank at once and fails the run, so that the diverged state is neither logged nor checkpointed."""

    def __init__(self, process: Process, device: torch.device, hint: str):
        self.process, self.device, self.hint = process, device, hint
        self.flag = torch.zeros((), dtype=torch.bool, device=device)

    def watch(self, stats: dict) -> None:
        self.flag |= ~torch.isfinite(stats["loss_d"] + stats["loss_g"])

    def check(self, step: int, kept_step: int) -> None:
        """A collective: every rank calls it at the same step. `kept_step`: the last checkpoint's (0: none)."""
        if any_rank(bool(self.flag.item()), self.process, self.device):
            kept = f"the checkpoint of step {kept_step} is kept" if kept_step else "no checkpoint was kept"
            raise PainterError(f"training diverged: a loss became NaN or inf by step {step}; {kept}. "
                               f"{self.hint}, then run again.")
