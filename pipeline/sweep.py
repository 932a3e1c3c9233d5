"""sweep: train several architectures on one dataset under an equal budget, then generate, score and rank them.

Each run is an ordinary painter run named `sweep-<arch>[-da]`, built from its preset in configs/
plus the sweep's own --set overrides, so an interrupted sweep resumes where it stopped (finished
stages are up to date, training resumes from its checkpoint) and a finished one costs nothing.

The budget is equal in real paintings shown to the (painting) discriminator, as each architecture
counts them (WGAN's five critic steps and its warm-up count against it), or in minutes of training
steps.
"""

from __future__ import annotations

from . import archs, chain, layout
from .config import Config, load_config
from .errors import PainterError

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


def plan(names: list[str], diffaugment: list[bool | None], overrides: list[str], budget_images: int | None,
         budget_minutes: float | None) -> list[Config]:
    """The sweep's configs, one per (architecture, DiffAugment), in order; DiffAugment None keeps the preset's."""
    if (budget_images is None) == (budget_minutes is None):
        raise PainterError("give the sweep one budget: --budget-images N or --budget-minutes M")
    unknown = [a for a in names if a not in archs.names()]
    if unknown:
        raise PainterError(f"unknown architecture(s) {', '.join(unknown)}; choose from {', '.join(archs.names())}")
    configs = []
    for arch in names:
        for augment in diffaugment:
            name = f"sweep-{arch}" + ("-da" if augment else "")
            per_run = [*overrides, f"run.name={name}"]
            if augment is not None:
                per_run.append(f"train.diffaugment={DIFFAUGMENT if augment else ''}")
            cfg = load_config(layout.PRESETS / f"{arch}.toml", per_run)
            if budget_images is not None:
                cfg = load_config(layout.PRESETS / f"{arch}.toml",
                                  [*per_run, f"train.steps={steps_for_budget(cfg, budget_images)}"])
            else:
                cfg = load_config(layout.PRESETS / f"{arch}.toml",
                                  [*per_run, f"train.steps={MAX_STEPS}", f"train.max_minutes={budget_minutes}"])
            configs.append(cfg)
    return configs


def run(configs: list[Config], wd, *, inception_weights: str | None = None, force: bool = False, log=print) -> list[str]:
    """Each config through download -> prepare -> train -> generate -> score; returns the run names."""
    runs = [one for cfg in configs for one in cfg.seed_runs()]  # run.seeds: each seed its own run
    for i, cfg in enumerate(runs, 1):
        log(f"\n== sweep {i}/{len(runs)}: {cfg.run.name} ({cfg.model.arch}, "
            f"diffaugment {cfg.train.diffaugment or 'off'}, {cfg.train.steps} steps)")
        chain.run(cfg, wd, until="score", force=("train", "generate", "score") if force else (),
                  inception_weights=inception_weights, log=log)
    return [cfg.run.name for cfg in runs]
