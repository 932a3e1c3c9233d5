"""A sweep's trials as Kaggle kernels: at most `parallel` running at once, the rest queued, each pulled into
its run folder as it finishes.

What a trial has reached lives in its folders, so a sweep stopped and started again picks up where it was:
- pulled: runs/<run>/kaggle/kernel.json names the version that kernels/<run>/push.json pushed;
- failed: kernels/<run>/failed.json names that version (with Kaggle's message): reported, not pushed again
  unless --retry-failed;
- pushed: push.json alone, a kernel queued or running on Kaggle: followed, never pushed twice;
- queued: nothing yet.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..artifacts import read_json, write_json_atomic
from ..config import Config
from ..errors import PainterError
from ..layout import FAILED_RECORD, PUSH_RECORD, Workdir
from . import remote
from .dataset import now
from .script import SESSION_HOURS, WEEKLY_GPU_HOURS


@dataclass
class Trial:
    cfg: Config
    state: str          # "queued", "pushed", "pulled" or "failed"
    message: str = ""   # why it failed

    @property
    def name(self) -> str:
        return self.cfg.run.name


def states(configs: list[Config], wd: Workdir) -> list[Trial]:
    """Where each trial stands, from its folders."""
    trials = []
    for cfg in configs:
        pushed = read_json(wd.kernel(cfg.run.name) / PUSH_RECORD)
        version = pushed.get("version") if isinstance(pushed, dict) else None
        pulled = read_json(wd.run_folder(cfg.run.name).kernel_record)
        failed = read_json(wd.kernel(cfg.run.name) / FAILED_RECORD)
        if pushed is None:
            trials.append(Trial(cfg, "queued"))
        elif isinstance(pulled, dict) and pulled.get("version") == version:
            trials.append(Trial(cfg, "pulled"))
        elif isinstance(failed, dict) and failed.get("version") == version:
            trials.append(Trial(cfg, "failed", str(failed.get("message", ""))))
        else:
            trials.append(Trial(cfg, "pushed"))
    return trials


def run(configs: list[Config], wd: Workdir, submissions: Path, *, parallel: int = 2, gpu: str = "t4x2",
        hours: float = SESSION_HOURS, yes: bool = False, retry_failed: bool = False,
        interval: float = remote.WAIT_INTERVAL, inception_weights: str | None = None, wheels: Path | None = None,
        log: Callable[[str], None] = print, sleep: Callable[[float], None] = time.sleep) -> list[Trial]:
    """Push, follow and pull every trial; returns them as they ended. A trial that fails does not stop the others:
    its message is shown, and `failures` names it at the end."""
    if parallel < 1:
        raise PainterError(f"--parallel {parallel}: at least one kernel must run at a time")
    trials = states(configs, wd)
    if retry_failed:
        for trial in trials:
            if trial.state == "failed":
                trial.state, trial.message = "queued", ""
    to_push = [t for t in trials if t.state == "queued"]
    cost = len(to_push) * hours
    log(f"kaggle sweep: {len(trials)} trials: " + ", ".join(
        f"{sum(t.state == s for t in trials)} {s}" for s in ("pulled", "pushed", "failed", "queued")
        if any(t.state == s for t in trials)))
    if to_push:
        log(f"kaggle sweep: pushing {len(to_push)} kernels, {parallel} at a time, uses up to {cost:g} GPU hours "
            f"(--hours {hours:g} each) of Kaggle's weekly {WEEKLY_GPU_HOURS:g}")
    if cost > WEEKLY_GPU_HOURS and not yes:
        raise PainterError(f"the sweep may use {cost:g} GPU hours, more than Kaggle's weekly {WEEKLY_GPU_HOURS:g}: "
                           "fewer trials or a lower --hours, or --yes to go ahead (the rest queue into next week)")
    for trial in trials:
        if trial.state == "failed":
            log(f"kaggle sweep: {trial.name} failed: {trial.message.splitlines()[0] if trial.message else '?'} "
                "(--retry-failed pushes it again)")
    while True:
        running = [t for t in trials if t.state == "pushed"]
        for trial in running:
            _follow(trial, wd, submissions, log)
        running = [t for t in trials if t.state == "pushed"]
        queued = [t for t in trials if t.state == "queued"]
        for trial in queued[:max(0, parallel - len(running))]:
            remote.push(trial.cfg, wd, gpu=gpu, hours=hours, inception_weights=inception_weights, wheels=wheels,
                        log=log, sleep=sleep)
            trial.state = "pushed"
        if not any(t.state in ("pushed", "queued") for t in trials):
            break
        sleep(interval)
    return trials


def failures(trials: list[Trial]) -> PainterError | None:
    """The error that ends a sweep some of whose kernels failed (after the others are ranked)."""
    failed = [t for t in trials if t.state == "failed"]
    if not failed:
        return None
    return PainterError(f"{len(failed)} of {len(trials)} trials failed on Kaggle: {', '.join(t.name for t in failed)}; "
                        "the others are pulled and ranked. --retry-failed pushes the failed ones again")


def _follow(trial: Trial, wd: Workdir, submissions: Path, log: Callable[[str], None]) -> None:
    """One look at a pushed trial's kernel: pulled when complete, recorded as failed when it failed."""
    quiet = lambda _: None  # noqa: E731 - one line per change, not per poll
    try:
        state = remote.status(trial.cfg, wd, log=quiet)
        if state not in remote.DONE:
            return
        remote.pull(trial.cfg, wd, submissions, log=quiet)
    except remote.KernelFailed as exc:  # anything else (the network, credentials) stops the sweep: run it again
        pushed = read_json(wd.kernel(trial.name) / PUSH_RECORD) or {}
        write_json_atomic(wd.kernel(trial.name) / FAILED_RECORD,
                          {"version": pushed.get("version"), "message": str(exc), "failed": now()})
        trial.state, trial.message = "failed", str(exc)
        log(f"kaggle sweep: {trial.name} FAILED: {exc}")
        return
    trial.state = "pulled"
    log(f"kaggle sweep: {trial.name} pulled into {wd.run_folder(trial.name).kaggle}")
