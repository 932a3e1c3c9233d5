"""The chain, written once: download -> prepare -> train -> generate -> score -> submit.

`painter run`, `painter sweep` and the Kaggle kernel all go through `run`; each stage skips itself
when its output is up to date. Training in several processes (one per GPU) runs under torchrun,
launched from here; the other stages run in this process.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Collection
from pathlib import Path

from .config import Config
from .errors import PainterError
from .layout import Workdir

STAGES = ("download", "prepare", "train", "generate", "score", "submit")
# Schedules this long are timed before a run on a CPU; a shorter one that still takes hours gets the
# estimate after its first minute of training (train_log) instead of a probe before every small run.
UP_FRONT_MIN_STEPS = 1000


def run(cfg: Config, wd: Workdir, *, until: str = "submit", force: Collection[str] = (),
        inception_weights: str | None = None, submissions: Path | None = None, nproc: int = 1,
        on_evaluation=None, log=print) -> dict[str, dict]:
    """Run the stages from download to `until` in order; `force` names the stages to re-run even when
    up to date; `nproc` > 1 trains in that many processes under torchrun; `on_evaluation(step, scores)` hears
    each evaluation during training. Returns each stage's stamp (prepare: {domain: {resolution: stamp}})."""
    from . import download, generate, prepare, score, submit, train

    if until not in STAGES:
        raise PainterError(f"unknown stage {until!r}; the stages are {', '.join(STAGES)}")
    unknown = set(force) - set(STAGES)
    if unknown:
        raise PainterError(f"unknown stage(s) {', '.join(sorted(unknown))}; the stages are {', '.join(STAGES)}")
    weights = None
    if STAGES.index(until) >= STAGES.index("score") and cfg.score.inception:
        # A wrong weights path is said before hours of training, not after (and the file hashed once).
        from .metrics.inception import find_weights
        weights = find_weights(inception_weights)
    told_cpu_cost = STAGES.index(until) >= STAGES.index("train") and nproc == 1 and say_cpu_cost(cfg, wd, log)
    steps = {
        "download": lambda f: download.run(cfg, wd, force=f, log=log),
        "prepare": lambda f: prepare.run(cfg, wd, force=f, log=log),
        "train": lambda f: (train.run(cfg, wd, force=f, hint_slow_cpu=not told_cpu_cost, on_evaluation=on_evaluation,
                                      log=log) if nproc == 1
                            else train_under_torchrun(cfg, wd, nproc, force=f, log=log)),
        "generate": lambda f: generate.run(cfg, wd, force=f, log=log),
        "score": lambda f: score.run(cfg, wd, force=f, weights=weights, log=log),
        "submit": lambda f: submit.run(cfg, wd, submissions or Path("submissions"), force=f, log=log),
    }
    stamps = {}
    for stage in STAGES[:STAGES.index(until) + 1]:
        stamps[stage] = steps[stage](stage in force)
    return stamps


def say_cpu_cost(cfg: Config, wd: Workdir, log=print) -> bool:
    """Before anything runs: on a machine without a GPU, time a training step of `cfg` and, when its schedule
    would take longer than train_log.SLOW_CPU_HOURS, say how long and what to run instead. Not for a run
    that a time budget or a deadline bounds, one already trained, or one of fewer than UP_FRONT_MIN_STEPS
    steps. Returns whether it said so."""
    import torch

    from . import train
    from .artifacts import read_stamp
    from .devices import resolve_device
    from .stopping import DEADLINE_ENV
    from .train_log import SLOW_CPU_ADVICE, SLOW_CPU_HOURS, hours_text

    if cfg.train.steps < UP_FRONT_MIN_STEPS or cfg.train.max_minutes or os.environ.get(DEADLINE_ENV) or \
            read_stamp(wd.run_folder(cfg.run.name).train):
        return False
    device = resolve_device(cfg.run.device)
    if device.type != "cpu":
        return False
    seconds = train.seconds_per_step(cfg, device)
    hours = cfg.train.steps * seconds / 3600
    if hours <= SLOW_CPU_HOURS:
        return False
    log(f"run: no GPU here: the {cfg.run.name} run's {cfg.train.steps:,} training steps take about "
        f"{hours_text(hours)} on this CPU ({seconds:.2g} s a step, timed just now on {torch.get_num_threads()} "
        f"threads). {SLOW_CPU_ADVICE}")
    return True


def train_under_torchrun(cfg: Config, wd: Workdir, nproc: int, *, force: bool = False, log=print) -> dict:
    """`painter train` in `nproc` processes under torchrun, on this config; returns the train stamp."""
    from . import train

    # The config goes as the file it resolves to, so the processes train exactly this config.
    with tempfile.TemporaryDirectory(prefix="painter-torchrun-") as tmp:
        config = Path(tmp) / "config.toml"
        config.write_text(cfg.to_toml())
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
                   "-m", "pipeline", "train", "--config", str(config), "--workdir", str(wd.root),
                   *(["--force"] if force else [])]
        log("train: $ python " + " ".join(command[1:]))
        sys.stdout.flush()  # the processes write to the same stdout: this line first
        done = subprocess.run(command)
    if done.returncode:
        raise PainterError(f"training under torchrun failed with exit code {done.returncode}; its messages are above")
    return train.run(cfg, wd, log=log)  # up to date now: its stamp
