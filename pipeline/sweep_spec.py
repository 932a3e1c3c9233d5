"""sweep_spec: a sweep as a file, and the trials it names.

    [sweep]
    presets = ["cut", "fastcut"]        # configs/<preset>.toml
    budget = { images = 100000 }        # or { minutes = 30 }, or "schedule": each preset's own train.steps
    trials = 4                          # samples of [random] per point of [grid] (1 without [random])
    seeds = 3                           # training seeds per trial (or a list: [0, 1, 2])
    metric = "swd"                      # what decides: "swd", or "mifid" where the Inception weights exist
    name = "sweep"                      # the trials' run names start with it
    sample_seed = 0                     # the seed of [random]'s draws

    [grid]                              # every combination of these values
    "cut.lambda_nce" = [1, 2]
    [random]                            # drawn `trials` times
    "train.lr_g" = { log_uniform = [5e-5, 5e-4] }   # or uniform = [lo, hi], choice = [a, b, ...]
    [set]                               # the same in every trial
    "data.source" = "../shared/data"

A key of an architecture's own section (`cut.crop`) varies only the presets of that architecture. A
trial is one ordinary painter run, named from its settings (`sweep-cut-lambda_nce2`; a random draw adds
a digest of its values), so the same spec names the same trials, and every painter command works on them.
Free of torch: `expand` asks pipeline.config for each preset's architecture.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import random
import re
from dataclasses import dataclass, field
from pathlib import Path

from .config import toml_value, tomllib
from .errors import PainterError
from .layout import PRESETS

METRICS = ("swd", "mifid")
DISTRIBUTIONS = ("uniform", "log_uniform", "choice")
# How a grid value reads in a trial's name, for the keys whose plain value reads badly there.
NAME_PARTS = {"train.diffaugment": lambda value: "da" if value else ""}


@dataclass
class Spec:
    presets: list[str]
    budget: dict                                   # {"images": N}, {"minutes": M} or {} (the presets' schedules)
    grid: dict[str, list] = field(default_factory=dict)
    random: dict[str, dict] = field(default_factory=dict)
    trials: int = 1
    seeds: list[int] = field(default_factory=list)
    metric: str = "swd"
    overrides: list[str] = field(default_factory=list)
    name: str = "sweep"
    sample_seed: int = 0

    @property
    def varied(self) -> list[str]:
        """The config keys the trials differ in (the report's settings columns)."""
        return [*self.grid, *self.random]


@dataclass
class Trial:
    name: str
    preset: str
    settings: dict                                 # the keys this trial sets, beyond the spec's [set]

    def overrides(self, spec: Spec) -> list[str]:
        return [*spec.overrides, *(f"{key}={toml_value(value)}" for key, value in self.settings.items()),
                f"run.name={self.name}", *([f"run.seeds={spec.seeds}"] if spec.seeds else [])]


def load_spec(path: Path) -> Spec:
    """The spec in a TOML file; every mistake is one line naming the file and the key."""
    try:
        text = tomllib.loads(Path(path).read_text())
    except FileNotFoundError:
        raise PainterError(f"sweep spec {path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise PainterError(f"sweep spec {path} is not valid TOML: {exc}") from None
    unknown = set(text) - {"sweep", "grid", "random", "set"}
    if unknown:
        raise PainterError(f"sweep spec {path}: unknown table(s) {', '.join(sorted(unknown))}; the tables are "
                           "[sweep], [grid], [random] and [set]")
    head = text.get("sweep", {})
    known = {"presets", "budget", "trials", "seeds", "metric", "name", "sample_seed"}
    if set(head) - known:
        raise PainterError(f"sweep spec {path}: unknown key(s) {', '.join(sorted(set(head) - known))} in [sweep]; "
                           f"the keys are {', '.join(sorted(known))}")
    seeds = head.get("seeds", [])
    spec = Spec(presets=head.get("presets", []), budget=_budget(path, head.get("budget", "schedule")),
                grid=text.get("grid", {}), random=text.get("random", {}), trials=head.get("trials", 1),
                seeds=list(range(seeds)) if isinstance(seeds, int) and not isinstance(seeds, bool) else seeds,
                metric=head.get("metric", "swd"), overrides=[f"{k}={toml_value(v)}" for k, v in text.get("set", {}).items()],
                name=head.get("name", "sweep"), sample_seed=head.get("sample_seed", 0))
    check(spec, str(path))
    return spec


def _budget(path, budget) -> dict:
    if budget == "schedule":
        return {}
    if isinstance(budget, dict) and len(budget) == 1 and next(iter(budget)) in ("images", "minutes"):
        return budget
    raise PainterError(f"sweep spec {path}: budget must be {{ images = N }}, {{ minutes = M }} or \"schedule\", "
                       f"got {budget!r}")


def check(spec: Spec, origin: str) -> None:
    def fail(message: str):
        raise PainterError(f"{origin}: {message}")

    if not spec.presets or not all(isinstance(p, str) and p for p in spec.presets):
        fail("presets must list at least one preset name, e.g. presets = [\"cut\"] for configs/cut.toml")
    if not isinstance(spec.trials, int) or isinstance(spec.trials, bool) or spec.trials < 1:
        fail(f"trials must be a whole number of 1 or more, got {spec.trials!r}")
    if spec.trials > 1 and not spec.random:
        fail(f"trials = {spec.trials} draws from [random], which is empty: give [random] keys, or trials = 1")
    if not isinstance(spec.seeds, list) or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0
                                                   for s in spec.seeds) or len(set(spec.seeds)) != len(spec.seeds):
        fail(f"seeds must be a number of seeds or a list of distinct seeds, got {spec.seeds!r}")
    if spec.metric not in METRICS:
        fail(f"metric must be one of {', '.join(METRICS)}, got {spec.metric!r}")
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", str(spec.name)):
        fail(f"name {spec.name!r} must be usable in a folder name (letters, digits, '.', '_' or '-')")
    value = next(iter(spec.budget.values()), None)
    if spec.budget and (not isinstance(value, (int, float)) or isinstance(value, bool) or value <= 0):
        fail(f"budget {spec.budget!r} must be positive")
    for key, values in spec.grid.items():
        if "." not in key or not isinstance(values, list) or not values:
            fail(f"[grid] {key}: expected \"section.key\" = [values], got {values!r}")
    for key, draw in spec.random.items():
        if "." not in key or not isinstance(draw, dict) or len(draw) != 1 or next(iter(draw)) not in DISTRIBUTIONS:
            fail(f"[random] {key}: expected {{ uniform = [lo, hi] }}, {{ log_uniform = [lo, hi] }} or "
                 f"{{ choice = [values] }}, got {draw!r}")
        kind, args = next(iter(draw.items()))
        if kind == "choice":
            if not isinstance(args, list) or not args:
                fail(f"[random] {key}: choice needs a list of values")
        elif not (isinstance(args, list) and len(args) == 2 and all(isinstance(a, (int, float)) for a in args)
                  and args[0] < args[1] and (kind == "uniform" or args[0] > 0)):
            fail(f"[random] {key}: {kind} needs [lo, hi] with lo < hi" + (" and lo > 0" if kind != "uniform" else ""))
    both = set(spec.grid) & set(spec.random)
    if both:
        fail(f"{', '.join(sorted(both))} is both in [grid] and in [random]")


def expand(spec: Spec) -> list[Trial]:
    """Every trial of the spec, in order: per preset, per grid point, per random draw."""
    from .config import load_config

    draws = random.Random(spec.sample_seed)
    trials: list[Trial] = []
    for preset in spec.presets:
        arch = load_config(preset_path(preset)).model.arch
        applies = lambda key: key.partition(".")[0] not in _arch_sections() or key.partition(".")[0] == arch  # noqa: E731
        grid = {key: values for key, values in spec.grid.items() if applies(key)}
        space = {key: draw for key, draw in spec.random.items() if applies(key)}
        for point in itertools.product(*grid.values()):
            fixed = dict(zip(grid, point))
            for _ in range(spec.trials if space else 1):
                sampled = {key: _draw(draw, draws) for key, draw in space.items()}
                trials.append(Trial(_name(spec.name, preset, fixed, sampled), preset, {**fixed, **sampled}))
    names = [trial.name for trial in trials]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise PainterError(f"the spec names {', '.join(repeated)} more than once: two trials would share a run folder "
                           "(a preset listed twice?)")
    return trials


def preset_path(preset: str):
    """configs/<preset>.toml, or a clear error listing the presets."""
    path = PRESETS / f"{preset}.toml"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in PRESETS.glob("*.toml")))
        raise PainterError(f"no preset {preset!r} (configs/{preset}.toml); the presets are {known}")
    return path


def _arch_sections() -> set[str]:
    from .config import arch_sections

    return set(arch_sections())


def _draw(draw: dict, rng: random.Random):
    kind, args = next(iter(draw.items()))
    if kind == "choice":
        return rng.choice(args)
    if kind == "uniform":
        return rng.uniform(*args)
    return math.exp(rng.uniform(math.log(args[0]), math.log(args[1])))


def _name(prefix: str, preset: str, fixed: dict, sampled: dict) -> str:
    """prefix-preset, each grid value (`-lambda_nce2`), and for a random draw a digest of its exact values."""
    parts = [prefix, preset]
    for key, value in fixed.items():
        part = NAME_PARTS[key](value) if key in NAME_PARTS else f"{key.partition('.')[2]}{_short(value)}"
        if part:
            parts.append(re.sub(r"[^A-Za-z0-9._]+", "_", part).strip("_"))
    if sampled:
        parts.append("r" + hashlib.sha1(json.dumps(sampled, sort_keys=True).encode()).hexdigest()[:6])
    return "-".join(parts)


def _short(value) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)
