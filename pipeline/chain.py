"""The chain, written once: download -> prepare -> train -> generate -> score -> submit.

`painter run`, `painter sweep` and the Kaggle kernel all go through `run`; each stage skips itself
when its output is up to date.
"""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path

from .config import Config
from .errors import PainterError
from .layout import Workdir

STAGES = ("download", "prepare", "train", "generate", "score", "submit")


def run(cfg: Config, wd: Workdir, *, until: str = "submit", force: Collection[str] = (),
        inception_weights: str | None = None, submissions: Path | None = None, log=print) -> dict[str, dict]:
    """Run the stages from download to `until` in order; `force` names the stages to re-run even when
    up to date. Returns each stage's stamp (prepare: {domain: {resolution: stamp}})."""
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
        "train": lambda f: train.run(cfg, wd, force=f, log=log),
        "generate": lambda f: generate.run(cfg, wd, force=f, log=log),
        "score": lambda f: score.run(cfg, wd, force=f, weights=weights, log=log),
        "submit": lambda f: submit.run(cfg, wd, submissions or Path("submissions"), force=f, log=log),
    }
    stamps = {}
    for stage in STAGES[:STAGES.index(until) + 1]:
        stamps[stage] = steps[stage](stage in force)
    return stamps
