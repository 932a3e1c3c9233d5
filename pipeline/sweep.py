"""sweep: train several architectures on one dataset under an equal budget, then generate, score and rank them.

A sweep is a spec (sweep_spec.py: a file, or what --archs/--diffaugment/--budget-* stand for); each trial
is an ordinary painter run built from its preset in configs/ plus the spec's settings, so an interrupted
sweep resumes where it stopped (finished stages are up to date, training resumes from its checkpoint)
and a finished one costs nothing. Here the trials run one after another; sweep_ray.py hands them to Ray
Tune, kernel/sweep.py to Kaggle.

The budget is equal in real paintings shown to the (painting) discriminator, as each architecture
counts them (WGAN's five critic steps and its warm-up count against it), or in minutes of training
steps.
"""

from __future__ import annotations

from . import archs, chain
from .config import Config, load_config
from .errors import PainterError
from .sweep_spec import Spec, expand, preset_path

DIFFAUGMENT = "color,translation,cutout"
MAX_STEPS = 10_000_000  # the step cap of a wall-clock budget


def architectures(text: str) -> list[str]:
    """--archs: "all" or a comma-separated list."""
    return list(archs.names()) if text.strip() == "all" else [a.strip() for a in text.split(",") if a.strip()]


def steps_for_budget(cfg: Config, images: int) -> int:
    """Generator steps after which the painting discriminator has seen `images` real paintings."""
    arch, seen, step = archs.get(cfg.model.arch), 0, 0
    while seen < images:
        seen += arch.images_per_step(cfg, step)
        step += 1
    return max(step, 1)


def shorthand(names: list[str], diffaugment: list[bool | None], overrides: list[str], budget_images: int | None,
              budget_minutes: float | None, seeds: int = 1) -> Spec:
    """The spec that `--archs`, `--diffaugment` and `--budget-*` stand for: per architecture its preset, without
    and/or with DiffAugment (None keeps the preset's), runs named sweep-<arch>[-da]."""
    if (budget_images is None) == (budget_minutes is None):
        raise PainterError("give the sweep one budget: --budget-images N or --budget-minutes M")
    unknown = [a for a in names if a not in archs.names()]
    if unknown:
        raise PainterError(f"unknown architecture(s) {', '.join(unknown)}; choose from {', '.join(archs.names())}")
    grid = {} if diffaugment == [None] else {"train.diffaugment": [DIFFAUGMENT if on else "" for on in diffaugment]}
    budget = {"images": budget_images} if budget_images is not None else {"minutes": budget_minutes}
    return Spec(presets=names, budget=budget, grid=grid, overrides=list(overrides),
                seeds=list(range(seeds)) if seeds > 1 else [])


def plan(spec: Spec) -> list[Config]:
    """The config of each trial of `spec`, in order, its budget turned into train.steps (images) or
    train.max_minutes (minutes); "schedule" leaves each preset's own."""
    configs = []
    for trial in expand(spec):
        per_run, path = trial.overrides(spec), preset_path(trial.preset)
        cfg = load_config(path, per_run)
        if "images" in spec.budget:
            cfg = load_config(path, [*per_run, f"train.steps={steps_for_budget(cfg, spec.budget['images'])}"])
        elif "minutes" in spec.budget:
            cfg = load_config(path, [*per_run, f"train.steps={MAX_STEPS}", f"train.max_minutes={spec.budget['minutes']}"])
        configs.append(cfg)
    return configs


def runs(configs: list[Config]) -> list[Config]:
    """The runs of a sweep's configs: each config's own, or one per seed of its run.seeds."""
    return [one for cfg in configs for one in cfg.seed_runs()]


def run(configs: list[Config], wd, *, inception_weights: str | None = None, force: bool = False, log=print) -> list[str]:
    """Each config through download -> prepare -> train -> generate -> score; returns the run names."""
    trials = runs(configs)
    for i, cfg in enumerate(trials, 1):
        log(f"\n== sweep {i}/{len(trials)}: {cfg.run.name} ({cfg.model.arch}, "
            f"diffaugment {cfg.train.diffaugment or 'off'}, {cfg.train.steps} steps)")
        chain.run(cfg, wd, until="score", force=("train", "generate", "score") if force else (),
                  inception_weights=inception_weights, log=log)
    return [cfg.run.name for cfg in trials]
