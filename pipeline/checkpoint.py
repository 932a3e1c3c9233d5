"""checkpoint: the whole training state in <run>/train/checkpoint.pt, saved and resumed apart from the loop.

A checkpoint is one dict (keys are only ever added, so a run checkpointed by an older painter resumes):
  fingerprint         the inputs of the run that wrote it: another config's checkpoint is not resumed...
  steps_fingerprint   ...unless only its time limit (train.max_minutes) differs and it is still under the new one
                      (absent from checkpoints written before this key existed)
  step, seconds       generator steps done, and seconds spent in training steps so far
  trainer             Trainer.state_dict(): networks, EMA, optimisers, loss scalers, rank 0's random streams
  best                best.json's record of the best evaluation so far, or None
  rank_streams        under torchrun, every rank's own random streams (gathered to rank 0), else None
  device, precision   where it was written: "cpu" or "cuda"; "float32", "bfloat16" or "float16"

Every rank calls save() at the same step; rank 0 writes, atomically. resume() applies the policy for a
checkpoint of another machine: under torchrun each rank takes back its own streams; saved by another
number of processes, a rank other than 0 keeps the fresh ones it was seeded with. Written on another
kind of device or in another precision, the weights and optimisers carry over; random streams (a CPU's
and a GPU's differ in form) and loss scales start afresh.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist

from .artifacts import clear_folder, write_torch_atomic
from .devices import Process


@dataclass
class Progress:
    """Where training stands: generator steps done, seconds of training steps, the best evaluation."""

    step: int = 0
    seconds: float = 0.0
    best: dict | None = None


def precision(trainer) -> str:
    """The trainer's mixed precision by name, "float32" without one."""
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


@dataclass(frozen=True)
class RunIdentity:
    """Which checkpoints this run resumes: one with every input the same; or, written under another time limit,
    one of the same steps that has trained less than this run's limit. So a raised limit continues a run, and
    a lowered one that the run has passed starts it over (it would have stopped earlier)."""

    fingerprint: str  # every input of the run
    steps_fingerprint: str  # every input but train.max_minutes, which only says when to stop
    max_seconds: float  # train.max_minutes in seconds; 0: no limit

    def resumes(self, saved: dict) -> bool:
        if saved["fingerprint"] == self.fingerprint:
            return True
        return saved.get("steps_fingerprint") == self.steps_fingerprint and \
            (not self.max_seconds or saved["seconds"] < self.max_seconds)


class Checkpoints:
    """One run's checkpoint.pt: resumed once at the start, saved every few steps and at the end."""

    def __init__(self, path: Path, identity: RunIdentity, trainer, process: Process, device: torch.device):
        self.path, self.identity, self.trainer = Path(path), identity, trainer
        self.process, self.device = process, device
        self.saved_step = 0  # of the last checkpoint on disk for this run (0: none)

    def resume(self, *, fresh: bool, steps: int, log) -> Progress:
        """The progress of this run's checkpoint, loaded into the trainer; without one (or `fresh`),
        a new start in an emptied folder, since another config's files must not mix with this run's."""
        if self.process.world > 1:
            dist.barrier()  # every rank reads the checkpoint before rank 0 may clear the folder
        saved = torch.load(self.path, map_location="cpu", weights_only=True) if self.path.exists() else None
        progress = Progress()
        if saved is not None and self.identity.resumes(saved) and not fresh:
            progress = self._load(saved, steps, log)
        elif self.process.main:
            clear_folder(self.path.parent)
        if self.process.world > 1:
            dist.barrier()
        self.saved_step = progress.step
        return progress

    def _load(self, saved: dict, steps: int, log) -> Progress:
        machine = {"device": self.device.type, "precision": precision(self.trainer)}
        saved_on = {key: saved.get(key, machine[key]) for key in machine}
        same_machine = saved_on == machine
        rank, world = self.process.rank, self.process.world
        rank_streams = saved.get("rank_streams") or [saved["trainer"]]
        own = rank_streams[rank] if len(rank_streams) == world or rank == 0 else None
        self.trainer.load_state_dict(saved["trainer"], streams=False, scalers=same_machine)
        if own is not None and same_machine:
            self.trainer.load_streams(own)
        progress = Progress(saved["step"], saved["seconds"], saved.get("best"))
        other_limit = "" if saved["fingerprint"] == self.identity.fingerprint else \
            f" ({progress.seconds:.0f} s trained under another train.max_minutes)"
        log(f"train: resuming from step {progress.step} of {steps}{other_limit}" + ("" if same_machine else
            f" (written on {saved_on['device']} in {saved_on['precision']}, now on {machine['device']} in "
            f"{machine['precision']}: the weights and optimisers carry over, random streams and loss scales "
            "start afresh)"))
        return progress

    def save(self, progress: Progress) -> None:
        """A collective: every rank calls it at the same step; rank 0 writes, with each rank's own streams."""
        rank_streams = None
        if self.process.world > 1:
            rank_streams = [None] * self.process.world
            dist.all_gather_object(rank_streams, _on_cpu(self.trainer.streams()))  # not onto rank 0's GPUs
        if self.process.main:
            write_torch_atomic(self.path, {"fingerprint": self.identity.fingerprint,
                                           "steps_fingerprint": self.identity.steps_fingerprint, "step": progress.step,
                                           "seconds": progress.seconds, "trainer": self.trainer.state_dict(),
                                           "best": progress.best, "rank_streams": rank_streams,
                                           "device": self.device.type, "precision": precision(self.trainer)})
        self.saved_step = progress.step
