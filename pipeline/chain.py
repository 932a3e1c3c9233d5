"""The chain, written once: download -> prepare -> train -> generate -> score -> submit.

`painter run`, `painter sweep` and the Kaggle kernel all go through `run`; each stage skips itself
when its output is up to date. Training in several processes (one per GPU) runs under torchrun,
launched from here; the other stages run in this process.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from collections.abc import Collection
from pathlib import Path

from .config import Config
from .errors import PainterError
from .layout import Workdir

STAGES = ("download", "prepare", "train", "generate", "score", "submit")


def run(cfg: Config, wd: Workdir, *, until: str = "submit", force: Collection[str] = (),
        inception_weights: str | None = None, submissions: Path | None = None, nproc: int = 1,
        log=print) -> dict[str, dict]:
    """Run the stages from download to `until` in order; `force` names the stages to re-run even when
    up to date; `nproc` > 1 trains in that many processes under torchrun. Returns each stage's stamp
    (prepare: {domain: {resolution: stamp}})."""
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
    steps = {
        "download": lambda f: download.run(cfg, wd, force=f, log=log),
        "prepare": lambda f: prepare.run(cfg, wd, force=f, log=log),
        "train": lambda f: (train.run(cfg, wd, force=f, log=log) if nproc == 1
                            else train_under_torchrun(cfg, wd, nproc, force=f, log=log)),
        "generate": lambda f: generate.run(cfg, wd, force=f, log=log),
        "score": lambda f: score.run(cfg, wd, force=f, weights=weights, log=log),
        "submit": lambda f: submit.run(cfg, wd, submissions or Path("submissions"), force=f, log=log),
    }
    stamps = {}
    for stage in STAGES[:STAGES.index(until) + 1]:
        stamps[stage] = steps[stage](stage in force)
    return stamps


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
